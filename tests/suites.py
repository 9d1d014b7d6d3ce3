"""Run the whole test suite: one pytest process per deployable's settings module.

pytest-django configures Django once per process, so the monolith's tests and each extracted
service's tests run as separate suites. Each suite's results are summed into one closing line.
With arguments, runs a single pytest with them instead (monolith settings unless ``--ds``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (settings module, test paths); the monolith suite runs everything not claimed by another.
SERVICE_SUITES = [
    ("extracted.vote_service.config.settings", ["tests/unit/vote_service", "tests/integration/vote_service"]),
    ("extracted.choice_service.config.settings", ["tests/unit/choice_service", "tests/integration/choice_service"]),
]  # fmt: skip


def _available(settings_module: str) -> bool:
    try:
        return importlib.util.find_spec(settings_module) is not None
    except ModuleNotFoundError:
        return False


def _suites() -> list[tuple[str, list[str]]]:
    claimed = [path for _, paths in SERVICE_SUITES for path in paths]
    suites = [
        ("monolith.config.settings", ["tests", *(f"--ignore={p}" for p in claimed)])
    ]
    for settings_module, paths in SERVICE_SUITES:
        existing = [p for p in paths if (ROOT / p).exists()]
        if existing and _available(settings_module):
            suites.append((settings_module, existing))
    return suites


def _totals(junit: Path) -> dict[str, int]:
    root = ET.parse(junit).getroot()  # noqa: S314 - our own pytest run wrote it
    suites = [root] if root.tag == "testsuite" else list(root)
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    return total


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([sys.executable, "-m", "pytest", *argv], cwd=ROOT)
    grand = {"passed": 0, "failed": 0, "skipped": 0}
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, (settings_module, args) in enumerate(_suites()):
            junit = Path(tmp) / f"suite{index}.xml"
            print(f"\n==> suite {settings_module}", flush=True)
            code = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    f"--ds={settings_module}",
                    f"--junitxml={junit}",
                    *args,
                ],
                cwd=ROOT,
            )
            if code not in (0, 5) or not junit.exists():
                worst = worst or code or 1
            if junit.exists():
                t = _totals(junit)
                grand["failed"] += t["failures"] + t["errors"]
                grand["skipped"] += t["skipped"]
                grand["passed"] += (
                    t["tests"] - t["failures"] - t["errors"] - t["skipped"]
                )
    if grand["failed"] and not worst:
        worst = 1
    print(
        f"\ntotal: {grand['passed']} passed, {grand['failed']} failed, {grand['skipped']} skipped"
    )
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
