"""Fixtures for router integration tests: real echo backends and a real router process."""

from __future__ import annotations

import pytest

from strangler.routing.store import RouteStore
from tests.integration.router import procs
from tests.integration.router.scripted import Handler, RouterThread, Scripted


def config_text(backends: dict[str, str], routes: str, settings: str = "") -> str:
    lines = ["backends:"]
    for name, url in backends.items():
        lines += [
            f"  {name}:",
            f"    url: {url}",
            "    read_timeout: 1.0",
            "    dry_run: true",
        ]
    if settings:
        lines += ["settings:", settings]
    return "\n".join(lines) + "\nroutes:\n" + routes


@pytest.fixture
def two_backends(tmp_path):
    a = procs.backend("alpha", tmp_path)
    b = procs.backend("beta", tmp_path)
    with procs.running(a, b):
        yield a, b


@pytest.fixture
def store(tmp_path) -> RouteStore:
    return RouteStore(tmp_path / "store")


@pytest.fixture
def start_router(tmp_path, store):
    started: list[procs.Proc] = []

    def start(**env: str) -> procs.Proc:
        proc = procs.router(store.root, tmp_path, **env)
        proc.start("/_strangler/healthz")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def scripted():
    started: list[Scripted] = []

    def start(handler: Handler) -> Scripted:
        backend = Scripted(handler)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def router_thread(tmp_path):
    """Start ``RouterThread``s on a config text; all are closed at the end."""
    started: list[RouterThread] = []

    def start(config: str, **options) -> RouterThread:
        router = RouterThread(tmp_path / f"rt{len(started)}", config, **options)
        started.append(router)
        return router

    yield start
    for router in started:
        router.close()
