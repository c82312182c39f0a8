"""The only module that runs `docker` / `docker buildx`."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from aibase import log, proc
from aibase.errors import BuildError, EngineError
from aibase.plan import BuildPlan


@dataclass(frozen=True)
class EngineFacts:
    docker_cli: bool
    server_version: str | None  # None: engine unreachable
    server_error: str
    containerd_store: bool
    buildx_version: str | None
    builder_platforms: tuple[str, ...]


def docker_available() -> bool:
    return shutil.which("docker") is not None


def gather_engine_facts() -> EngineFacts:
    if not docker_available():
        return EngineFacts(False, None, "docker CLI not found", False, None, ())
    info = proc.run(["docker", "info", "--format", "{{json .}}"], timeout=30)
    server: str | None = None
    containerd = False
    error = ""
    if info.ok:
        data = json.loads(info.stdout)
        server = data.get("ServerVersion") or None
        error = "; ".join(data.get("ServerErrors") or [])
        driver_status = json.dumps(data.get("DriverStatus") or [])
        containerd = "io.containerd.snapshotter" in driver_status
    else:
        error = (
            info.stderr.strip().splitlines()[-1] if info.stderr.strip() else "docker info failed"
        )
    version = proc.run(["docker", "buildx", "version"], timeout=30)
    buildx = version.stdout.strip() if version.ok else None
    platforms: tuple[str, ...] = ()
    if buildx and server:
        inspect = proc.run(["docker", "buildx", "inspect", "--bootstrap"], timeout=120)
        m = re.search(r"^Platforms:\s*(.+)$", inspect.stdout, re.M)
        if m:
            platforms = tuple(p.strip().rstrip("*") for p in m.group(1).split(","))
    return EngineFacts(True, server, error, containerd, buildx, platforms)


def require_engine() -> None:
    if not docker_available():
        raise EngineError("docker CLI not found", "run scripts/setup-host-debian.sh")
    if not proc.run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=30).ok:
        raise EngineError(
            "the Docker Engine is not reachable",
            "start it (scripts/setup-host-debian.sh starts dockerd) and check `docker info`",
        )


def run_build(plan: BuildPlan, *, dry_run: bool = False) -> dict[str, object]:
    """Run one cell's build, streaming its progress; returns buildx's metadata."""
    if dry_run:
        log.echo_command(plan.argv, dry_run=True)
        return {}
    plan.metadata_file.parent.mkdir(parents=True, exist_ok=True)
    plan.metadata_file.unlink(missing_ok=True)
    result = proc.run(plan.argv, capture=False)
    if not result.ok:
        raise BuildError(
            f"build of cell {plan.cell.variant}/{plan.cell.platform} failed "
            f"(exit {result.returncode}); nothing was merged or promoted",
            "read the failing step in the build log above; for a lock error run "
            "`invoke lock --check`",
        )
    try:
        data: dict[str, object] = json.loads(plan.metadata_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise BuildError(
            f"build of cell {plan.cell.slug} wrote no metadata ({exc})", "rerun the build"
        ) from None
    return data


def run_imagetools_create(argv: Sequence[str], *, dry_run: bool = False) -> None:
    if dry_run:
        log.echo_command(argv, dry_run=True)
        return
    result = proc.run(argv)
    if not result.ok:
        raise BuildError(
            f"merge failed: {result.stderr.strip()[-800:]}",
            "check that every cell's digest is still in the registry (invoke verify --ref ...)",
        )
