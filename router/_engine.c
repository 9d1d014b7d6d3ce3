/* The router's data path for plain routes, in C: no Python per request.
 *
 * An Engine owns an epoll set that the asyncio loop watches as one descriptor
 * (loop.add_reader(engine.fileno(), ...)), the listening socket(s) given to it, the
 * client connections it accepts and its own connections to the backends. It answers the
 * requests it can answer exactly as the Python path would (router/app.py `Router.fast`
 * and the Task path: same upstream request, same answer head, same errors), and hands a
 * client connection to Python -- with the bytes it has read and not answered -- at a
 * request boundary, before anything of that request went upstream, whenever it cannot
 * (Python gives it back once that request is answered and nothing of the next is read): anything but a plain route (canary, shadow, fallback), the router's own pages,
 * internal paths and 404s, HTTP/1.0, chunked or large bodies, Expect, Upgrade, the
 * backend override, percent-encoded paths, an open breaker, a backend it cannot reach
 * without Python (TLS, a name to resolve), a connect that fails, and a write answered 409
 * owned_elsewhere (which Python sends again while ownership moves).
 *
 * Python API (router/engine.py wraps it):
 *   Engine(handoff, failure, success, shadow, id_prefix)
 *     handoff(fd, data: bytes)        the connection is Python's from now on
 *     failure(version, backend, kind) a failed exchange (kind: timeout, error, 5xx)
 *     success(version, backend)       the first success after failures
 *     shadow(version, route, method, target, path, block, body, status, head,
 *            primary_body or None)    a sampled read of a shadowed route, answered
 *   .configure(version, backends, routes, internal, max_body, shadow_max_body)
 *   .fileno()  .listen(fd)
 *   .allow(backend, bool)  .run() -> seconds to the next timer or None  .tick() -> same
 *   .drain() -> [(version, route, backend, method, path, status, seconds, request_id)]
 *   .adopt(fd) -> bool  a client connection given back by Python
 *   .stop_accepting()  .busy() -> (clients, exchanges)  .counts() -> (answered,
 *   handed off, taken back)  .close_idle()  .close()
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (16 * 1024)       /* a request head longer than this goes to Python */
#define BODY_MAX (64 * 1024)       /* server.BUFFER_BELOW: larger bodies stream, in Python */
#define OUT_HIGH (256 * 1024)      /* stop reading the backend above this much unsent */
#define CLIENT_IDLE 5.0            /* server.KEEPALIVE_SECONDS */
#define UP_IDLE 1.5                /* upstream.IDLE_SECONDS */
#define SLOW_START 0.005           /* upstream.SLOW_START_SECONDS */
#define MAX_EVENTS 64

enum { K_LISTEN = 1, K_CLIENT, K_UP };
enum { F_NONE, F_LENGTH, F_CHUNKED, F_CLOSE };

typedef struct {
    char *p;
    size_t off, len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + more <= b->cap) return 0;
    if (b->off) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(Buf *b, const char *data, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static size_t buf_size(Buf *b) { return b->len - b->off; }
static char *buf_at(Buf *b) { return b->p + b->off; }
static void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- the table (one config version) ------------------------------------------------ */

typedef struct Up Up;
typedef struct Ex Ex;
typedef struct Table Table;
typedef struct Engine Engine;

typedef struct {
    char **seg;
    size_t *seglen;
    int nseg;
    int glob;
} Pattern;

typedef struct {
    Table *table;
    int index;
    char *name;
    int usable; /* 0: TLS or a name to resolve: Python's */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *host; /* " HTTP/1.1\r\nHost: <host>\r\n" */
    size_t hostlen;
    double connect_timeout, read_timeout;
    int max_connections;
    int allowed;
    int closes;
    int failing;
    int open;
    double opened_at;
    Up **idle;
    int nidle, capidle;
    Ex *wait_head, *wait_tail;
} Backend;

typedef struct {
    char **methods; /* NULL: any */
    int nmethods;
    Pattern pat;
    int plain;
    int backend;
    char *route_line;
    size_t route_line_len;
    int shadowed;          /* has a shadow: its writes are Python's (dry runs, fences) */
    double shadow_percent; /* > 0: safe requests are shadowed (by Python, after) */
} Route;

struct Table {
    Engine *eng;
    long version;
    int refs;
    int retired;
    Backend *backends;
    int nbackends;
    Route *routes;
    int nroutes;
    Pattern *internal;
    int ninternal;
    long max_body;
    long shadow_max_body;
};

static int seg_match(const Pattern *p, const char *path, size_t len) {
    /* path starts with '/'; split path[1:] on '/' */
    const char *s = path + 1, *end = path + len;
    int i = 0;
    for (;;) {
        const char *slash = memchr(s, '/', end - s);
        const char *e = slash ? slash : end;
        size_t n = e - s;
        if (i >= p->nseg) return p->glob; /* more parts than segments */
        if (p->seglen[i] == 1 && p->seg[i][0] == '*') {
            if (n == 0) return 0;
        } else if (p->seglen[i] != n || memcmp(p->seg[i], s, n) != 0) {
            return 0;
        }
        i++;
        if (!slash) break;
        s = slash + 1;
    }
    return i == p->nseg;
}

/* --- connections --------------------------------------------------------------------- */

typedef struct Client {
    int kind;
    int fd;
    int dead;
    Engine *eng;
    Buf in, out;
    char ip[INET6_ADDRSTRLEN];
    double last;
    Ex *ex;
    int closing;      /* close once out is written */
    int want_out;     /* EPOLLOUT armed */
    int gone;
    struct Client *prev, *next;
} Client;

struct Up {
    int kind;
    int fd;
    int dead;
    Backend *be;
    Buf in;
    int connecting;
    int reused;
    int want_out;
    int reading; /* EPOLLIN armed */
    Ex *ex;
    double idle_since;
};

struct Ex {
    Client *c;
    Up *u;
    Table *t;
    int route, backend;
    size_t req_len; /* this request's bytes at the start of c->in */
    Buf upreq;
    size_t upsent;
    double started, last_activity;
    char rid[136];
    int ridlen;
    char method[24];
    char *path;
    size_t pathlen;
    int safe, head;
    int got_bytes;
    int status;
    int head_done;
    int framing;
    long long remaining;
    int up_keep;
    int sent; /* anything of the answer written to the client's buffer */
    /* chunked decoding */
    int cstate;
    long long csize;
    Ex *wait_next;
    int waiting;
    /* a shadowed request: what Python needs for the job, once the client has its answer */
    int shadow;
    int shadow_overflow;
    size_t target_len, block_start, block_end;
    Buf shead, sbody;
};

typedef struct {
    long version;
    int route, backend;
    char method[24];
    char *path;
    int status;
    double seconds;
    char rid[136];
} Record;

struct Engine {
    PyObject_HEAD
    int ep;
    int listeners[8];
    int nlisteners;
    int accepting;
    PyObject *handoff, *failure, *success, *shadow;
    uint64_t rng;
    char prefix[64];
    unsigned long long ids;
    Table *table;
    Client *clients;
    int nclients, nexchanges;
    Record *records;
    size_t nrecords, caprecords;
    unsigned long long answered, handed_off, taken_back;
    void **graveyard; /* freed after the batch of events that killed them */
    size_t ngrave, capgrave;
    int stopping;
};

static const char *SAFE[] = {"GET", "HEAD", "OPTIONS", "TRACE", NULL};

static void table_unref(Engine *e, Table *t);
static void client_close(Client *c);
static void up_close(Up *u);
static void ex_finish(Ex *x, int reuse_up);
static void ex_start(Client *c);
static void start_upstream(Ex *x);
static void client_flush(Client *c);
static void up_read(Up *u);

static void epoll_set(Engine *e, int fd, void *ptr, uint32_t events, int op) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = ptr;
    epoll_ctl(e->ep, op, fd, &ev);
}

/* --- Python callbacks ---------------------------------------------------------------- */

static void report_failure(Engine *e, Backend *b, const char *kind) {
    b->failing = 1;
    PyObject *r = PyObject_CallFunction(e->failure, "lis", b->table->version, b->index, kind);
    if (!r) PyErr_WriteUnraisable(e->failure);
    Py_XDECREF(r);
}

