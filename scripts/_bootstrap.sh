# Sourced by scripts/run and scripts/test: make .venv with the pinned dependencies.
# Idempotent: reinstalls only when requirements.lock or pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STRANGLER_VENV:-$ROOT/.venv}"

strangler_bootstrap() {
    local py="${STRANGLER_PYTHON:-}"
    if [ -z "$py" ]; then
        for candidate in python3.11 python3.12 python3.13 python3; do
            if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
        done
    fi
    if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "strangler: Python 3.11 or newer is required (set STRANGLER_PYTHON to its path)" >&2
        exit 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "strangler: creating virtualenv in $VENV" >&2
        "$py" -m venv "$VENV"
    fi
    local want have
    want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    have="$(cat "$VENV/.strangler-installed" 2>/dev/null || true)"
    if [ "$want" != "$have" ]; then
        echo "strangler: installing pinned dependencies from requirements.lock" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.lock"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
        echo "$want" > "$VENV/.strangler-installed"
    fi
    # The router's C data path; rebuilt when router/_engine.c changed.
    "$VENV/bin/python" "$ROOT/scripts/build_engine"
    export PATH="$VENV/bin:$PATH"
}
