"""``strangler route export-nginx`` writes a config that nginx itself accepts."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from strangler.routing.nginx import export_nginx
from strangler.routing.schema import load_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONFIG = """\
backends:
  monolith: {url: "http://127.0.0.1:8000"}
  vote: {url: "http://127.0.0.1:8001", dry_run: true}
routes:
  - {name: votes-read, methods: [GET, HEAD], path: /api/votes/**, to: monolith,
     canary: {to: vote, percent: 10, key: "header:X-User"}}
  - {name: votes, methods: ["*"], path: /api/votes/**, to: monolith, shadow: vote}
  - {name: results, methods: [GET], path: /api/questions/*/results/, to: vote,
     fallback: monolith}
  - {name: default, path: /**, to: monolith}
"""


def test_export_reproduces_to_canary_fallback_and_says_what_it_cannot():
    text = export_nginx(load_config(CONFIG), version=7)
    assert "split_clients" in text and "10% strangler_vote" in text
    assert "server 127.0.0.1:8000 backup;" in text
    assert "version=7" in text
    assert "shadow with comparison" in text
    assert text.index("^/api/questions/[^/]+/results/$") < text.index("^/.*$")


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_nginx_accepts_the_export(tmp_path):
    conf = tmp_path / "nginx.conf"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{sock.getsockname()[1]}"
    conf.write_text(export_nginx(load_config(CONFIG), version=1, listen=listen))
    (tmp_path / "logs").mkdir()
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_a_socket_backend_is_exported_as_a_unix_server(tmp_path):
    config = load_config(
        CONFIG.replace(
            '"http://127.0.0.1:8000"}',
            f'"http://127.0.0.1:8000", socket: "{tmp_path}/m.sock"}}',
        )
    )
    text = export_nginx(config, version=1)
    assert f"server unix:{tmp_path}/m.sock max_fails=" in text
    assert f"server unix:{tmp_path}/m.sock backup;" in text
    assert "server 127.0.0.1:8001 max_fails=" in text
    if Path(NGINX).exists():
        conf = tmp_path / "nginx.conf"
        conf.write_text(export_nginx(config, version=1, listen="127.0.0.1:1"))
        (tmp_path / "logs").mkdir()
        result = subprocess.run(
            [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
