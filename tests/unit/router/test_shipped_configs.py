"""The router configs shipped with the repo are valid and route the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "router" / "config.example.yaml"
COMPOSE = ROOT / "router" / "config.compose.yaml"


def test_both_shipped_configs_validate():
    for path in (EXAMPLE, COMPOSE):
        result = subprocess.run(
            [sys.executable, "-m", "strangler", "route", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_compose_config_differs_from_the_example_only_in_backend_addresses():
    example = yaml.safe_load(EXAMPLE.read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    assert compose["routes"] == example["routes"]
    assert compose["settings"] == example["settings"]
    assert set(compose["backends"]) == set(example["backends"])
    for name, backend in compose["backends"].items():
        assert (
            backend["url"]
            == f"http://{name}:{example['backends'][name]['url'].rsplit(':', 1)[1]}"
        )
        # docker-compose.yml's shared `sockets` volume, where each gunicorn also listens.
        assert backend["socket"] == f"/run/strangler/{name}.sock"
        rest = {k: v for k, v in backend.items() if k not in ("url", "socket")}
        assert rest == {
            k: v for k, v in example["backends"][name].items() if k != "url"
        }