static void report_success(Engine *e, Backend *b) {
    if (!b->failing) return;
    b->failing = 0;
    PyObject *r = PyObject_CallFunction(e->success, "li", b->table->version, b->index);
    if (!r) PyErr_WriteUnraisable(e->success);
    Py_XDECREF(r);
}

/* Give the client connection to Python with what it sent and was not answered. */
static void handoff(Client *c) {
    Engine *e = c->eng;
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
    PyObject *data = PyBytes_FromStringAndSize(buf_at(&c->in), buf_size(&c->in));
    int fd = c->fd;
    c->fd = -1;
    e->handed_off++;
    if (data) {
        PyObject *r = PyObject_CallFunction(e->handoff, "iO", fd, data);
        if (!r) {
            PyErr_WriteUnraisable(e->handoff);
            close(fd);
        }
        Py_XDECREF(r);
        Py_DECREF(data);
    } else {
        PyErr_Clear();
        close(fd);
    }
    c->gone = 1;
    client_close(c);
}

/* --- the answer to the client -------------------------------------------------------- */

static const char *phrase(int code) {
    switch (code) {
    case 100: return "Continue"; case 101: return "Switching Protocols";
    case 200: return "OK"; case 201: return "Created"; case 202: return "Accepted";
    case 203: return "Non-Authoritative Information"; case 204: return "No Content";
    case 205: return "Reset Content"; case 206: return "Partial Content";
    case 207: return "Multi-Status"; case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices"; case 301: return "Moved Permanently";
    case 302: return "Found"; case 303: return "See Other"; case 304: return "Not Modified";
    case 305: return "Use Proxy"; case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request"; case 401: return "Unauthorized";
    case 402: return "Payment Required"; case 403: return "Forbidden";
    case 404: return "Not Found"; case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable"; case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout"; case 409: return "Conflict"; case 410: return "Gone";
    case 411: return "Length Required"; case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large"; case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type"; case 416: return "Requested Range Not Satisfiable";
    case 417: return "Expectation Failed"; case 418: return "I'm a Teapot";
    case 421: return "Misdirected Request"; case 422: return "Unprocessable Entity";
    case 423: return "Locked"; case 424: return "Failed Dependency"; case 425: return "Too Early";
    case 426: return "Upgrade Required"; case 428: return "Precondition Required";
    case 429: return "Too Many Requests"; case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error"; case 501: return "Not Implemented";
    case 502: return "Bad Gateway"; case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout"; case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates"; case 507: return "Insufficient Storage";
    case 508: return "Loop Detected"; case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return NULL;
    }
}

static int add_status_line(Buf *b, int code) {
    char line[96];
    const char *p = phrase(code);
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", code, p ? p : "Unknown");
    return buf_add(b, line, n);
}

static void record(Ex *x, int status) {
    Engine *e = x->c->eng;
    if (e->nrecords == e->caprecords) {
        size_t cap = e->caprecords ? e->caprecords * 2 : 256;
        Record *r = realloc(e->records, cap * sizeof *r);
        if (!r) return;
        e->records = r;
        e->caprecords = cap;
    }
    Record *r = &e->records[e->nrecords++];
    e->answered++;
    r->version = x->t->version;
    r->route = x->route;
    r->backend = x->backend;
    memcpy(r->method, x->method, sizeof r->method);
    r->path = x->path;
    x->path = NULL;
    r->status = status;
    r->seconds = now_s() - x->started;
    memcpy(r->rid, x->rid, sizeof r->rid);
}

/* A JSON error answer, as app._error gives it (nothing of the answer sent yet). */
/* While the router drains (SIGTERM), each answer says the connection ends after it. */
static void close_if_stopping(Client *c, Buf *o) {
    if (c->eng->stopping) {
        buf_add(o, "connection: close\r\n", 19);
        c->closing = 1;
    }
}

static void error_answer(Ex *x, int code, const char *kind, const char *message) {
    Client *c = x->c;
    Route *rt = &x->t->routes[x->route];
    char body[512];
    int n = snprintf(body, sizeof body, "{\"error\": {\"code\": \"%s\", \"message\": \"%s\"}}",
                     kind, message);
    if (n < 0 || n >= (int)sizeof body) n = (int)sizeof body - 1;
    Buf *o = &c->out;
    char line[64];
    add_status_line(o, code);
    buf_add(o, "content-type: application/json\r\n", 32);
    int m = snprintf(line, sizeof line, "content-length: %d\r\n", n);
    buf_add(o, line, m);
    buf_add(o, "x-request-id: ", 14);
    buf_add(o, x->rid, x->ridlen);
    buf_add(o, "\r\n", 2);
    buf_add(o, rt->route_line, rt->route_line_len);
    close_if_stopping(c, o);
    buf_add(o, "\r\n", 2);
    if (!x->head) buf_add(o, body, n);
    x->sent = 1;
    record(x, code);
}

/* --- client side: requests ----------------------------------------------------------- */

static int lower_eq(const char *a, size_t n, const char *lit) {
    size_t m = strlen(lit);
    return n == m && strncasecmp(a, lit, n) == 0;
}

typedef struct {
    const char *name, *value;
    size_t nlen, vlen;
} Hdr;

#define MAX_HDRS 100

static int is_tchar(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int stripped_request(const char *n, size_t len) {
    static const char *names[] = {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
        "x-strangler-dry-run", "x-strangler-router-token", "x-strangler-fence",
        "x-strangler-overtake", "x-strangler-backend", "x-strangler-operator-token",
        "x-request-id", "expect", NULL};
    for (int i = 0; names[i]; i++)
        if (lower_eq(n, len, names[i])) return 1;
    return len >= 12 && strncasecmp(n, "x-forwarded-", 12) == 0;
}

static int safe_id(const char *v, size_t n) {
    if (n < 1 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("._:@/+=-", ch)))
            return 0;
    }
    return 1;
}

/* Parse the request at the start of c->in. Returns 1 when taken (an exchange started),
 * 0 when more bytes are needed, -1 when it goes to Python. */
