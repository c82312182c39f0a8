"""The Docker Engine itself: whether it can build here, its containers (the probe runs in
one), GPUs and images, through the CLI and the SDK. With `host.engine_build` (the builds),
the only module that runs `docker`.

Every CLI call is an argument list echoed before it runs.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound
from docker.types import DeviceRequest
from requests.exceptions import RequestException

from aibase import log, probe
from aibase.errors import EngineError, Timeout
from aibase.host import proc
from aibase.host.probe_report import ProbeReport, parse_probe_output
from aibase.host.sdk_errors import wait_failed

PROBE_SOURCE = Path(probe.__file__)  # its source is what a container runs (stdlib only)
PROBE_TIMEOUT = 1800.0  # the full stack's imports under QEMU take minutes; a hang, longer
SETUP = "bash scripts/setup-host-debian.sh"


@dataclass(frozen=True)
class EngineFacts:
    docker_cli: bool
    server_version: str | None  # None: engine unreachable
    server_error: str
    containerd_store: bool
    buildx_version: str | None
    builder_platforms: tuple[str, ...]


def gather_engine_facts() -> EngineFacts:
    if shutil.which("docker") is None:
        return EngineFacts(False, None, "docker CLI not found", False, None, ())
    try:
        info = proc.run(["docker", "info", "--format", "{{json .}}"], timeout=30, echo=False)
    except Timeout as exc:
        return EngineFacts(True, None, exc.message, False, None, ())
    server: str | None = None
    containerd = False
    error = ""
    if info.ok:
        data = json.loads(info.stdout)
        server = data.get("ServerVersion") or None
        error = "; ".join(data.get("ServerErrors") or [])
        containerd = "io.containerd.snapshotter" in json.dumps(data.get("DriverStatus") or [])
    else:
        error = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
    version = proc.run(["docker", "buildx", "version"], timeout=proc.QUICK, echo=False)
    buildx = version.stdout.strip() if version.ok else None
    platforms: tuple[str, ...] = ()
    if buildx and server:
        inspect = proc.run(
            ["docker", "buildx", "inspect", "--bootstrap"], timeout=proc.QUICK * 2, echo=False
        )
        m = re.search(r"^Platforms:\s*(.+)$", inspect.stdout, re.M)
        if m:
            platforms = tuple(p.strip().rstrip("*") for p in m.group(1).split(","))
    return EngineFacts(True, server, error, containerd, buildx, platforms)


def engine_problem(facts: EngineFacts, platforms: Sequence[str] = ()) -> str | None:
    """Why this engine cannot build the platforms, or None. (Tests skip or fail on it.)"""
    if not facts.docker_cli:
        return f"docker CLI not found ({SETUP})"
    if facts.server_version is None:
        return f"Docker Engine not reachable: {facts.server_error}"
    if facts.buildx_version is None:
        return f"docker buildx missing ({SETUP})"
    missing = [p for p in platforms if p not in facts.builder_platforms]
    if missing:
        return f"the builder lists no {', '.join(missing)} (QEMU binfmt not registered)"
    return None


def require_engine(platforms: Sequence[str] = ()) -> None:
    """Fail before any build when the engine cannot build these platforms."""
    problem = engine_problem(gather_engine_facts(), platforms)
    if problem:
        raise EngineError(problem, f"start and set it up: {SETUP}; then `invoke doctor`")


@dataclass(frozen=True)
class ProbeRun:
    ref: str
    platform: str
    report: ProbeReport


def _sdk() -> Any:  # docker.DockerClient (docker-py ships no type hints)
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        raise EngineError(
            f"the Docker Engine is not reachable through the SDK ({exc})",
            f"start it: {SETUP}, then `invoke doctor`",
        ) from None
    return client


def run_probe(
    ref: str, platform: str, *, gpu: str | None = None, timeout: float = PROBE_TIMEOUT
) -> ProbeRun:
    """One container start: the probe reads every fact of the image on that platform.

    gpu: how to hand the container the GPUs ("nvidia" runtime or "cdi" devices), or None.
    """
    client = _sdk()
    requests = gpu_requests(gpu)
    log.info(
        f"$ docker pull --platform {platform} {ref}\n$ docker run --rm --platform {platform} "
        f"{GPU_FLAGS.get(gpu or '', '')}--network none --entrypoint python {ref} -c "
        f'"$(cat {PROBE_SOURCE.name})"'
    )
    try:
        # Always pull: a digest ref is immutable, but a tag may have moved since the last pull.
        client.images.pull(ref, platform=platform)
        container = client.containers.run(
            ref,
            command=["-c", PROBE_SOURCE.read_text()],
            entrypoint="python",
            platform=platform,
            detach=True,
            device_requests=requests,
            network_mode="none",  # the probe needs no network; keeps it loopback-only
        )
    except (APIError, ImageNotFound) as exc:
        raise EngineError(
            f"cannot run {ref} ({platform}): {exc}", "check the ref and registry"
        ) from None
    try:
        status = container.wait(timeout=timeout)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        if status.get("StatusCode") != 0:
            err = container.logs(stdout=False, stderr=True).decode(errors="replace")
            raise EngineError(
                f"probe failed in {ref} ({platform}): exit {status.get('StatusCode')}: "
                f"{err[-1200:]}",
                "the image cannot run its own python; rebuild it",
            )
    except RequestException as exc:
        slow = "an import hangs in the image, or QEMU is very slow here; run it by hand to see"
        raise wait_failed(exc, f"the probe in {ref} ({platform})", timeout, slow) from None
    finally:
        container.remove(force=True)
    return ProbeRun(ref, platform, parse_probe_output(out, f"{ref} ({platform})"))


GPU_FLAGS = {"nvidia": "--gpus all ", "cdi": "--device nvidia.com/gpu=all "}


def gpu_requests(gpu: str | None) -> list[DeviceRequest] | None:
    if gpu == "nvidia":  # the NVIDIA container runtime: what `--gpus all` asks for
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if gpu == "cdi":  # Container Device Interface: `--device nvidia.com/gpu=all`
        return [DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])]
    return None


def gpu_access_from(info: dict[str, Any], cdi_specs: list[str]) -> str | None:
    """How this engine hands GPUs to containers: "nvidia", "cdi" or None. Pure."""
    if "nvidia" in (info.get("Runtimes") or {}):
        return "nvidia"
    if any("nvidia.com/gpu" in spec for spec in cdi_specs):
        return "cdi"
    return None


def gpu_access() -> str | None:
    """The engine's way to GPUs, if any: the nvidia runtime, or NVIDIA devices in CDI."""
    try:
        info = _sdk().info()
    except EngineError:
        return None
    dirs = [Path(d) for d in info.get("CDISpecDirs") or []]
    found = [p for d in dirs for p in sorted(d.glob("*.*")) if p.is_file()]
    specs = [p.read_text(errors="replace") for p in found if p.suffix in (".yaml", ".yml", ".json")]
    return gpu_access_from(info, specs)


