"""``/healthz`` says the process is up; ``/readyz`` says its database answers."""

from __future__ import annotations

from django.db import connections
from django.db.utils import Error as DatabaseError
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    checks = {}
    ok = True
    for alias in connections:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
            checks[alias] = "ok"
        except DatabaseError as exc:
            ok = False
            checks[alias] = f"unreachable: {exc.__class__.__name__}"
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "databases": checks},
        status=200 if ok else 503,
    )
