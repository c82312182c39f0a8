"""A minimal service on ai-base: FastAPI from the base, ujson compiled at build time."""

from __future__ import annotations

import platform

import ujson
from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {
        "status": "ok",
        "machine": platform.machine(),
        "ujson": ujson.__version__,
        "ujson_built_from": ujson.__file__,  # an .so: the C extension, compiled in the image
    }