def local_images(repository: str) -> list[str]:
    """This repository's local images by reference (an ID would take other repos' tags)."""
    show = "{{.Repository}} {{.Tag}} {{.Digest}}"
    listed = proc.run(
        ["docker", "image", "ls", "--digests", "--format", show], echo=False, timeout=proc.QUICK
    )
    rows = [ln.split() for ln in listed.stdout.splitlines() if len(ln.split()) == 3]
    return sorted(
        {
            f"{r}:{t}" if t != "<none>" else f"{r}@{d}"
            for r, t, d in rows
            if r == repository or r.endswith(f"/{repository}")
        }
    )


def reclaim(images: Sequence[str], builder: str | None) -> list[proc.Result]:
    """Remove those images, then the builder's whole cache (`invoke clean`, a cold bench)."""
    prune = [
        "docker",
        "buildx",
        "prune",
        "--all",
        "--force",
        *([f"--builder={builder}"] if builder else []),
    ]
    done = [proc.run(["docker", "image", "rm", *images], timeout=proc.QUICK * 5)] if images else []
    return [*done, proc.run(prune, timeout=proc.LONG)]


def image_available(image: str) -> bool:
    if proc.run(["docker", "image", "inspect", image], echo=False, timeout=proc.QUICK).ok:
        return True
    return proc.run(["docker", "pull", image], timeout=proc.QUICK).ok


def run_registry_container(name: str, port: int, image: str = "registry:2") -> proc.Result:
    return proc.run(
        [
            "docker",
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "--name",
            name,
            "-p",
            f"127.0.0.1:{port}:5000",
            image,
        ],
        timeout=proc.QUICK * 2,
    )


def remove_container(name: str) -> bool:
    """True when a container of that name was there (`rm -f` exits 0 either way)."""
    result = proc.run(["docker", "rm", "-f", name], echo=False, timeout=proc.QUICK)
    return result.ok and name in result.stdout
