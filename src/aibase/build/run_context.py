"""What one run knows before its first step, made once and passed down: the settings, the
config, the output layout, the build facts (revision, time, secrets) and the one client of
the target registry."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aibase.build.plan import BuildContext
from aibase.config.model import Config
from aibase.config.paths import Paths
from aibase.config.resolved import Settings
from aibase.errors import ConfigError, StateError
from aibase.host import git
from aibase.registry.client import RegistryClient


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    config: Config
    paths: Paths
    build: BuildContext
    registry: RegistryClient  # the target registry's client, one per run

    @property
    def revision(self) -> str:
        return self.build.revision


def make_build_context(
    settings: Settings, *, no_cache: bool = False, now: datetime | None = None
) -> BuildContext:
    moment = now or datetime.now(UTC)
    index_url_file = settings.pip_index_url_file
    if index_url_file is not None and not index_url_file.is_file():
        raise ConfigError(
            f"pip index URL file {index_url_file} not found",
            "pass a file holding the index URL (with its token), or leave the setting unset",
        )
    return BuildContext(
        revision=settings.revision or git.revision(Path.cwd()),
        created=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        date=moment.strftime("%Y%m%d"),
        run_id=secrets.token_hex(3),
        ca_bundle=settings.ca_bundle,
        pip_index_url_file=index_url_file,
        build_cache=settings.build_cache,
        compression=settings.compression,
        no_cache=no_cache,
        refresh_os=settings.refresh_os,
        builder=settings.builder,
    )


def registry_client(settings: Settings, host: str) -> RegistryClient:
    """A client that trusts what the settings say: --registry-ca, --auth-hosts."""
    return RegistryClient(host, ca=settings.registry_ca, auth_hosts=settings.auth_hosts)


@contextmanager
def hold_output(out: Path, what: str) -> Iterator[None]:
    """One run at a time per output directory: two runs on one checkout would mix their
    records. The lock is the kernel's (flock): a killed run releases it by dying."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise StateError(
                f"{out} is in use by another run ({holder})",
                "wait for it to finish, or give this run its own --out / AIBASE_OUT",
            ) from None
        fh.truncate(0)
        fh.write(f"pid {os.getpid()}: invoke {what}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def open_run(
    settings: Settings, config: Config, *, dry_run: bool = False, no_cache: bool = False
) -> Iterator[RunContext]:
    """The run's context, holding its output directory (a dry run writes nothing, so it
    holds nothing); the registry client is closed when the run ends."""
    paths = Paths(settings.out, settings.cache)
    build = make_build_context(settings, no_cache=no_cache)
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(hold_output(paths.out, " ".join(sys.argv[1:])[:200]))
        client = stack.enter_context(registry_client(settings, config.registry))
        yield RunContext(settings, config, paths, build, client)