static int take_request(Client *c) {
    Engine *e = c->eng;
    Table *t = e->table;
    char *p = buf_at(&c->in);
    size_t avail = buf_size(&c->in);
    if (!t) return -1;
    size_t scan = avail < HEAD_MAX ? avail : HEAD_MAX;
    char *end = NULL;
    for (size_t i = 0; i + 3 < scan; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            end = p + i;
            break;
        }
    }
    if (!end) return avail >= HEAD_MAX ? -1 : 0;
    size_t headlen = end - p + 4;
    /* request line */
    char *eol = memchr(p, '\r', end - p + 2);
    if (!eol || eol[1] != '\n') return -1;
    char *sp1 = memchr(p, ' ', eol - p);
    if (!sp1 || sp1 == p || sp1 - p >= 20) return -1;
    for (char *q = p; q < sp1; q++)
        if (!(*q >= 'A' && *q <= 'Z')) return -1;
    char *target = sp1 + 1;
    char *sp2 = memchr(target, ' ', eol - target);
    if (!sp2 || sp2 == target) return -1;
    if (eol - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.1", 8) != 0) return -1;
    if (target[0] != '/') return -1;
    for (char *q = target; q < sp2; q++) {
        unsigned char ch = *q;
        if (ch == '%' || ch == '#' || ch <= 32 || ch >= 127) return -1;
    }
    size_t tlen = sp2 - target;
    char *qmark = memchr(target, '?', tlen);
    size_t pathlen = qmark ? (size_t)(qmark - target) : tlen;
    /* headers */
    Hdr h[MAX_HDRS];
    int nh = 0;
    const char *host = NULL, *xff = NULL, *xfp = NULL, *xfh = NULL, *rid = NULL;
    size_t hostl = 0, xffl = 0, xfpl = 0, xfhl = 0, ridl = 0;
    long long clen = -1;
    char *line = eol + 2;
    while (line < end + 2) {
        char *le = memchr(line, '\r', end + 2 - line);
        if (!le || le[1] != '\n') return -1;
        if (le == line) break;
        if (*line == ' ' || *line == '\t') return -1; /* obs-fold */
        char *colon = memchr(line, ':', le - line);
        if (!colon || colon == line) return -1;
        for (char *q = line; q < colon; q++)
            if (!is_tchar((unsigned char)*q)) return -1;
        char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (char *q = v; q < ve; q++)
            if ((unsigned char)*q < 32 && *q != '\t') return -1;
        if (nh == MAX_HDRS) return -1;
        Hdr *x = &h[nh++];
        x->name = line;
        x->nlen = colon - line;
        x->value = v;
        x->vlen = ve - v;
        const char *n = line;
        size_t nl = x->nlen;
#define DUP(var) \
    do { if (var) return -1; var = v; var##l = ve - v; } while (0)
        if (lower_eq(n, nl, "host")) DUP(host);
        else if (lower_eq(n, nl, "x-forwarded-for")) DUP(xff);
        else if (lower_eq(n, nl, "x-forwarded-proto")) DUP(xfp);
        else if (lower_eq(n, nl, "x-forwarded-host")) DUP(xfh);
        else if (lower_eq(n, nl, "x-request-id")) DUP(rid);
        else if (lower_eq(n, nl, "content-length")) {
            if (clen >= 0 || ve == v || ve - v > 9) return -1;
            clen = 0;
            for (char *q = v; q < ve; q++) {
                if (*q < '0' || *q > '9') return -1;
                clen = clen * 10 + (*q - '0');
            }
        } else if (lower_eq(n, nl, "connection")) {
            if (!lower_eq(v, ve - v, "keep-alive")) return -1;
        } else if (lower_eq(n, nl, "transfer-encoding") || lower_eq(n, nl, "expect") ||
                   lower_eq(n, nl, "upgrade") || lower_eq(n, nl, "x-strangler-backend")) {
            return -1;
        }
#undef DUP
        line = le + 2;
    }
    if (clen > BODY_MAX || clen > t->max_body) return -1;
    size_t body = clen > 0 ? (size_t)clen : 0;
    if (avail < headlen + body) return 0;
    /* route */
    if ((pathlen == 8 && memcmp(target, "/metrics", 8) == 0) ||
        (pathlen == 11 && memcmp(target, "/_strangler", 11) == 0) ||
        (pathlen >= 12 && memcmp(target, "/_strangler/", 12) == 0))
        return -1;
    for (int i = 0; i < t->ninternal; i++)
        if (seg_match(&t->internal[i], target, pathlen)) return -1;
    size_t mlen = sp1 - p;
    int found = -1;
    for (int i = 0; i < t->nroutes && found < 0; i++) {
        Route *r = &t->routes[i];
        if (r->methods) {
            int ok = 0;
            for (int k = 0; k < r->nmethods; k++)
                if (strlen(r->methods[k]) == mlen && memcmp(r->methods[k], p, mlen) == 0) ok = 1;
            if (!ok) continue;
        }
        if (seg_match(&r->pat, target, pathlen)) found = i;
    }
    if (found < 0) return -1;
    Route *r = &t->routes[found];
    Backend *b = &t->backends[r->backend];
    if (!r->plain || !b->usable || !b->allowed) return -1;
    int safe = 0;
    for (int i = 0; SAFE[i]; i++)
        if (strlen(SAFE[i]) == mlen && memcmp(SAFE[i], p, mlen) == 0) safe = 1;
    /* a shadowed write is a dry run with fences, and one sampled at 0 % still reports
     * its events for the fences: Python's */
    if (r->shadowed && !safe) return -1;
    /* the exchange */
    Ex *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->c = c;
    x->t = t;
    t->refs++;
    x->route = found;
    x->backend = r->backend;
    x->req_len = headlen + body;
    memcpy(x->method, p, mlen);
    x->method[mlen] = 0;
    x->head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    x->safe = safe;
    if (r->shadow_percent > 0) {
        e->rng ^= e->rng << 13;
        e->rng ^= e->rng >> 7;
        e->rng ^= e->rng << 17;
        x->shadow = r->shadow_percent >= 100 ||
                    (double)(e->rng >> 11) / 9007199254740992.0 * 100 < r->shadow_percent;
    }
    x->target_len = tlen;
    x->path = malloc(pathlen + 1);
    if (x->path) {
        memcpy(x->path, target, pathlen);
        x->path[pathlen] = 0;
        x->pathlen = pathlen;
    }
    x->started = x->last_activity = now_s();
    if (rid && safe_id(rid, ridl)) {
        memcpy(x->rid, rid, ridl);
        x->ridlen = (int)ridl;
    } else {
        x->ridlen = snprintf(x->rid, sizeof x->rid, "%s%016llx", e->prefix, e->ids++);
    }
    x->rid[x->ridlen] = 0;
    /* the upstream request, as app._upstream_block and Pool.request_head build it */
    Buf *u = &x->upreq;
    buf_add(u, p, mlen);
    buf_add(u, " ", 1);
    buf_add(u, target, tlen);
    buf_add(u, b->host, b->hostlen);
    x->block_start = u->len;
    for (int i = 0; i < nh; i++) {
        if (stripped_request(h[i].name, h[i].nlen)) continue;
        buf_reserve(u, h[i].nlen + h[i].vlen + 4);
        for (size_t k = 0; k < h[i].nlen; k++) {
            char ch = h[i].name[k];
            u->p[u->len++] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
        }
        buf_add(u, ": ", 2);
        buf_add(u, h[i].value, h[i].vlen);
        buf_add(u, "\r\n", 2);
    }
    buf_add(u, "x-forwarded-for: ", 17);
    if (xff && xffl) {
        buf_add(u, xff, xffl);
        buf_add(u, ", ", 2);
    }
    buf_add(u, c->ip, strlen(c->ip));
    buf_add(u, "\r\nx-forwarded-proto: ", 21);
    if (xfp && xfpl) buf_add(u, xfp, xfpl);
    else buf_add(u, "http", 4);
    buf_add(u, "\r\n", 2);
    const char *fh = (xfh && xfhl) ? xfh : host;
    size_t fhl = (xfh && xfhl) ? xfhl : hostl;
    if (fh && fhl) {
        buf_add(u, "x-forwarded-host: ", 18);
        buf_add(u, fh, fhl);
        buf_add(u, "\r\n", 2);
    }
    buf_add(u, "x-request-id: ", 14);
    buf_add(u, x->rid, x->ridlen);
    buf_add(u, "\r\n", 2);
    if (body || !x->safe) {
        char cl[48];
        int n = snprintf(cl, sizeof cl, "content-length: %zu\r\n", body);
        buf_add(u, cl, n);
    }
    x->block_end = u->len;
    buf_add(u, "\r\n", 2);
    if (body) buf_add(u, p + headlen, body);
    if (!u->p) { /* out of memory */
        table_unref(e, t);
        free(x->path);
        free(x);
        return -1;
    }
    c->ex = x;
    e->nexchanges++;
    start_upstream(x);
    return 1;
}

/* Take the next request of a client, if any is whole. */
static void ex_start(Client *c) {
    while (!c->ex && !c->closing && !c->gone && buf_size(&c->in)) {
        int r = take_request(c);
        if (r == 0) return;
        if (r < 0) {
            handoff(c);
            return;
        }
    }
}

/* --- upstream ------------------------------------------------------------------------ */

static Engine *eng_of(Up *u);

static void up_events(Up *u) {
    Engine *e = eng_of(u);
    uint32_t ev = EPOLLRDHUP;
    if (u->reading) ev |= EPOLLIN;
    if (u->want_out || u->connecting) ev |= EPOLLOUT;
    epoll_set(e, u->fd, u, ev, EPOLL_CTL_MOD);
}

static Up *up_new(Engine *e, Backend *b, int *err) {
    int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    if (b->addr.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    Up *u = calloc(1, sizeof *u);
    if (!u) {
        close(fd);
        *err = ENOMEM;
        return NULL;
    }
    u->kind = K_UP;
    u->fd = fd;
    u->be = b;
    if (connect(fd, (struct sockaddr *)&b->addr, b->addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            *err = errno;
            close(fd);
            free(u);
            return NULL;
        }
        u->connecting = 1;
    }
    b->open++;
    b->opened_at = now_s();
    epoll_set(e, fd, u, EPOLLRDHUP | (u->connecting ? EPOLLOUT : 0), EPOLL_CTL_ADD);
    return u;
}

static void up_fail(Up *u, const char *kind, const char *why);

static void up_send(Up *u) {
    Ex *x = u->ex;
    if (!x) return;
    while (x->upsent < buf_size(&x->upreq)) {
        ssize_t n = send(u->fd, buf_at(&x->upreq) + x->upsent, buf_size(&x->upreq) - x->upsent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                u->want_out = 1;
                up_events(u);
                return;
            }
            if (errno == EINTR) continue;
            up_fail(u, "error", "connection closed by the backend");
            return;
        }
        x->upsent += n;
    }
    u->want_out = 0;
    u->reading = 1;
    up_events(u);
}

static void attach(Ex *x, Up *u) {
    x->u = u;
    u->ex = x;
    x->last_activity = now_s();
    if (!u->connecting) up_send(u);
}

/* No connection could be made: nothing went upstream, so Python takes the client and
 * tries again itself (its error and its breaker count are then the usual ones). */
static void give_back_to_python(Ex *x) {
    Client *c = x->c;
    Engine *e = c->eng;
    c->ex = NULL;
    e->nexchanges--;
    buf_free(&x->upreq);
    free(x->path);
    table_unref(e, x->t);
    free(x);
    handoff(c);
}

static void start_upstream(Ex *x) {
    Engine *e = x->c->eng;
    Backend *b = &x->t->backends[x->backend];
    while (b->nidle) {
        Up *u = b->idle[--b->nidle];
        u->reused = 1;
        attach(x, u);
        return;
    }
    double now = now_s();
    if (b->open >= b->max_connections ||
        (!b->closes && b->open && now < b->opened_at + SLOW_START)) {
        x->waiting = 1;
        x->wait_next = NULL;
        if (b->wait_tail) b->wait_tail->wait_next = x;
        else b->wait_head = x;
        b->wait_tail = x;
        return;
    }
    int err = 0;
    Up *u = up_new(e, b, &err);
    if (!u) {
        give_back_to_python(x);
        return;
    }
    attach(x, u);
}

static void unwait(Ex *x) {
    Backend *b = &x->t->backends[x->backend];
    Ex **pp = &b->wait_head, *prev = NULL;
    while (*pp && *pp != x) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (*pp) {
        *pp = x->wait_next;
        if (b->wait_tail == x) b->wait_tail = prev;
    }
    x->waiting = 0;
}

/* A connection is free (or a slot): the first waiter takes it. */
static void serve_waiters(Backend *b) {
    while (b->wait_head) {
        double now = now_s();
        if (!b->nidle && (b->open >= b->max_connections ||
                          (!b->closes && b->open && now < b->opened_at + SLOW_START)))
            return;
        Ex *x = b->wait_head;
        b->wait_head = x->wait_next;
        if (!b->wait_head) b->wait_tail = NULL;
        x->waiting = 0;
        start_upstream(x);
    }
}

static void up_put_back(Up *u) {
    Backend *b = u->be;
    Table *t = b->table;
    u->ex = NULL;
    u->reused = 0;
    u->reading = 1; /* an idle connection's close shows as readable */
    u->in.off = u->in.len = 0;
    if (t->retired || b->nidle >= 256) {
        up_close(u);
        return;
    }
    if (b->nidle == b->capidle) {
        int cap = b->capidle ? b->capidle * 2 : 16;
        Up **n = realloc(b->idle, cap * sizeof *n);
        if (!n) {
            up_close(u);
            return;
        }
        b->idle = n;
        b->capidle = cap;
    }
    u->idle_since = now_s();
    b->idle[b->nidle++] = u;
    up_events(u);
    serve_waiters(b);
}

static void bury(Engine *e, void *p);

static void up_close(Up *u) {
    Backend *b = u->be;
    if (u->dead) return;
    for (int i = 0; i < b->nidle; i++) {
        if (b->idle[i] == u) {
            memmove(&b->idle[i], &b->idle[i + 1], (b->nidle - i - 1) * sizeof *b->idle);
            b->nidle--;
            break;
        }
    }
    if (u->dead) return;
    u->dead = 1;
    if (u->fd >= 0) close(u->fd); /* close takes it out of the epoll set */
    u->fd = -1;
    b->open--;
    buf_free(&u->in);
    bury(b->table->eng, u);
    serve_waiters(b);
}

static Engine *eng_of(Up *u) { return u->be->table->eng; }

static void bury(Engine *e, void *p) {
    if (e->ngrave == e->capgrave) {
        size_t cap = e->capgrave ? e->capgrave * 2 : 64;
        void **g = realloc(e->graveyard, cap * sizeof *g);
        if (!g) return; /* leaks one struct rather than risk a dangling pointer */
        e->graveyard = g;
        e->capgrave = cap;
    }
    e->graveyard[e->ngrave++] = p;
}

static void empty_graveyard(Engine *e) {
    for (size_t i = 0; i < e->ngrave; i++) free(e->graveyard[i]);
    e->ngrave = 0;
}

/* --- the answer: head, body, end ------------------------------------------------------ */

static int stripped_response(const char *n, size_t len) {
    static const char *names[] = {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "host", "x-request-id",
        "x-strangler-route", "x-strangler-events", NULL};
    for (int i = 0; names[i]; i++)
        if (lower_eq(n, len, names[i])) return 1;
    return 0;
}

static void client_events(Client *c) {
    if (c->dead || c->fd < 0) return;
    uint32_t ev = EPOLLRDHUP;
    if (buf_size(&c->in) < (1 << 20)) ev |= EPOLLIN;
    if (c->want_out) ev |= EPOLLOUT;
    epoll_set(c->eng, c->fd, c, ev, EPOLL_CTL_MOD);
}

static void up_fail(Up *u, const char *kind, const char *why);

/* Write what the client has waiting; close it when asked and all is out. */
static void client_flush(Client *c) {
    if (c->dead) return;
    while (buf_size(&c->out)) {
        ssize_t n = send(c->fd, buf_at(&c->out), buf_size(&c->out), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            client_close(c); /* the client is gone */
            return;
        }
        c->out.off += n;
    }
    int pending = buf_size(&c->out) > 0;
    if (pending != c->want_out) {
        c->want_out = pending;
        client_events(c);
    }
    if (!pending) {
        c->out.off = c->out.len = 0;
        if (c->closing && !c->ex) {
            client_close(c);
            return;
        }
    }
    /* flow control: a backend paused for a slow client reads again */
    Ex *x = c->ex;
    if (x && x->u && !x->u->reading && x->head_done && buf_size(&c->out) < OUT_HIGH / 4) {
        x->u->reading = 1;
        up_events(x->u);
    }
}

static void ex_free(Ex *x) {
    buf_free(&x->shead);
    buf_free(&x->sbody);
    buf_free(&x->upreq);
    free(x->path);
    free(x);
}

/* The exchange is over: the backend connection goes back to the pool (or closes), the
 * request's bytes are consumed and the client's next request, if whole, starts. */
static void ex_finish(Ex *x, int reuse_up) {
    Client *c = x->c;
    Engine *e = c->eng;
    Up *u = x->u;
    if (x->waiting) unwait(x);
    if (u) {
        u->ex = NULL;
        x->u = NULL;
        Backend *b = u->be;
        if (x->head_done) b->closes = !x->up_keep;
        /* reused only when the backend took the whole request and sent nothing more */
        if (reuse_up && x->up_keep && buf_size(&u->in) == 0 &&
            x->upsent == buf_size(&x->upreq))
            up_put_back(u);
        else up_close(u);
    }
    c->in.off += x->req_len;
    c->ex = NULL;
    e->nexchanges--;
    table_unref(e, x->t);
    ex_free(x);
    if (e->stopping) c->closing = 1;
    client_flush(c);
    if (!c->dead) {
        client_events(c);
        ex_start(c);
    }
}

static void body_out(Ex *x, const char *data, size_t n) {
    if (x->head || !n) return;
    if (x->shadow && !x->shadow_overflow) {
        if ((long)(buf_size(&x->sbody) + n) > x->t->shadow_max_body) {
            x->shadow_overflow = 1;
            buf_free(&x->sbody);
        } else {
            buf_add(&x->sbody, data, n);
        }
    }
    Buf *o = &x->c->out;
    if (x->framing == F_LENGTH) {
        buf_add(o, data, n);
    } else {
        char size[24];
        int m = snprintf(size, sizeof size, "%zx\r\n", n);
        buf_add(o, size, m);
        buf_add(o, data, n);
        buf_add(o, "\r\n", 2);
    }
}

static void answer_done(Ex *x) {
    if (x->framing == F_CHUNKED || x->framing == F_CLOSE) {
        if (!x->head) buf_add(&x->c->out, "0\r\n\r\n", 5);
    }
    Engine *e = x->c->eng;
    PyObject *job = NULL;
    if (x->shadow) {
        const char *up = buf_at(&x->upreq);
        size_t mlen = strlen(x->method);
        size_t total = buf_size(&x->upreq);
        size_t body_at = x->block_end + 2;
        job = Py_BuildValue(
            "(lisy#sy#y#iy#N)", x->t->version, x->route, x->method, up + mlen + 1,
            (Py_ssize_t)x->target_len, x->path ? x->path : "", up + x->block_start,
            (Py_ssize_t)(x->block_end - x->block_start), up + body_at,
            (Py_ssize_t)(total - body_at), x->status, x->shead.p ? x->shead.p : "",
            (Py_ssize_t)buf_size(&x->shead),
            x->shadow_overflow ? (Py_INCREF(Py_None), Py_None)
                               : PyBytes_FromStringAndSize(x->sbody.p ? buf_at(&x->sbody) : "",
                                                           buf_size(&x->sbody)));
        if (!job) PyErr_WriteUnraisable(e->shadow);
    }
    record(x, x->status);
    ex_finish(x, x->framing != F_CLOSE);
    if (job) {
        /* the client has its answer (or it is in the socket's buffer): the shadow now */
        PyObject *r = PyObject_CallObject(e->shadow, job);
        if (!r) PyErr_WriteUnraisable(e->shadow);
        Py_XDECREF(r);
        Py_DECREF(job);
    }
}

static int owned_elsewhere(const char *body, size_t n);

/* Parse the answer's head in u->in; 1 when done, 0 for more bytes, -1 malformed, 2 for a
 * write's 409 owned_elsewhere (nothing of it given to the client). */
static int parse_head(Ex *x, Up *u) {
    for (;;) {
        char *p = buf_at(&u->in);
        size_t n = buf_size(&u->in);
        char *end = NULL;
        for (size_t i = 0; i + 3 < n; i++)
            if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
                end = p + i;
                break;
            }
        if (!end) return n > 64 * 1024 ? -1 : 0;
        size_t headlen = end - p + 4;
        if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
            return -1;
        int http10 = p[7] == '0';
        int status = 0;
        for (int i = 9; i < 12; i++) {
            if (p[i] < '0' || p[i] > '9') return -1;
            status = status * 10 + (p[i] - '0');
        }
        if (status >= 100 && status < 200) {
            if (status == 101) return -1;
            u->in.off += headlen; /* an interim answer: the real one follows */
            continue;
        }
        char *eol = memchr(p, '\r', headlen);
        long long clen = -1;
        int chunked = 0, conn_close = http10, conn_keep = 0;
        /* first pass: framing */
        char *line = eol + 2;
        while (line < end) {
            char *le = memchr(line, '\r', end + 2 - line);
            if (!le) return -1;
            char *colon = memchr(line, ':', le - line);
            if (!colon || colon == line) return -1;
            /* as llhttp (the Python path) does: a name of token characters only (no
             * whitespace before the colon, no folded line), a value without controls */
            for (char *q = line; q < colon; q++)
                if (!is_tchar((unsigned char)*q)) return -1;
            for (char *q = colon + 1; q < le; q++) {
                unsigned char ch = (unsigned char)*q;
                if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return -1;
            }
            char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t nl = colon - line;
            if (lower_eq(line, nl, "content-length")) {
                long long value = 0;
                if (v == ve || ve - v > 15) return -1;
                for (char *q = v; q < ve; q++) {
                    if (*q < '0' || *q > '9') return -1;
                    value = value * 10 + (*q - '0');
                }
                if (clen >= 0 && clen != value) return -1;
                clen = value;
            } else if (lower_eq(line, nl, "transfer-encoding")) {
                if (lower_eq(v, ve - v, "chunked")) chunked = 1;
                else return -1;
            } else if (lower_eq(line, nl, "connection")) {
                /* a list: close or keep-alive among its tokens */
                char *q = v;
                while (q < ve) {
                    char *comma = memchr(q, ',', ve - q);
                    char *te = comma ? comma : ve;
                    char *a = q, *b = te;
                    while (a < b && (*a == ' ' || *a == '\t')) a++;
                    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
                    if (lower_eq(a, b - a, "close")) conn_close = 1;
                    if (lower_eq(a, b - a, "keep-alive")) conn_keep = 1;
                    q = comma ? comma + 1 : ve;
                }
            }
            line = le + 2;
        }
        x->status = status;
        int bodyless = x->head || status == 204 || status == 304;
        if (bodyless) x->framing = F_NONE;
        else if (chunked) x->framing = F_CHUNKED;
        else if (clen >= 0) x->framing = F_LENGTH;
        else x->framing = F_CLOSE;
        x->remaining = clen;
        x->up_keep = !(http10 ? !conn_keep : conn_close) && x->framing != F_CLOSE;
        if (x->framing == F_NONE && !x->head && clen > 0) x->up_keep = 0; /* 204 with a body */
        if (status == 409 && !x->safe && x->framing == F_LENGTH && clen <= BODY_MAX) {
            /* it may be owned_elsewhere: decide on the whole answer */
            if ((long long)(n - headlen) < clen) return 0;
            if (owned_elsewhere(p + headlen, (size_t)clen)) return 2;
        }
        if (x->shadow) buf_add(&x->shead, eol + 2, end + 2 - (eol + 2));
        /* the client's head */
        Client *c = x->c;
        Buf *o = &c->out;
        Route *rt = &x->t->routes[x->route];
        add_status_line(o, status);
        line = eol + 2;
        while (line < end) {
            char *le = memchr(line, '\r', end + 2 - line);
            char *colon = memchr(line, ':', le - line);
            size_t nl = colon - line;
            if (!stripped_response(line, nl)) buf_add(o, line, le + 2 - line);
            line = le + 2;
        }
        buf_add(o, "x-request-id: ", 14);
        buf_add(o, x->rid, x->ridlen);
        buf_add(o, "\r\n", 2);
        buf_add(o, rt->route_line, rt->route_line_len);
        if (x->framing == F_CHUNKED || x->framing == F_CLOSE)
            buf_add(o, "transfer-encoding: chunked\r\n", 28);
        close_if_stopping(c, o);
        buf_add(o, "\r\n", 2);
        x->sent = 1;
        x->head_done = 1;
        u->in.off += headlen;
        return 1;
    }
}

