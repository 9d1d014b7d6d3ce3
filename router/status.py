"""The operator's view of a running router: ``/_strangler/`` (HTML) and ``/_strangler/api/*``
(JSON): live version, routes, backends with breaker states, request counts, shadow parity."""

from __future__ import annotations

import html
import json
import time
from typing import TYPE_CHECKING, Any

from router.metrics import STATS
from router.shadow import summarize
from router.workers import sum_counts, sum_shadow
from strangler.routing.cli import route_rows

if TYPE_CHECKING:
    from router.app import Router

JSON = "application/json"


def snapshot(router: Router) -> dict[str, Any]:
    router.settle()
    state = router.state
    shadower = router.shadower
    counts = STATS.per_route_and_backend()
    shadow = shadower.counts.by_route if shadower else {}
    queued = shadower.queue.qsize() if shadower else 0
    workers = None
    if router.shared is not None:
        # Several workers: this one's live figures and the others' last published.
        others = router.shared.others()
        counts = sum_counts(
            [[r, b, n] for (r, b), n in counts.items()]
            + [row for o in others for row in o.get("counts", [])]
        )
        shadow = sum_shadow([shadow, *(o.get("shadow", {}) for o in others)])
        queued += sum(o.get("shadow_queue", 0) for o in others if o["alive"])
        workers = [{"pid": router.shared.pid, "version": router.version, "this": True}]
        workers += [
            {"pid": o.get("pid"), "version": o.get("version"), "alive": o["alive"],
             "published_seconds_ago": round(time.time() - o.get("at", 0), 1)}
            for o in others
        ]  # fmt: skip
    return {
        "version": state.version if state else None,
        "loaded_at": state.loaded_at if state else None,
        "last_refused": router.last_error,
        "routes": route_rows(state.config) if state else [],
        "backends": {
            name: {
                "url": pool.backend.url,
                "breaker": router.breakers[name].state,
            }
            for name, pool in (state.pools.items() if state else [])
        },
        "counts": [
            {"route": route, "backend": backend, "requests": n}
            for (route, backend), n in sorted(counts.items())
        ],
        "shadow": summarize(shadow),
        "shadow_queue": queued,
        # None with one worker; else each worker's pid and config version.
        "workers": workers,
        # The C data path of this worker: requests it answered, connections it handed
        # to Python; None when the router runs on its Python path alone.
        "engine": router.datapath.counts() if router.datapath is not None else None,
    }


def render(router: Router, path: str) -> tuple[int, bytes, str]:
    data = snapshot(router)
    api = {
        "/_strangler/api/status": lambda: data,
        "/_strangler/api/routes": lambda: {
            "version": data["version"],
            "routes": data["routes"],
        },
        "/_strangler/api/history": lambda: {"history": router.store.history()},
    }
    if path in api:
        return 200, json.dumps(api[path](), indent=2).encode(), JSON
    if path in {"/_strangler", "/_strangler/"}:
        return 200, _page(data).encode(), "text/html; charset=utf-8"
    body = {
        "error": {
            "code": "not_found",
            "message": f"No status page at {path}; try /_strangler/api/status.",
        }
    }
    return 404, json.dumps(body).encode(), JSON


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.1%}"


def _page(data: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        "<tr>"
        f"<td>{e(r['name'])}</td><td>{e(','.join(r['methods']))}</td><td>{e(r['path'])}</td>"
        f"<td>{e(r['to'])}</td>"
        f"<td>{e(json.dumps(r['canary'])) if r['canary'] else ''}</td>"
        f"<td>{e(json.dumps(r['shadow'])) if r['shadow'] else ''}</td>"
        f"<td>{e(r['fallback'] or '')}</td>"
        "</tr>"
        for r in data["routes"]
    )
    backends = "".join(
        f"<tr><td>{e(n)}</td><td>{e(b['url'])}</td><td>{e(b['breaker'])}</td></tr>"
        for n, b in data["backends"].items()
    )
    counts = "".join(
        f"<tr><td>{e(c['route'])}</td><td>{e(c['backend'])}</td><td>{c['requests']}</td></tr>"
        for c in data["counts"]
    )
    shadow = "".join(
        f"<tr><td>{e(route)}</td><td>{s['match'] + s['converged']}</td>"
        f"<td>{s['mismatch']}</td><td>{s['not_comparable']}</td>"
        f"<td>{s['error']}</td><td>{s['dropped']}</td>"
        f"<td>{_percent(s['parity'])}</td></tr>"
        for route, s in data["shadow"].items()
    )
    refused = (
        f"<p><b>Refused:</b> version {data['last_refused']['version']}: "
        f"<pre>{e(data['last_refused']['error'])}</pre></p>"
        if data["last_refused"]
        else ""
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>strangler router</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body><h1>strangler router — config version {data["version"]}</h1>{refused}
<h2>Routes</h2><table><tr><th>name</th><th>methods</th><th>path</th><th>to</th><th>canary</th>
<th>shadow</th><th>fallback</th></tr>{rows}</table>
<h2>Backends</h2><table><tr><th>name</th><th>url</th><th>breaker</th></tr>{backends}</table>
<h2>Requests</h2><table><tr><th>route</th><th>backend</th><th>count</th></tr>{counts}</table>
<h2>Shadow</h2><table><tr><th>route</th><th>match</th><th>mismatch</th>
<th>not comparable</th><th>error</th><th>dropped</th><th>parity</th></tr>{shadow}</table>
</body></html>"""
