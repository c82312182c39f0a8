"""What each image promises, checked against a probe report (pure: every problem at once),
and the smoke step that probes each platform's image by digest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aibase import log
from aibase.build.lock_format import parse_lock
from aibase.config.model import VariantConfig
from aibase.host import engine
from aibase.names import normalize_name
from aibase.release.verify import VerifyResult
from aibase.state import SmokeRecord


def locked_packages(variant: VariantConfig, platform: str) -> dict[str, str]:
    return {n: p.version for n, p in parse_lock(variant.lock_file(platform).read_text()).items()}


# What `platform.machine()` says inside an image of each platform.
MACHINES = {
    "linux/amd64": ("x86_64",),
    "linux/arm64": ("aarch64", "arm64"),
    "linux/arm/v7": ("armv7l",),
    "linux/386": ("i686", "i386"),
    "linux/ppc64le": ("ppc64le",),
    "linux/s390x": ("s390x",),
    "linux/riscv64": ("riscv64",),
}


# issue 19 item 3 (settings helper) rewrites it
def check_probe(  # noqa: C901
    report: Mapping[str, Any],
    variant: VariantConfig,
    platform: str,
    locked: Mapping[str, str],
    *,
    gpu_required: bool = False,
) -> list[str]:
    problems: list[str] = []
    machine = report["platform"]["machine"]
    if machine not in MACHINES.get(platform, (machine,)):
        problems.append(
            f"the image's binaries run as {machine}, not {platform}: its index entry and config "
            "claim a platform its files are not built for"
        )
    py = report["python"]["version"]
    if ".".join(py.split(".")[:2]) != variant.python:
        problems.append(f"python is {py}, the config promises {variant.python}")
    if not report["python"]["prefix"].startswith("/opt/venv"):
        problems.append(f"python runs from {report['python']['prefix']}, not the /opt/venv venv")
    packages = {normalize_name(n): v for n, v in report["packages"].items()}
    for name, version in sorted(locked.items()):
        got = packages.get(normalize_name(name))
        if got is None:
            problems.append(f"locked package {name}=={version} is not installed")
        elif got != version:  # exact, local label included (2.4.1+cpu)
            problems.append(f"locked package {name} is {got}, the lock says {version}")
    imports = {normalize_name(n): mods for n, mods in report["imports"].items()}
    for name in sorted(locked):
        for module, error in (imports.get(normalize_name(name)) or {}).items():
            if error:
                problems.append(f"{name}: `import {module}` fails: {error}")
    if not report["pip_check"]["ok"]:
        problems.append(f"pip check fails: {report['pip_check']['output']}")
    spec = variant.platform(platform)
    torch = report.get("torch")
    if variant.torch:
        if torch is None:
            problems.append("torch is not importable")
        else:
            if torch["version"].split("+")[0] != variant.torch.torch:
                problems.append(
                    f"torch is {torch['version']}, the config says {variant.torch.torch}"
                )
            if spec.cuda:
                if not torch["cuda"] or not str(torch["cuda"]).startswith(spec.cuda):
                    problems.append(
                        f"torch reports CUDA {torch['cuda']}, the config promises {spec.cuda} "
                        f"on {platform}"
                    )
            elif torch["cuda"]:
                problems.append(
                    f"torch is a CUDA {torch['cuda']} build on {platform}, where the config "
                    f"promises no CUDA"
                )
    if not variant.cuda_capable:
        if report["cuda_libraries"]:
            problems.append(
                f"CUDA libraries in a non-CUDA image: {', '.join(report['cuda_libraries'][:5])}"
            )
        if report["nvidia_packages"]:
            problems.append(f"nvidia-* packages in a non-CUDA image: {report['nvidia_packages']}")
    if gpu_required:
        if torch is None or not torch["cuda_available"]:
            problems.append("a GPU was requested but torch.cuda.is_available() is False")
        elif torch["device_count"] < 1:
            problems.append("torch sees no CUDA device")
        elif not (torch.get("matmul") or {}).get("ok"):
            problems.append(f"matmul on the GPU failed: {torch.get('matmul')}")
    return problems


NO_GPU = "no GPU for containers here (neither the nvidia runtime nor NVIDIA CDI devices)"


def smoke_index(
    variant: VariantConfig, result: VerifyResult, *, require_gpu: bool = False
) -> dict[str, SmokeRecord]:
    """Probe every platform image of a verified index by digest, one container each: every
    image the index holds, since a tag serves all of them. Where the config promises CUDA,
    the probe runs with the GPUs when the engine has any; without, the GPU checks are
    skipped with the reason, or fail with --require-gpu."""
    gpu = engine.gpu_access() if any(p.cuda for p in variant.platforms.values()) else None
    return {
        i.platform: smoke_image(variant, result.ref.name, i.platform, i.digest, gpu, require_gpu)
        for i in result.images
    }


def smoke_image(
    variant: VariantConfig,
    name: str,
    platform: str,
    digest: str,
    gpu: str | None,
    require_gpu: bool,
) -> SmokeRecord:
    """One platform's image (name@digest), one container: what smoke_index does per
    platform, and what a CI smoke job on that platform's native runner runs."""
    spec = variant.platforms.get(platform)
    if spec is None:
        problem = f"the index holds {platform}, which images.toml does not define"
        return SmokeRecord(platform, digest, (problem,))
    on_gpu = gpu if spec.cuda else None
    run = engine.run_probe(f"{name}@{digest}", platform, gpu=on_gpu)
    locked = locked_packages(variant, platform)
    problems = check_probe(run.report, variant, platform, locked, gpu_required=bool(on_gpu))
    skipped: tuple[str, ...] = ()
    if spec.cuda and on_gpu is None:
        if require_gpu:
            problems.append(f"--require-gpu: {NO_GPU}")
        else:
            skipped = (f"GPU checks skipped on {platform}: {NO_GPU}",)
            log.warn(skipped[0])
    return SmokeRecord(platform, digest, tuple(problems), skipped)