/* Is this whole 409 answer the dual-write guard's owned_elsewhere? (app._owned_elsewhere) */
static int owned_elsewhere(const char *body, size_t n) {
    static const char *forms[] = {"\"code\": \"owned_elsewhere\"", "\"code\":\"owned_elsewhere\"",
                                  NULL};
    for (int i = 0; forms[i]; i++) {
        size_t m = strlen(forms[i]);
        for (size_t k = 0; k + m <= n; k++)
            if (memcmp(body + k, forms[i], m) == 0) return 1;
    }
    return 0;
}

/* Relay what the backend sent after the head; finish the exchange when it is all in. */
static void relay_body(Ex *x, Up *u, int eof) {
    for (;;) {
        char *p = buf_at(&u->in);
        size_t n = buf_size(&u->in);
        if (x->framing == F_NONE) {
            answer_done(x);
            return;
        }
        if (x->framing == F_LENGTH) {
            size_t take = (long long)n < x->remaining ? n : (size_t)x->remaining;
            body_out(x, p, take);
            u->in.off += take;
            x->remaining -= take;
            if (x->remaining == 0) {
                answer_done(x);
                return;
            }
            break;
        }
        if (x->framing == F_CLOSE) {
            body_out(x, p, n);
            u->in.off += n;
            if (eof) {
                answer_done(x);
                return;
            }
            break;
        }
        /* chunked: 0 size line, 1 data, 2 CRLF after data, 3 trailers */
        if (x->cstate == 1) {
            size_t take = (long long)n < x->csize ? n : (size_t)x->csize;
            if (!take) break;
            body_out(x, p, take);
            u->in.off += take;
            x->csize -= take;
            if (x->csize == 0) x->cstate = 2;
            continue;
        }
        char *le = n ? memchr(p, '\n', n) : NULL;
        if (!le) {
            if (n > 4096) goto bad;
            break;
        }
        size_t linelen = le - p + 1;
        if (x->cstate == 2) {
            if (!(linelen == 2 && p[0] == '\r')) goto bad;
            u->in.off += linelen;
            x->cstate = 0;
            continue;
        }
        if (x->cstate == 3) {
            u->in.off += linelen;
            if (linelen <= 2) {
                answer_done(x);
                return;
            }
            continue;
        }
        long long size = 0;
        size_t i = 0;
        for (; i < linelen; i++) {
            char ch = p[i];
            int d = (ch >= '0' && ch <= '9') ? ch - '0'
                    : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                    : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10 : -1;
            if (d < 0) break;
            if (size > (1LL << 40)) goto bad;
            size = size * 16 + d;
        }
        if (i == 0) goto bad;
        u->in.off += linelen;
        if (size == 0) x->cstate = 3;
        else {
            x->csize = size;
            x->cstate = 1;
        }
    }
    if (eof) {
        up_fail(u, "error", "connection closed by the backend");
        return;
    }
    Client *c = x->c;
    client_flush(c);
    if (c->dead) return;
    if (buf_size(&c->out) > OUT_HIGH && u->reading) {
        u->reading = 0;
        up_events(u);
    }
    return;
bad:
    up_fail(u, "error", "bad response: malformed chunked body");
}

