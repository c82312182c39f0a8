"""Runs `docker buildx build` (a cell, a stand-in base, the bench's other shape) and asks
buildx about its builders. The argument lists come from `host.buildx`; each is echoed before
it runs, and a build streams its progress.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aibase import log
from aibase.errors import BuildError, EngineError, RegistryUnreachable
from aibase.host import buildlog, proc
from aibase.host.buildx import BuildxBuilder, create_builder_argv, remove_builder_argv

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


@contextmanager
def own_builder(builder: BuildxBuilder) -> Iterator[str]:
    """A builder made for one run (an empty cache), removed afterwards: on failure and
    interrupt too, and when it was made but would not start."""
    try:
        created = proc.run(create_builder_argv(builder), timeout=proc.QUICK * 10)
        if not created.ok:
            raise EngineError(
                f"could not create buildx builder {builder.name}: {created.stderr.strip()[-300:]}",
                "`./ai doctor` checks buildx; a docker-container builder runs the BuildKit "
                "image: mirror it (--base-mirror) where Docker Hub is out of reach",
            )
        yield builder.name
    finally:
        removed = proc.run(remove_builder_argv(builder.name), timeout=proc.QUICK * 2)
        if not removed.ok and "not found" not in removed.stderr:
            log.warn(f"builder {builder.name} is left behind: docker buildx rm {builder.name}")


def build_retrying(argv: Sequence[str]) -> proc.Result:
    result = proc.run(argv, capture=False, timeout=proc.LONG)
    if not result.ok and buildlog.registry_failed(result.stderr):
        log.warn("the registry answered 5xx during the push; retrying once (the build is cached)")
        result = proc.run(argv, capture=False, timeout=proc.LONG)
    return result


def run_build(
    argv: Sequence[str], metadata: Path, cell: str, *, registry: str = "", dry_run: bool = False
) -> dict[str, object]:
    """Run one cell's build (cell: VARIANT/OS/ARCH), streaming its progress; returns the
    metadata buildx wrote. registry: the one it pushes to, named when it stops answering.
    Takes the argv, not the build plan: the engine sits below the planning that calls it."""
    if dry_run:
        log.echo_command(argv, dry_run=True)
        return {}
    metadata.parent.mkdir(parents=True, exist_ok=True)
    metadata.unlink(missing_ok=True)
    result = build_retrying(argv)
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
