"""The ASGI application object for uvicorn: ``uvicorn router.asgi:app``."""

from __future__ import annotations

from router.app import create_app

app = create_app()
