"""Runs `docker buildx build` (a cell, a stand-in base, the bench's other shape) and asks
buildx about its builders. The argument lists come from `host.buildx`; each is echoed before
it runs, and a build streams its progress.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from aibase import log
from aibase.errors import BuildError, EngineError, RegistryUnreachable
from aibase.host import buildlog, proc

DIGEST_DRIVERS = ("docker-container", "remote", "kubernetes")  # can push by digest alone


@functools.cache
def builder_driver(builder: str | None) -> str:
    """The buildx driver of a builder (the current one when None): "docker", ...."""
    inspect = [builder] if builder else []
    result = proc.run(["docker", "buildx", "inspect", *inspect], echo=False, timeout=proc.QUICK * 2)
    m = re.search(r"^Driver:\s*(\S+)", result.stdout, re.M)
    if not result.ok or not m:
        raise EngineError(
            f"buildx builder {builder or '(current)'} not found: {result.stderr.strip()[-300:]}",
            "list them with `docker buildx ls`; create one or pass another --builder",
        )
    return m.group(1)


def build_retrying(argv: Sequence[str], extra_env: Mapping[str, str] | None = None) -> proc.Result:
    """extra_env: where the build runs (DOCKER_HOST of a private engine), echoed with it."""
    result = proc.run(argv, capture=False, timeout=proc.LONG, extra_env=extra_env)
    if not result.ok and buildlog.registry_failed(result.stderr):
        log.warn("the registry answered 5xx during the push; retrying once (the build is cached)")
        result = proc.run(argv, capture=False, timeout=proc.LONG, extra_env=extra_env)
    return result


def run_build(
    argv: Sequence[str],
    metadata: Path,
    cell: str,
    *,
    registry: str = "",
    dry_run: bool = False,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Run one cell's build (cell: VARIANT/OS/ARCH), streaming its progress; returns the
    metadata buildx wrote. registry: the one it pushes to, named when it stops answering.
    extra_env: set for the build (a private engine's DOCKER_HOST).
    Takes the argv, not the build plan: the engine sits below the planning that calls it."""
    if dry_run:
        log.echo_command(argv, dry_run=True)
        return {}
    metadata.parent.mkdir(parents=True, exist_ok=True)
    metadata.unlink(missing_ok=True)
    result = build_retrying(argv, extra_env)
    stopped = buildlog.registry_stopped(result.stderr, registry) if registry else None
    if not result.ok and stopped:
        raise RegistryUnreachable(
            f"registry {registry} stopped answering ({stopped}) while cell {cell} was built "
            f"and pushed (exit {result.returncode}); nothing was merged or promoted",
            "start the registry again (the local default: invoke registry-up), then rerun "
            "the same command: the build is cached and the push resumes",
        )
    if not result.ok:
        raise BuildError(
            f"build of cell {cell} failed (exit {result.returncode}"
            f"{buildlog.last_error(result.stderr)}); nothing was merged or promoted",
            "read the failing step in the build log above; for a lock error run "
            "`invoke lock --check`",
        )
    try:
        data: dict[str, object] = json.loads(metadata.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise BuildError(
            f"build of cell {cell} wrote no metadata ({exc})", "rerun the build"
        ) from None
    return data


def build_and_push(argv: Sequence[str], what: str) -> None:
    """A buildx build whose output is a push (stand-in bases); streams its progress."""
    result = build_retrying(argv)
    if not result.ok:
        raise EngineError(
            f"building {what} failed "
            f"(exit {result.returncode}{buildlog.last_error(result.stderr)})",
            "see the build output above; `invoke doctor` checks engine, QEMU, registry",
        )
