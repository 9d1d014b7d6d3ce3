"""scripts/stack.py's Unix sockets: the monolith, vote and choice listen on one beside their
port, and the router's bootstrap config sends it there, or over TCP when var/ is too deep."""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strangler.routing.schema import UNIX_PATH_MAX, load_config
from strangler.routing.store import RouteStore

ROOT = Path(__file__).resolve().parents[2]


def _load_stack():
    spec = importlib.util.spec_from_file_location(
        "strangler_stack", ROOT / "scripts" / "stack.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


stack = _load_stack()
ARGS = argparse.Namespace(users=1, questions=1, votes=1, password="pw")
WSGI_APP = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["HTTP_HOST"].encode()]
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, host: str) -> None:
        super().__init__(host, timeout=5)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def _var_of_length(tmp_path: Path, socket_path_bytes: int) -> Path:
    """A var/ whose longest socket path (run/monolith.sock) is exactly that long."""
    pad = socket_path_bytes - len(str(tmp_path / "x" / "run" / "monolith.sock"))
    assert pad >= 0, "tmp_path is already too long for this test"
    return tmp_path / ("x" * (pad + 1))


def test_router_bootstrap_sends_each_backend_to_its_socket_on_the_stacks_ports(
    tmp_path,
):
    var = tmp_path / "var"
    var.mkdir()
    ports = stack.Ports.from_base(8001)
    sockets = stack.prepare_sockets(var)

    path = stack.router_bootstrap(var, ports, sockets)

    config = load_config(path.read_text(), source=str(path))
    for name, port in (("monolith", 8001), ("vote", 8002), ("choice", 8003)):
        backend = config.backends[name]
        assert backend.url == f"http://127.0.0.1:{port}"
        assert backend.socket == str(var / "run" / f"{name}.sock")
    assert config.backends["vote"].dry_run is True
    assert [route.name for route in config.routes] == ["votes", "choices", "default"]
    assert (var / "run").stat().st_mode & 0o777 == 0o700
    processes = {p.name: p for p in stack.stack(ARGS, ports, path, sockets)}
    for name in ("monolith", "vote", "choice"):
        assert f"unix:{var / 'run' / name}.sock" in processes[name].argv
        assert f"127.0.0.1:{getattr(ports, name)}" in processes[name].argv


def test_router_bootstrap_is_written_on_the_default_ports_when_sockets_are_used(
    tmp_path,
):
    path = stack.router_bootstrap(
        tmp_path, stack.Ports.from_base(8000), stack.prepare_sockets(tmp_path)
    )

    assert path == tmp_path / "router-bootstrap.yaml"
    config = load_config(path.read_text())
    assert config.backends["monolith"].url == "http://127.0.0.1:8000"
    assert config.backends["monolith"].socket == str(tmp_path / "run/monolith.sock")


def test_a_socket_path_of_the_unix_limit_is_used(tmp_path, capsys):
    var = _var_of_length(tmp_path, UNIX_PATH_MAX)

    sockets = stack.prepare_sockets(var)

    assert len(str(sockets["monolith"]).encode()) == UNIX_PATH_MAX
    assert capsys.readouterr().err == ""


def test_a_var_too_deep_for_a_socket_path_leaves_the_router_on_tcp(tmp_path, capsys):
    var = _var_of_length(tmp_path, UNIX_PATH_MAX + 1)
    var.mkdir()
    ports = stack.Ports.from_base(9000)

    sockets = stack.prepare_sockets(var)
    path = stack.router_bootstrap(var, ports, sockets)

    assert sockets == {}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too deep for a Unix socket path" in err
    assert not (var / "run").exists()
    config = load_config(path.read_text())
    assert config.backends["monolith"].url == "http://127.0.0.1:9000"
    assert all(b.socket is None for b in config.backends.values())
    for process in stack.stack(ARGS, ports, path, sockets):
        assert not any(arg.startswith("unix:") for arg in process.argv)