/* A failed exchange: before the answer started, the client gets the JSON error (or, for a
 * safe request on a kept-alive connection that had gone stale, it is sent again on a new
 * one); after, the client's connection closes. */
static void up_fail(Up *u, const char *kind, const char *why) {
    Ex *x = u->ex;
    Engine *e = eng_of(u);
    if (!x) {
        up_close(u);
        return;
    }
    Backend *b = u->be;
    Client *c = x->c;
    u->ex = NULL;
    x->u = NULL;
    int stale = u->reused && !x->got_bytes && strcmp(kind, "error") == 0;
    up_close(u);
    if (stale && x->safe) {
        x->upsent = 0;
        start_upstream(x);
        return;
    }
    report_failure(e, b, kind);
    if (c->dead) return;
    if (x->sent) {
        /* mid-answer: nothing to do but end the client's connection */
        c->closing = 1;
        c->in.off = c->in.len = 0;
        c->ex = NULL;
        e->nexchanges--;
        record(x, x->status);
        table_unref(e, x->t);
        ex_free(x);
        client_flush(c); /* what it has of the answer, then the close */
        return;
    }
    char message[384];
    if (strcmp(kind, "timeout") == 0) {
        snprintf(message, sizeof message, "Backend '%s' did not answer in time.", b->name);
        error_answer(x, 504, "backend_timeout", message);
    } else {
        snprintf(message, sizeof message, "Backend '%s' failed: %s.", b->name, why);
        error_answer(x, 502, "backend_error", message);
    }
    x->head_done = 0;
    ex_finish(x, 0);
}

