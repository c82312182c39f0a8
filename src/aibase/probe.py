"""Runs INSIDE an image with the image's own Python; standard library only.

Prints one JSON document with every fact the smoke tests check, so one container start
per image and platform gathers all of them: `docker run -i IMAGE python - < probe.py`.
Also runs directly on a GPU host (`python probe.py --matmul`).
"""

from __future__ import annotations

import glob
import importlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

# Distributions whose import name cannot be read from their metadata (no top_level.txt,
# RECORD lists only data files), or whose top-level module needs optional extras.
IMPORT_OVERRIDES: dict[str, list[str]] = {
    "opentelemetry-api": ["opentelemetry.trace"],
    "opentelemetry-sdk": ["opentelemetry.sdk"],
    "opentelemetry-semantic-conventions": ["opentelemetry.semconv"],
    "opentelemetry-instrumentation": ["opentelemetry.instrumentation"],
    "opentelemetry-proto": ["opentelemetry.proto"],
    "opentelemetry-exporter-otlp-proto-common": ["opentelemetry.exporter.otlp.proto.common"],
    "opentelemetry-exporter-otlp-proto-grpc": ["opentelemetry.exporter.otlp.proto.grpc"],
    "opentelemetry-instrumentation-asgi": ["opentelemetry.instrumentation.asgi"],
    "opentelemetry-instrumentation-fastapi": ["opentelemetry.instrumentation.fastapi"],
    "opentelemetry-util-http": ["opentelemetry.util.http"],
    "pip": [],  # tooling, checked by `pip check` itself
    "setuptools": [],
}
SKIP_TOP = {"__pycache__", "bin", "share", "include", "etc", "lib", "..", ""}


def _norm(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def top_level_modules(dist: md.Distribution) -> list[str]:
    name = _norm(dist.metadata["Name"] or "")
    if name in IMPORT_OVERRIDES:
        return IMPORT_OVERRIDES[name]
    text = dist.read_text("top_level.txt")
    if text:
        mods = [m.strip().replace("/", ".") for m in text.splitlines() if m.strip()]
    else:
        mods = []
        for f in dist.files or []:
            parts = f.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in SKIP_TOP:
                continue
            if len(parts) == 1 and parts[0].endswith(".py"):
                mods.append(parts[0][:-3])
            elif len(parts) == 1 and parts[0].endswith(".so"):
                mods.append(parts[0].split(".", 1)[0])
            elif len(parts) > 1 and parts[1] == "__init__.py":
                mods.append(parts[0])
    return sorted({m for m in mods if m and not m.startswith("_") and m.isidentifier()})


def try_import(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"[:400]
    return None


def probe_torch(matmul: bool) -> dict[str, Any] | None:
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return None
    info: dict[str, Any] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_compiled": torch.backends.cuda.is_built(),
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "devices": [],
        "cudnn": None,
        "matmul": None,
    }
    if info["cuda_available"]:
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(info["device_count"])]
        info["cudnn"] = torch.backends.cudnn.version()
        if matmul:
            start = time.perf_counter()
            a = torch.randn(1024, 1024, device="cuda")
            b = torch.randn(1024, 1024, device="cuda")
            c = a @ b
            torch.cuda.synchronize()
            ref = a.cpu() @ b.cpu()
            info["matmul"] = {
                "ok": bool(torch.allclose(c.cpu(), ref, rtol=1e-3, atol=1e-2)),
                "seconds": round(time.perf_counter() - start, 4),
            }
    return info


def cuda_libraries() -> list[str]:
    found: list[str] = []
    for pattern in ("/usr/local/cuda*/lib64/libcudart*", "/usr/lib/*/libcudart*"):
        found += glob.glob(pattern)
    for path in sys.path:
        found += glob.glob(os.path.join(path, "nvidia", "*", "lib", "libcudart*"))
        found += glob.glob(os.path.join(path, "torch", "lib", "libcudart*"))
    return sorted(set(found))


def pip_check() -> dict[str, Any]:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "output": str(exc)}
    return {"ok": out.returncode == 0, "output": (out.stdout + out.stderr).strip()[-2000:]}


def main(argv: list[str]) -> int:
    matmul = "--no-matmul" not in argv
    dists = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if not name or _norm(name) in dists:
            continue
        dists[_norm(name)] = dist
    packages = {n: d.version for n, d in sorted(dists.items())}
    imports: dict[str, dict[str, str | None]] = {}
    if "--skip-imports" not in argv:  # e.g. on a GPU host whose site-packages is not ours
        for n, d in sorted(dists.items()):
            imports[n] = {m: try_import(m) for m in top_level_modules(d)}
    nvidia_pkgs = sorted(n for n in packages if n.startswith("nvidia-"))
    report = {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "prefix": sys.prefix,
        },
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "packages": packages,
        "imports": imports,
        "torch": probe_torch(matmul),
        "pip_check": pip_check(),
        "cuda_libraries": cuda_libraries(),
        "nvidia_packages": nvidia_pkgs,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("NVIDIA_", "CUDA_"))},
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
