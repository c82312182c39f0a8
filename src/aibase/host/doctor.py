"""`./ai doctor`: is this host able to run the pipeline? Each failing line names the fix."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.config.model import Config
from aibase.errors import EngineError
from aibase.host import engine, local_registry, proc
from aibase.host.engine import EngineFacts

MIN_FREE_GB = 20


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


SETUP = "bash scripts/setup-host-debian.sh"


def evaluate(facts: EngineFacts, config: Config, registry_ok: bool, free_gb: float) -> list[Check]:
    """Pure: facts in, checks out (unit-tested without an engine)."""
    engine_fix = f"start dockerd ({SETUP} starts it) and check `docker info`"
    if facts.server_version is None:
        # what needs the engine cannot be checked: say so instead of guessing a cause
        unknown = "not checked: the engine is not reachable"
        dependent = [Check("containerd image store", False, unknown, engine_fix)] + [
            Check(f"builder platform {p}", False, unknown, engine_fix) for p in config.platforms
        ]
    else:
        dependent = []
    checks: list[Check] = [
        Check(
            "docker CLI",
            facts.docker_cli,
            "found" if facts.docker_cli else "not on PATH",
            f"install Docker: {SETUP}",
        ),
        Check(
            "engine reachable",
            facts.server_version is not None,
            f"Docker Engine {facts.server_version}"
            if facts.server_version
            else f"not reachable: {facts.server_error}",
            engine_fix,
        ),
        Check(
            "buildx",
            facts.buildx_version is not None,
            facts.buildx_version or "missing",
            f"install the docker-buildx plugin ({SETUP})",
        ),
    ]
    if facts.server_version is None:
        checks += dependent
    else:
        checks.append(
            Check(
                "containerd image store",
                facts.containerd_store,
                "enabled" if facts.containerd_store else "off (multi-platform builds need it)",
                'set {"features": {"containerd-snapshotter": true}} in /etc/docker/daemon.json '
                "and restart dockerd",
            )
        )
        for platform in config.platforms:
            have = platform in facts.builder_platforms
            listed = ", ".join(facts.builder_platforms) or "none"
            checks.append(
                Check(
                    f"builder platform {platform}",
                    have,
                    "available" if have else f"not in the builder's list ({listed})",
                    "register QEMU: update-binfmts --enable qemu-aarch64 (qemu-user-static, "
                    f"binfmt-support; {SETUP})",
                )
            )
    checks.append(
        Check(
            f"registry {config.registry}",
            registry_ok,
            "answers /v2/" if registry_ok else "does not answer /v2/",
            "invoke registry-up (the local default), or pass --registry / AIBASE_REGISTRY",
        )
    )
    checks.append(
        Check(
            "free disk",
            free_gb >= MIN_FREE_GB,
            f"{free_gb:.0f} GB free",
            f"free at least {MIN_FREE_GB} GB (docker system prune / builder prune)",
        )
    )
    return checks


def free_disk_gb(path: Path = Path("/var/lib")) -> float:
    return shutil.disk_usage(path).free / 1e9


# What GitHub's hosted ubuntu-24.04 runners carry and no job here needs (~20 GB): Android
# SDK, .NET, GHCup (Haskell), CodeQL, Swift. (/opt/ghc and /usr/local/share/boost were
# ubuntu-22.04's.) setup-python's own toolcache (/opt/hostedtoolcache/Python) stays.
RUNNER_TOOLCHAINS = (
    "/usr/local/lib/android",
    "/usr/share/dotnet",
    "/usr/local/.ghcup",
    "/opt/hostedtoolcache/CodeQL",
    "/usr/share/swift",
)


def free_disk(need_gb: float, *, remove_toolchains: bool) -> float:
    """Room for a build where the engine keeps its data; on a CI runner, make it first."""
    if remove_toolchains:
        present = [d for d in RUNNER_TOOLCHAINS if Path(d).exists()]
        if present:
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            proc.run([*sudo, "rm", "-rf", *present], timeout=proc.QUICK * 10)
    free = free_disk_gb()
    log.info(f"free disk: {free:.0f} GB (needed: {need_gb} GB)")
    if free < need_gb:
        raise EngineError(
            f"only {free:.0f} GB free under /var/lib, {need_gb} GB needed",
            "free space (docker system prune, docker builder prune), or a larger runner",
        )
    return free


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        lines.append(f"[{mark}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)


def run_doctor(config: Config) -> list[Check]:
    """Gather the facts, print one line per check; raise when any check fails."""
    checks = evaluate(
        engine.gather_engine_facts(),
        config,
        local_registry.answers(config.registry),
        free_disk_gb(),
    )
    print(render(checks))
    if not all(c.ok for c in checks):
        raise EngineError(
            "the host is not ready (see the FAIL lines)", f"each names its fix; {SETUP}"
        )
    return checks