static void up_read(Up *u) {
    Engine *e = eng_of(u);
    Ex *x = u->ex;
    int eof = 0;
    for (;;) {
        if (x && x->head_done && !u->reading) break; /* paused for a slow client */
        if (buf_reserve(&u->in, 16384)) {
            eof = -1;
            break;
        }
        ssize_t n = recv(u->fd, u->in.p + u->in.len, u->in.cap - u->in.len, 0);
        if (n > 0) {
            u->in.len += n;
            if (!x) {
                up_close(u); /* an idle connection that talks: not ours to keep */
                return;
            }
            x->got_bytes = 1;
            x->last_activity = now_s();
            if ((size_t)n < 16384) break;
            continue;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        eof = -1;
        break;
    }
    if (!x) {
        if (eof) up_close(u);
        return;
    }
    if (!x->head_done) {
        int r = parse_head(x, u);
        if (r < 0) {
            up_fail(u, "error", "bad response");
            return;
        }
        if (r == 0) {
            if (eof) up_fail(u, "error", "connection closed by the backend");
            return;
        }
        Backend *b = u->be;
        if (r == 2) {
            report_success(e, b);
            Client *c = x->c;
            u->ex = NULL;
            x->u = NULL;
            up_close(u);
            c->ex = NULL;
            e->nexchanges--;
            table_unref(e, x->t);
            ex_free(x);
            handoff(c); /* Python sends it again while ownership moves */
            return;
        }
        if (x->status >= 500) report_failure(e, b, "5xx");
        else report_success(e, b);
    }
    relay_body(x, u, eof != 0);
}

/* --- the client's events ------------------------------------------------------------- */

static void client_close(Client *c) {
    if (c->dead) return;
    Engine *e = c->eng;
    c->dead = 1;
    Ex *x = c->ex;
    if (x) {
        if (x->waiting) unwait(x);
        if (x->u) {
            x->u->ex = NULL;
            up_close(x->u);
        }
        c->ex = NULL;
        e->nexchanges--;
        table_unref(e, x->t);
        ex_free(x);
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (c->prev) c->prev->next = c->next;
    else e->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    e->nclients--;
    buf_free(&c->in);
    buf_free(&c->out);
    bury(e, c);
}

static void client_read(Client *c) {
    for (;;) {
        if (buf_size(&c->in) >= (1 << 20)) break;
        if (buf_reserve(&c->in, 16384)) {
            client_close(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
        if (n > 0) {
            c->in.len += n;
            if ((size_t)n < 16384) break;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            client_close(c);
            return;
        }
        if (errno == EINTR) continue;
        break;
    }
    c->last = now_s();
    if (!c->ex) ex_start(c);
    if (!c->dead) client_events(c);
}

/* A client connection (non-blocking) is the engine's from now on: accepted, or given back
 * by Python between two requests. -1 if it could not be taken (the caller closes it). */
static int client_add(Engine *e, int fd, const struct sockaddr_storage *ss) {
    Client *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->kind = K_CLIENT;
    c->fd = fd;
    c->eng = e;
    c->last = now_s();
    int one = 1;
    if (ss->ss_family == AF_INET) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, c->ip, sizeof c->ip);
    } else if (ss->ss_family == AF_INET6) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, c->ip,
                  sizeof c->ip);
    }
    c->next = e->clients;
    if (e->clients) e->clients->prev = c;
    e->clients = c;
    e->nclients++;
    epoll_set(e, fd, c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    return 0;
}

static void accept_all(Engine *e, int lfd) {
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or another worker took it */
        if (client_add(e, fd, &ss) < 0) close(fd);
    }
}

/* --- timers -------------------------------------------------------------------------- */

static double timers(Engine *e) {
    double now = now_s();
    double next = -1;
#define SOON(s) do { if (next < 0 || (s) < next) next = (s); } while (0)
    for (Client *c = e->clients, *nc; c; c = nc) {
        nc = c->next;
        if (c->dead) continue;
        Ex *x = c->ex;
        if (!x) {
            if (!buf_size(&c->out) && (e->stopping || now - c->last >= CLIENT_IDLE)) {
                client_close(c);
                continue;
            }
            SOON(CLIENT_IDLE - (now - c->last));
            continue;
        }
        Up *u = x->u;
        Backend *b = &x->t->backends[x->backend];
        if (u && u->connecting) {
            if (now - x->last_activity >= b->connect_timeout) {
                u->ex = NULL;
                x->u = NULL;
                up_close(u);
                give_back_to_python(x);
                continue;
            }
            SOON(0.05);
        } else if (u) {
            if (now - x->last_activity >= b->read_timeout) {
                up_fail(u, "timeout", "no answer in time");
                continue;
            }
            SOON(0.05);
        } else if (x->waiting) {
            serve_waiters(b); /* a config version retired meanwhile has no other turn */
            SOON(SLOW_START);
        }
    }
    for (Table *t = e->table; t; t = NULL) {
        for (int i = 0; i < t->nbackends; i++) {
            Backend *b = &t->backends[i];
            while (b->nidle && now - b->idle[0]->idle_since >= UP_IDLE) up_close(b->idle[0]);
            if (b->nidle) SOON(UP_IDLE);
            if (b->wait_head) {
                serve_waiters(b);
                SOON(SLOW_START);
            }
        }
    }
#undef SOON
    return next;
}

/* --- tables ---------------------------------------------------------------------------- */

