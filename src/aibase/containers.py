"""Running containers through the Docker SDK (smoke tests, the pipeline's smoke step)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ContainerError, DockerException, ImageNotFound
from docker.types import DeviceRequest

from aibase import log
from aibase.errors import EngineError

PROBE_SOURCE = Path(__file__).with_name("probe.py")


@dataclass(frozen=True)
class ProbeRun:
    ref: str
    platform: str
    gpu: bool
    report: dict[str, Any]


def client() -> Any:  # docker.DockerClient (docker-py ships no type hints)
    try:
        c = docker.from_env(timeout=600)
        c.ping()
    except DockerException as exc:
        raise EngineError(
            f"the Docker Engine is not reachable through the SDK ({exc})",
            "start it: scripts/setup-host-debian.sh, then `invoke doctor`",
        ) from None
    return c


def run_probe(ref: str, platform: str, *, gpu: bool = False) -> ProbeRun:
    """One container start: the probe reads every fact of the image on that platform."""
    c = client()
    source = PROBE_SOURCE.read_text()
    requests = [DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpu else None
    log.info(
        f"$ docker run --rm --platform {platform} {'--gpus all ' if gpu else ''}"
        f'--entrypoint python {ref} -c "$(cat {PROBE_SOURCE.name})"'
    )
    try:
        _ensure_image(c, ref, platform)
        out = c.containers.run(
            ref,
            command=["-c", source],
            entrypoint="python",
            platform=platform,
            remove=True,
            stdout=True,
            stderr=False,
            device_requests=requests,
            network_mode="none",  # the probe needs no network; keeps it loopback-only
        )
    except ContainerError as exc:
        raise EngineError(
            f"probe failed in {ref} ({platform}): exit {exc.exit_status}: {exc.stderr!r}"[:1500],
            "the image cannot run its own python; rebuild it",
        ) from None
    except (APIError, ImageNotFound) as exc:
        raise EngineError(
            f"cannot run {ref} ({platform}): {exc}", "check the ref and registry"
        ) from None
    text = out.decode() if isinstance(out, bytes) else str(out)
    try:
        report = json.loads(text.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise EngineError(
            f"probe printed no JSON in {ref}: {text[-500:]!r}", "see output"
        ) from None
    return ProbeRun(ref, platform, gpu, report)


def _ensure_image(c: Any, ref: str, platform: str) -> None:
    # Always pull: a digest ref is immutable, a tag may have moved since the last pull.
    log.info(f"$ docker pull --platform {platform} {ref}")
    c.images.pull(ref, platform=platform)


def gpu_runtime_available() -> bool:
    """True when the engine has the NVIDIA runtime (what `--gpus` needs)."""
    try:
        info = client().info()
    except EngineError:
        return False
    return "nvidia" in (info.get("Runtimes") or {})
