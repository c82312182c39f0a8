"""A tiny service as a team would build on ai-base: FastAPI + prometheus-client."""

from __future__ import annotations

import platform
import sys

from fastapi import FastAPI
from prometheus_client import Counter, make_asgi_app

HEALTH_CHECKS = Counter("aibase_smoke_health_checks", "GET /health calls")

app = FastAPI()
app.mount("/metrics", make_asgi_app())


@app.get("/ready")
def ready() -> dict[str, str]:
    """For the compose healthcheck: not counted, so the test alone moves the counter."""
    return {"status": "ok"}


@app.get("/health")
def health() -> dict[str, str]:
    HEALTH_CHECKS.inc()
    return {"status": "ok", "python": sys.version.split()[0], "machine": platform.machine()}