static void pattern_free(Pattern *p) {
    for (int i = 0; i < p->nseg; i++) free(p->seg[i]);
    free(p->seg);
    free(p->seglen);
}

static void table_free(Table *t) {
    for (int i = 0; i < t->nbackends; i++) {
        free(t->backends[i].name);
        free(t->backends[i].host);
        free(t->backends[i].idle);
    }
    free(t->backends);
    for (int i = 0; i < t->nroutes; i++) {
        Route *r = &t->routes[i];
        for (int k = 0; k < r->nmethods; k++) free(r->methods[k]);
        free(r->methods);
        pattern_free(&r->pat);
        free(r->route_line);
    }
    free(t->routes);
    for (int i = 0; i < t->ninternal; i++) pattern_free(&t->internal[i]);
    free(t->internal);
    free(t);
}

static void table_unref(Engine *e, Table *t) {
    (void)e;
    if (--t->refs == 0) table_free(t);
}

static void table_retire(Engine *e, Table *t) {
    t->retired = 1;
    for (int i = 0; i < t->nbackends; i++) {
        Backend *b = &t->backends[i];
        while (b->nidle) up_close(b->idle[b->nidle - 1]);
    }
    table_unref(e, t);
}

/* --- the event loop's turn ----------------------------------------------------------- */

static int LISTEN_TAG = K_LISTEN;

static void up_writable(Up *u) {
    if (u->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            Ex *x = u->ex;
            u->ex = NULL;
            if (x) x->u = NULL;
            up_close(u);
            if (x) give_back_to_python(x);
            return;
        }
        u->connecting = 0;
    }
    up_send(u);
}

static void dispatch(Engine *e, struct epoll_event *ev) {
    void *ptr = ev->data.ptr;
    uint32_t what = ev->events;
    int kind = *(int *)ptr;
    if (kind == K_LISTEN) {
        for (int i = 0; i < e->nlisteners; i++) accept_all(e, e->listeners[i]);
        return;
    }
    if (kind == K_CLIENT) {
        Client *c = ptr;
        if (c->dead) return;
        if (what & EPOLLOUT) client_flush(c);
        if (c->dead) return;
        if (what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) client_read(c);
        return;
    }
    Up *u = ptr;
    if (u->dead) return;
    if (what & EPOLLOUT) {
        up_writable(u);
        if (u->dead) return;
        if (u->connecting) return;
    }
    if (what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (u->connecting) {
            up_writable(u);
            return;
        }
        up_read(u);
    }
}

static PyObject *next_timer(double next) {
    if (next < 0) Py_RETURN_NONE;
    return PyFloat_FromDouble(next < 0.001 ? 0.001 : next);
}

static PyObject *Engine_run(Engine *e, PyObject *unused) {
    struct epoll_event events[MAX_EVENTS];
    for (int round = 0; round < 16; round++) {
        int n = epoll_wait(e->ep, events, MAX_EVENTS, 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) dispatch(e, &events[i]);
        empty_graveyard(e);
        if (PyErr_Occurred()) return NULL;
        if (n < MAX_EVENTS) break;
    }
    double next = timers(e);
    empty_graveyard(e);
    return next_timer(next);
}

static PyObject *Engine_tick(Engine *e, PyObject *unused) {
    double next = timers(e);
    empty_graveyard(e);
    return next_timer(next);
}

/* --- the Python type ----------------------------------------------------------------- */

static int Engine_init(Engine *e, PyObject *args, PyObject *kw) {
    PyObject *handoff, *failure, *success, *shadow;
    const char *prefix;
    if (!PyArg_ParseTuple(args, "OOOOs", &handoff, &failure, &success, &shadow, &prefix))
        return -1;
    if (strlen(prefix) >= sizeof e->prefix) {
        PyErr_SetString(PyExc_ValueError, "id prefix too long");
        return -1;
    }
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    if (e->ep < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    Py_INCREF(handoff);
    Py_INCREF(failure);
    Py_INCREF(success);
    Py_INCREF(shadow);
    e->shadow = shadow;
    e->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)(now_s() * 1e9) ^ 0x9E3779B97F4A7C15ULL;
    if (!e->rng) e->rng = 1;
    e->handoff = handoff;
    e->failure = failure;
    e->success = success;
    strcpy(e->prefix, prefix);
    /* ids apart from the Python path's counter, which starts at 0 */
    e->ids = 1ULL << 62;
    e->accepting = 1;
    return 0;
}

static void close_everything(Engine *e) {
    while (e->clients) client_close(e->clients);
    if (e->table) {
        table_retire(e, e->table);
        e->table = NULL;
    }
    empty_graveyard(e);
    for (int i = 0; i < e->nlisteners; i++) epoll_ctl(e->ep, EPOLL_CTL_DEL, e->listeners[i], NULL);
    e->nlisteners = 0;
}

static void Engine_dealloc(Engine *e) {
    if (e->ep > 0) {
        close_everything(e);
        close(e->ep);
        e->ep = -1;
    }
    for (size_t i = 0; i < e->nrecords; i++) free(e->records[i].path);
    free(e->records);
    free(e->graveyard);
    Py_XDECREF(e->handoff);
    Py_XDECREF(e->failure);
    Py_XDECREF(e->success);
    Py_XDECREF(e->shadow);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Engine_fileno(Engine *e, PyObject *unused) { return PyLong_FromLong(e->ep); }

static PyObject *Engine_listen(Engine *e, PyObject *arg) {
    int fd = (int)PyLong_AsLong(arg);
    if (fd < 0 && PyErr_Occurred()) return NULL;
    if (e->nlisteners == 8) {
        PyErr_SetString(PyExc_ValueError, "at most 8 listening sockets");
        return NULL;
    }
    e->listeners[e->nlisteners++] = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &LISTEN_TAG};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        e->nlisteners--;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static int pattern_from(PyObject *segs, int glob, Pattern *p) {
    Py_ssize_t n = PySequence_Size(segs);
    if (n < 0) return -1;
    p->nseg = (int)n;
    p->glob = glob;
    p->seg = calloc(n ? n : 1, sizeof *p->seg);
    p->seglen = calloc(n ? n : 1, sizeof *p->seglen);
    if (!p->seg || !p->seglen) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PySequence_GetItem(segs, i);
        if (!s) return -1;
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(s, &len);
        if (!text) {
            Py_DECREF(s);
            return -1;
        }
        p->seg[i] = malloc(len + 1);
        memcpy(p->seg[i], text, len + 1);
        p->seglen[i] = len;
        Py_DECREF(s);
    }
    return 0;
}

/* configure(version, backends, routes, internal, max_body, shadow_max_body)
 *   backends: (name, family "unix"|"inet"|"inet6"|"", address, port, host_header bytes,
 *              connect_timeout, read_timeout, max_connections, allowed)
 *   routes, in match order (most specific first): (methods tuple or None, segments,
 *              glob, plain, backend index, route line bytes, shadowed, shadow percent)
 *   internal: (segments, glob) */
