"""What one run knows before its first step, made once and passed down: the settings, the
config, the output layout, the build facts (revision, time, secrets) and the one client of
the target registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aibase import proc
from aibase.config import Config
from aibase.errors import ConfigError
from aibase.paths import Paths
from aibase.plan import BuildContext
from aibase.registry import RegistryClient
from aibase.settings import Settings


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


def git_revision(cwd: Path) -> str:
    """HEAD of the checkout the tool runs in (the Dockerfiles and the tool live there)."""
    result = proc.run(["git", "-C", str(cwd), "rev-parse", "HEAD"], echo=False, timeout=30)
    if not result.ok:
        raise ConfigError(
            f"{cwd} is not a git checkout with a commit: the revision label needs one",
            "build from a clone of the repository (git commit first), or set AIBASE_REVISION",
        )
    return result.stdout.strip()


def make_build_context(
    settings: Settings, *, no_cache: bool = False, now: datetime | None = None
) -> BuildContext:
    moment = now or datetime.now(UTC)
    index_url_file = settings.path("pip_index_url_file")
    if index_url_file is not None and not index_url_file.is_file():
        raise ConfigError(
            f"pip index URL file {index_url_file} not found",
            "pass a file holding the index URL (with its token), or leave the setting unset",
        )
    return BuildContext(
        revision=settings.text("revision") or git_revision(Path.cwd()),
        created=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        date=moment.strftime("%Y%m%d"),
        ca_bundle=settings.ca_bundle,
        pip_index_url_file=index_url_file,
        build_cache=settings.text("build_cache") or None,
        compression=settings.text("compression"),
        no_cache=no_cache,
    )


@contextmanager
def open_run(settings: Settings, config: Config, *, no_cache: bool = False) -> Iterator[RunContext]:
    """The run's context; its registry client is closed when the run ends."""
    paths = Paths(settings.out, settings.cache)
    build = make_build_context(settings, no_cache=no_cache)
    with RegistryClient(config.registry) as client:
        yield RunContext(settings, config, paths, build, client)
