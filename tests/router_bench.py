"""scripts/bench/router as a module, for the tests of its parts (it has no .py suffix)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench" / "router"


def load(name: str) -> ModuleType:
    """A fresh copy of the bench module under ``name``."""
    loader = importlib.machinery.SourceFileLoader(name, str(BENCH))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