def _get(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.timeout(60)
def test_gunicorn_answers_on_its_port_and_on_its_unix_socket(tmp_path):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "__init__.py").write_text("")
    (tmp_path / "probe" / "wsgi.py").write_text(WSGI_APP)
    unix = stack.prepare_sockets(tmp_path / "var")["vote"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = stack.gunicorn("probe", port, workers=1, unix_socket=unix)
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not unix.exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "gunicorn made no socket within 30 s"
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()

        tcp = _get(http.client.HTTPConnection("127.0.0.1", port, timeout=5))
        over_unix = _get(UnixHTTPConnection(unix, "vote.internal"))

        assert tcp == (200, f"127.0.0.1:{port}".encode())
        assert over_unix == (200, b"vote.internal")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert not unix.exists()  # gunicorn removes its socket when it stops


def test_a_stored_router_config_elsewhere_is_named_with_the_command_that_moves_it(
    tmp_path,
):
    """A var/ whose router store predates the sockets (or another --port-base) keeps
    its config: the stack says which backends are elsewhere and how to move them, and
    following that advice leaves nothing to say."""
    var = tmp_path / "var"
    var.mkdir()
    store_dir = var / "router"
    (tmp_path / "old").mkdir()
    old = stack.router_bootstrap(tmp_path / "old", stack.Ports.from_base(9000), {})
    RouteStore(store_dir).commit(old.read_text(), action="first start", why="test")
    bootstrap = stack.router_bootstrap(
        var, stack.Ports.from_base(8000), stack.prepare_sockets(var)
    )

    said = stack.stale_router_store(store_dir, bootstrap)

    assert said.startswith("stack: the router keeps its stored config (version 1)")
    assert (
        "monolith at http://127.0.0.1:9000 (this stack: http://127.0.0.1:8000 via "
        in said
    )
    assert f"{var / 'run' / 'choice.sock'})" in said
    command = said.split("To take this stack's backends: ", 1)[1].split(" (it also")[0]
    assert command.startswith(f"STRANGLER_ROUTER_DIR={store_dir} .venv/bin/strangler ")
    argv = shlex.split(command.split(" ", 1)[1])
    done = subprocess.run(
        [sys.executable, "-m", "strangler", *argv[1:]],
        env={**os.environ, "STRANGLER_ROUTER_DIR": str(store_dir)},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert RouteStore(store_dir).current_version() == 2
    assert stack.stale_router_store(store_dir, bootstrap) is None


def test_a_stored_config_without_the_monolith_s_dry_run_is_named(tmp_path):
    """A store from before the monolith backend said ``dry_run: true``: same addresses,
    yet shadowed writes the monolith refuses would never be rechecked."""
    var = tmp_path / "var"
    var.mkdir()
    bootstrap = stack.router_bootstrap(
        var, stack.Ports.from_base(8000), stack.prepare_sockets(var)
    )
    old = bootstrap.read_text()
    assert old.count("dry_run: true") == 3
    old = old.replace("dry_run: true", "dry_run: false", 1)  # the monolith's, first
    store_dir = var / "router"
    RouteStore(store_dir).commit(old, action="first start", why="test")

    said = stack.stale_router_store(store_dir, bootstrap)

    assert said.startswith("stack: the router keeps its stored config (version 1), ")
    assert "where monolith lacks dry_run: true (this stack's config has it)" in said
    assert "not where this stack serves them" not in said


def test_no_word_about_the_router_store_when_it_is_empty_or_broken(tmp_path):
    bootstrap = stack.router_bootstrap(
        tmp_path, stack.Ports.from_base(8001), stack.prepare_sockets(tmp_path)
    )
    store_dir = tmp_path / "router"
    assert stack.stale_router_store(store_dir, bootstrap) is None  # nothing stored
    store_dir.mkdir()
    (store_dir / "current").write_text("not a number\n")
    assert stack.stale_router_store(store_dir, bootstrap) is None  # the router says


def _free_port_base() -> int:
    """A --port-base whose four ports (base, +1, +2, +80) are free now."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + 80 > 65535:
            continue
        try:
            stack.ports_free(stack.Ports.from_base(base))
        except SystemExit:
            continue
        return base
    raise AssertionError("no free port base found")


def test_a_second_stack_on_the_same_var_is_refused_before_it_touches_anything(
    tmp_path,
):
    """Another --port-base gets past the port check; the var/ lock stops it, --reset
    included, and names the stack that holds it. Once that one is gone, var/ is free."""
    var = tmp_path / "var"
    held = stack.claim_var(var, stack.Ports.from_base(8000))
    (var / "plan").mkdir()
    (var / "plan" / "vote.json").write_text("{}")  # what --reset would delete
    env = {**os.environ, "STRANGLER_VAR_DIR": str(var)}
    base = _free_port_base()

    second = subprocess.run(
        [sys.executable, str(ROOT / "scripts/stack.py"), "up", "--no-demo", "--reset",
         "--port-base", str(base)],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip

    assert second.returncode == 1
    assert f"stack: {var} is in use by another stack (pid {os.getpid()}, " in (
        second.stderr
    )
    assert "router on port 8080" in second.stderr
    assert "STRANGLER_VAR_DIR=" in second.stderr
    assert (var / "plan" / "vote.json").read_text() == "{}"
    assert not (var / "run").exists()
    held.close()
    again = stack.claim_var(var, stack.Ports.from_base(base))
    again.close()
    assert (var / "stack.lock").read_text() == (
        f"pid {os.getpid()}, router on port {base + 80}\n"
    )


def test_the_var_lock_goes_with_a_killed_stack(tmp_path):
    var = tmp_path / "var"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
         "import stack; from pathlib import Path; "
         "lock = stack.claim_var(Path(sys.argv[3]), stack.Ports.from_base(8000)); "
         "print('held', flush=True); time.sleep(60)",
         str(ROOT / "scripts"), str(ROOT), str(var)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(SystemExit, match=f"pid {holder.pid}, router on port 8080"):
            stack.claim_var(var, stack.Ports.from_base(8000))
        holder.kill()
        holder.wait(10)
        stack.claim_var(var, stack.Ports.from_base(8000)).close()
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.parametrize("base", ["abc", "0", "65500"])
def test_a_bad_port_base_is_refused_before_anything_is_made(tmp_path, base):
    var = tmp_path / "var"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stack.py"), "up"],
        env={**os.environ, "STRANGLER_PORT_BASE": base, "STRANGLER_VAR_DIR": str(var)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{base!r} is not a port base" in done.stderr
    assert "STRANGLER_PORT_BASE" in done.stderr
    assert not var.exists()
