#!/usr/bin/env sh
# Container entry point: STRANGLER_ROLE chooses the process (monolith, vote, choice, ...).
set -eu
role="${STRANGLER_ROLE:?set STRANGLER_ROLE (monolith, vote, choice, router, relay, consume)}"
workers="${WEB_WORKERS:-2}"
threads="${WEB_THREADS:-4}"

serve_django() {
    project="$1"; module="$2"
    if [ "${MIGRATE_ON_START:-1}" = "1" ]; then
        python "$project/manage.py" migrate --noinput
    fi
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    # gthread keeps connections alive: the router reuses them (docs/router.md, Performance).
    # UNIX_SOCKET: also listen there, for the router on a shared volume (cheaper than TCP);
    # umask 007 lets only the image's user and group connect.
    exec gunicorn "$module.wsgi" --bind "0.0.0.0:${PORT:-8000}" \
        ${UNIX_SOCKET:+--bind "unix:$UNIX_SOCKET" --umask 007} --workers "$workers" \
        --worker-class gthread --threads "$threads" --keep-alive 5 --access-logfile - \
        --graceful-timeout 10
}

case "$role" in
    monolith) serve_django monolith monolith.config ;;
    vote) serve_django extracted/vote_service extracted.vote_service.config ;;
    choice) serve_django extracted/choice_service extracted.choice_service.config ;;
    router) exec python -m router ${ROUTER_BOOTSTRAP:+--bootstrap "$ROUTER_BOOTSTRAP"} ;;
    relay) exec strangler relay --producer "${STRANGLER_PRODUCER:?set STRANGLER_PRODUCER}" ;;
    consume) exec strangler consume --service "${STRANGLER_SERVICE:?set STRANGLER_SERVICE}" ;;
    *) echo "unknown STRANGLER_ROLE: $role" >&2; exit 2 ;;
esac
