"""What each image promises, checked against a probe report (pure: every problem at once),
and the smoke step that probes each platform's image by digest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aibase import log
from aibase.build.lock_format import parse_lock
from aibase.config.model import VariantConfig
from aibase.host import engine
from aibase.host.probe_report import ProbeReport
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


@dataclass(frozen=True)
class Promise:
    """What an image of a variant promises on one platform: what each check holds it to."""

    variant: VariantConfig
    platform: str
    locked: Mapping[str, str]  # name -> version, as the platform's lock says
    gpu_required: bool = False


def check_machine(report: ProbeReport, promise: Promise) -> list[str]:
    machine, platform = report.platform.machine, promise.platform
    if machine in MACHINES.get(platform, (machine,)):
        return []
    return [
        f"the image's binaries run as {machine}, not {platform}: its index entry and config "
        "claim a platform its files are not built for"
    ]


def check_python(report: ProbeReport, promise: Promise) -> list[str]:
    py, wanted = report.python, promise.variant.python
    problems = []
    if py.minor != wanted:
        problems.append(f"python is {py.version}, the config promises {wanted}")
    if not py.prefix.startswith("/opt/venv"):
        problems.append(f"python runs from {py.prefix}, not the /opt/venv venv")
    return problems


def check_locked_versions(report: ProbeReport, promise: Promise) -> list[str]:
    """Exactly the locked version, local label included (2.4.1+cpu)."""
    installed = {normalize_name(n): v for n, v in report.packages.items()}
    problems = []
    for name, version in sorted(promise.locked.items()):
        got = installed.get(normalize_name(name))
        if got is None:
            problems.append(f"locked package {name}=={version} is not installed")
        elif got != version:
            problems.append(f"locked package {name} is {got}, the lock says {version}")
    return problems


def check_imports(report: ProbeReport, promise: Promise) -> list[str]:
    imports = {normalize_name(n): mods for n, mods in report.imports.items()}
    return [
        f"{name}: `import {module}` fails: {error}"
        for name in sorted(promise.locked)
        for module, error in imports.get(normalize_name(name), {}).items()
        if error
    ]


def check_pip(report: ProbeReport, _promise: Promise) -> list[str]:
    return [] if report.pip_check.ok else [f"pip check fails: {report.pip_check.output}"]


def check_torch_version(report: ProbeReport, promise: Promise) -> list[str]:
    wanted = promise.variant.torch
    if wanted is None:
        return []
    if report.torch is None:
        return ["torch is not importable"]
    got = report.torch.version
    if got.split("+")[0] != wanted.torch:
        return [f"torch is {got}, the config says {wanted.torch}"]
    return []


def check_torch_cuda(report: ProbeReport, promise: Promise) -> list[str]:
    """A CUDA build with the configured CUDA where the config promises it; a CPU build else."""
    if promise.variant.torch is None or report.torch is None:
        return []  # no torch promised, or check_torch_version says it is missing
    got, platform = report.torch.cuda, promise.platform
    wanted = promise.variant.platform(platform).cuda
    if wanted and not (got or "").startswith(wanted):
        return [f"torch reports CUDA {got}, the config promises {wanted} on {platform}"]
    if not wanted and got:
        return [f"torch is a CUDA {got} build on {platform}, where the config promises no CUDA"]
    return []


def check_no_cuda(report: ProbeReport, promise: Promise) -> list[str]:
    """An image that promises no CUDA anywhere carries none of its libraries."""
    if promise.variant.cuda_capable:
        return []
    problems = []
    if report.cuda_libraries:
        listed = ", ".join(report.cuda_libraries[:5])
        problems.append(f"CUDA libraries in a non-CUDA image: {listed}")
    if report.nvidia_packages:
        problems.append(f"nvidia-* packages in a non-CUDA image: {list(report.nvidia_packages)}")
    return problems


def check_gpu(report: ProbeReport, promise: Promise) -> list[str]:
    """With a GPU handed in: torch sees it and a matmul on it is right."""
    torch = report.torch
    if not promise.gpu_required:
        return []
    if torch is None or not torch.cuda_available:
        return ["a GPU was requested but torch.cuda.is_available() is False"]
    if torch.device_count < 1:
        return ["torch sees no CUDA device"]
    if torch.matmul is None or not torch.matmul.ok:
        return [f"matmul on the GPU failed: {torch.matmul}"]
    return []


# One check per promise, in the order their problems are listed.
CHECKS: tuple[Callable[[ProbeReport, Promise], list[str]], ...] = (
    check_machine,
    check_python,
    check_locked_versions,
    check_imports,
    check_pip,
    check_torch_version,
    check_torch_cuda,
    check_no_cuda,
    check_gpu,
)


def check_probe(
    report: ProbeReport,
    variant: VariantConfig,
    platform: str,
    locked: Mapping[str, str],
    *,
    gpu_required: bool = False,
) -> list[str]:
    """Every promise the image breaks on that platform, all at once."""
    promise = Promise(variant, platform, locked, gpu_required)
    return [problem for check in CHECKS for problem in check(report, promise)]


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