static PyObject *Engine_configure(Engine *e, PyObject *args) {
    long version, max_body, shadow_max_body;
    PyObject *backends, *routes, *internal;
    if (!PyArg_ParseTuple(args, "lO!O!O!ll", &version, &PyList_Type, &backends, &PyList_Type,
                          &routes, &PyList_Type, &internal, &max_body, &shadow_max_body))
        return NULL;
    Table *t = calloc(1, sizeof *t);
    if (!t) return PyErr_NoMemory();
    t->eng = e;
    t->version = version;
    t->refs = 1;
    t->max_body = max_body;
    t->shadow_max_body = shadow_max_body;
    t->nbackends = (int)PyList_GET_SIZE(backends);
    t->backends = calloc(t->nbackends ? t->nbackends : 1, sizeof *t->backends);
    t->nroutes = (int)PyList_GET_SIZE(routes);
    t->routes = calloc(t->nroutes ? t->nroutes : 1, sizeof *t->routes);
    t->ninternal = (int)PyList_GET_SIZE(internal);
    t->internal = calloc(t->ninternal ? t->ninternal : 1, sizeof *t->internal);
    if (!t->backends || !t->routes || !t->internal) goto nomem;
    for (int i = 0; i < t->nbackends; i++) {
        Backend *b = &t->backends[i];
        const char *name, *family, *address;
        int port, maxc, allowed;
        Py_buffer host;
        double ct, rt;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(backends, i), "sssiy*ddip", &name, &family,
                              &address, &port, &host, &ct, &rt, &maxc, &allowed))
            goto fail;
        b->table = t;
        b->index = i;
        b->name = strdup(name);
        b->connect_timeout = ct;
        b->read_timeout = rt;
        b->max_connections = maxc > 0 ? maxc : 1;
        b->allowed = allowed;
        const char *pre = " HTTP/1.1\r\nHost: ";
        b->hostlen = strlen(pre) + host.len + 2;
        b->host = malloc(b->hostlen + 1);
        if (b->host) {
            memcpy(b->host, pre, strlen(pre));
            memcpy(b->host + strlen(pre), host.buf, host.len);
            memcpy(b->host + strlen(pre) + host.len, "\r\n", 3);
        }
        PyBuffer_Release(&host);
        if (!b->name || !b->host) goto nomem;
        if (strcmp(family, "unix") == 0) {
            struct sockaddr_un *sa = (struct sockaddr_un *)&b->addr;
            if (strlen(address) >= sizeof sa->sun_path) continue;
            sa->sun_family = AF_UNIX;
            strcpy(sa->sun_path, address);
            b->addrlen = sizeof *sa;
            b->usable = 1;
        } else if (strcmp(family, "inet") == 0) {
            struct sockaddr_in *sa = (struct sockaddr_in *)&b->addr;
            sa->sin_family = AF_INET;
            sa->sin_port = htons(port);
            if (inet_pton(AF_INET, address, &sa->sin_addr) == 1) {
                b->addrlen = sizeof *sa;
                b->usable = 1;
            }
        } else if (strcmp(family, "inet6") == 0) {
            struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&b->addr;
            sa->sin6_family = AF_INET6;
            sa->sin6_port = htons(port);
            if (inet_pton(AF_INET6, address, &sa->sin6_addr) == 1) {
                b->addrlen = sizeof *sa;
                b->usable = 1;
            }
        }
    }
    for (int i = 0; i < t->nroutes; i++) {
        Route *r = &t->routes[i];
        PyObject *methods, *segs;
        int glob, plain, backend, shadowed;
        Py_buffer line;
        double shadow_percent;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(routes, i), "OOppiy*pd", &methods, &segs, &glob,
                              &plain, &backend, &line, &shadowed, &shadow_percent))
            goto fail;
        r->shadowed = shadowed;
        r->shadow_percent = shadow_percent;
        r->plain = plain;
        r->backend = backend;
        r->route_line = malloc(line.len ? line.len : 1);
        memcpy(r->route_line, line.buf, line.len);
        r->route_line_len = line.len;
        PyBuffer_Release(&line);
        if (backend < 0 || backend >= t->nbackends) {
            PyErr_SetString(PyExc_ValueError, "route backend index out of range");
            goto fail;
        }
        if (methods != Py_None) {
            Py_ssize_t n = PySequence_Size(methods);
            if (n < 0) goto fail;
            r->methods = calloc(n ? n : 1, sizeof *r->methods);
            r->nmethods = (int)n;
            for (Py_ssize_t k = 0; k < n; k++) {
                PyObject *m = PySequence_GetItem(methods, k);
                const char *text = m ? PyUnicode_AsUTF8(m) : NULL;
                if (!text) {
                    Py_XDECREF(m);
                    goto fail;
                }
                r->methods[k] = strdup(text);
                Py_DECREF(m);
            }
        }
        if (pattern_from(segs, glob, &r->pat)) goto fail;
    }
    for (int i = 0; i < t->ninternal; i++) {
        PyObject *segs;
        int glob;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(internal, i), "Op", &segs, &glob)) goto fail;
        if (pattern_from(segs, glob, &t->internal[i])) goto fail;
    }
    if (e->table) table_retire(e, e->table);
    e->table = t;
    empty_graveyard(e);
    Py_RETURN_NONE;
nomem:
    PyErr_NoMemory();
fail:
    table_free(t);
    return NULL;
}

static PyObject *Engine_allow(Engine *e, PyObject *args) {
    int index, allowed;
    if (!PyArg_ParseTuple(args, "ip", &index, &allowed)) return NULL;
    if (e->table && index >= 0 && index < e->table->nbackends)
        e->table->backends[index].allowed = allowed;
    Py_RETURN_NONE;
}

static PyObject *Engine_drain(Engine *e, PyObject *unused) {
    PyObject *out = PyList_New(e->nrecords);
    if (!out) return NULL;
    for (size_t i = 0; i < e->nrecords; i++) {
        Record *r = &e->records[i];
        PyObject *item = Py_BuildValue("(liissids)", r->version, r->route, r->backend, r->method,
                                       r->path ? r->path : "", r->status, r->seconds, r->rid);
        free(r->path);
        r->path = NULL;
        if (!item) {
            for (size_t k = i + 1; k < e->nrecords; k++) free(e->records[k].path);
            e->nrecords = 0;
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    e->nrecords = 0;
    return out;
}

static PyObject *Engine_stop_accepting(Engine *e, PyObject *unused) {
    for (int i = 0; i < e->nlisteners; i++) epoll_ctl(e->ep, EPOLL_CTL_DEL, e->listeners[i], NULL);
    e->nlisteners = 0;
    e->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *Engine_busy(Engine *e, PyObject *unused) {
    return Py_BuildValue("(ii)", e->nclients, e->nexchanges);
}

/* adopt(fd) -> bool: a client connection Python gives back between two requests, with
 * nothing of the next one read (what arrives is read here). The engine owns fd from now
 * on if True; False while it stops accepting, or if it cannot (fd stays the caller's). */
static PyObject *Engine_adopt(Engine *e, PyObject *arg) {
    int fd = (int)PyLong_AsLong(arg);
    if (fd < 0 && PyErr_Occurred()) return NULL;
    if (e->stopping || fd < 0) Py_RETURN_FALSE;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) Py_RETURN_FALSE;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) Py_RETURN_FALSE;
    if (client_add(e, fd, &ss) < 0) Py_RETURN_FALSE;
    e->taken_back++;
    Py_RETURN_TRUE;
}

static PyObject *Engine_counts(Engine *e, PyObject *unused) {
    return Py_BuildValue("(KKK)", e->answered, e->handed_off, e->taken_back);
}

static PyObject *Engine_close_idle(Engine *e, PyObject *unused) {
    for (Client *c = e->clients, *nc; c; c = nc) {
        nc = c->next;
        if (!c->ex && !buf_size(&c->out)) client_close(c);
    }
    empty_graveyard(e);
    Py_RETURN_NONE;
}

static PyObject *Engine_close(Engine *e, PyObject *unused) {
    close_everything(e);
    Py_RETURN_NONE;
}

static PyMethodDef Engine_methods[] = {
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "the epoll descriptor to watch"},
    {"listen", (PyCFunction)Engine_listen, METH_O, "accept on this listening socket"},
    {"configure", (PyCFunction)Engine_configure, METH_VARARGS, "install a config version"},
    {"allow", (PyCFunction)Engine_allow, METH_VARARGS, "a backend's breaker closed or not"},
    {"run", (PyCFunction)Engine_run, METH_NOARGS, "handle what is ready"},
    {"tick", (PyCFunction)Engine_tick, METH_NOARGS, "timeouts and slow start"},
    {"drain", (PyCFunction)Engine_drain, METH_NOARGS, "the answered requests since last"},
    {"stop_accepting", (PyCFunction)Engine_stop_accepting, METH_NOARGS, "stop accepting"},
    {"busy", (PyCFunction)Engine_busy, METH_NOARGS, "(clients, exchanges)"},
    {"adopt", (PyCFunction)Engine_adopt, METH_O, "a client connection given back"},
    {"counts", (PyCFunction)Engine_counts, METH_NOARGS,
     "(answered, handed off, taken back)"},
    {"close_idle", (PyCFunction)Engine_close_idle, METH_NOARGS, "close idle clients"},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "close everything"},
    {NULL}};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router._engine.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_doc = "The router's data path for plain routes (router/_engine.c).",
};

static struct PyModuleDef engine_module = {PyModuleDef_HEAD_INIT, "_engine",
                                           "The router's C data path.", -1, NULL};

PyMODINIT_FUNC PyInit__engine(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&engine_module);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
