"""What the engine talks to, opened lazily from the environment: the monolith's database
(writable, ``MONOLITH_DATABASE_URL``, for modes and freezing), the legacy read-only connection
and the service's database (the plan's ``databases.source`` / ``.target`` variables), the
router config store (``STRANGLER_ROUTER_DIR``) and the router's metrics
(``STRANGLER_ROUTER_URL``)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from strangler.plans import Plan
from strangler.routing.store import RouteStore
from strangler.sync.db import Database, SyncError, connect

MONOLITH_ENV = "MONOLITH_DATABASE_URL"
ROUTER_URL_ENV = "STRANGLER_ROUTER_URL"


class Unavailable(Exception):
    """A data source is not configured or not reachable; the message says which and why."""


class Resources:
    def __init__(self, plan: Plan, *, route_store: RouteStore | None = None) -> None:
        self.plan = plan
        self.route_store = route_store or RouteStore()
        self._dbs: dict[str, Database] = {}
        self._metrics: str | None = None

    def _db(self, label: str, env: str, *, readonly: bool) -> Database:
        if label not in self._dbs:
            url = os.environ.get(env)
            if not url:
                raise Unavailable(f"{env} is not set ({label} database)")
            try:
                self._dbs[label] = connect(url, readonly=readonly, label=label)
            except SyncError as exc:
                raise Unavailable(str(exc)) from None
        return self._dbs[label]

    def source(self) -> Database:
        """The monolith's database through the read-only ``legacy`` connection."""
        return self._db("source", self.plan.source_env, readonly=True)

    def target(self) -> Database:
        return self._db("service", self.plan.target_env, readonly=False)

    def monolith(self) -> Database:
        return self._db("monolith", MONOLITH_ENV, readonly=False)

    def metrics_text(self) -> str:
        """The router's ``/metrics`` page, fetched once per command."""
        if self._metrics is None:
            base = os.environ.get(ROUTER_URL_ENV)
            if not base:
                raise Unavailable(f"{ROUTER_URL_ENV} is not set (router metrics)")
            url = base.rstrip("/") + "/metrics"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
                    self._metrics = resp.read().decode("utf-8")
            except (urllib.error.URLError, OSError) as exc:
                raise Unavailable(f"cannot read {url} ({exc})") from None
        return self._metrics

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
