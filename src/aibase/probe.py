"""Runs INSIDE an image with the image's own Python; standard library only.

Prints one JSON document with every fact the smoke tests check, so one container start
per image and platform gathers all of them: `docker run IMAGE python -c "$(cat probe.py)"`.
Also runs directly on a GPU host: `python probe.py [--no-matmul] [--skip-imports]`.
Package names are reported as their metadata spells them; the host normalises them.

Top level; nothing imports it but the engine, which sends its source into a container.
May import: nothing (standard library only).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPORT_VERSION = 1  # the host refuses another (aibase.host.probe_report); bump on any change
# Where a distribution's top-level names are not what proves it works, by metadata name.
IMPORT_OVERRIDES: dict[str, list[str]] = {
    # namespace packages: every one maps to the bare `opentelemetry` namespace, which
    # imports even when the distribution's own code is broken
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
    # tooling: `pip check` exercises pip; setuptools' top level includes a vendored
    # `pkg_resources` whose import warns and is checked by the services that use it
    "pip": [],
    "setuptools": [],
}


def modules_by_distribution() -> dict[str, list[str]]:
    """Metadata name -> the importable top-level modules it provides (stdlib mapping)."""
    found: dict[str, set[str]] = {}
    for module, dists in md.packages_distributions().items():
        if module.startswith("_") or not module.isidentifier():
            continue  # private helpers and data folders (`../../bin`, `*.libs`)
        for dist in dists:
            found.setdefault(dist, set()).add(module)
    return {name: sorted(mods) for name, mods in found.items()}


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
    for folder, pattern in (("/usr/local", "cuda*/lib64/libcudart*"), ("/usr/lib", "*/libcudart*")):
        found += [str(p) for p in Path(folder).glob(pattern)]
    for path in sys.path:
        for pattern in ("nvidia/*/lib/libcudart*", "torch/lib/libcudart*"):
            found += [str(p) for p in Path(path).glob(pattern)]
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
    packages: dict[str, str] = {}
    for dist in md.distributions():  # sys.path order: the first one found is what imports
        name = dist.metadata["Name"]
        if name and name not in packages:
            packages[name] = dist.version
    imports: dict[str, dict[str, str | None]] = {}
    if "--skip-imports" not in argv:  # e.g. on a GPU host whose site-packages is not ours
        provided = modules_by_distribution()
        for name in sorted(packages):
            modules = IMPORT_OVERRIDES.get(name.lower(), provided.get(name, []))
            imports[name] = {m: try_import(m) for m in modules}
    nvidia_pkgs = sorted(n for n in packages if n.lower().startswith("nvidia-"))
    report = {
        "version": REPORT_VERSION,
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
