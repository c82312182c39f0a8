"""The shared argument builder for the Invoke tasks, so each task is a few lines.

A task declares which settings it takes; this module adds their flags (help text from
`settings`), resolves them (flag > env > file > default), prints the settings block, maps
Invoke's own `--dry` onto the task's --dry-run (or refuses it loudly), and turns every
AibaseError into one message and its documented exit code.

Top level, above every package: what tasks.py builds on (the only importer of Invoke).
May import: errors, github, log, config.
"""

from __future__ import annotations

import inspect
import signal
import sys
import traceback
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from datetime import date
from types import FrameType
from typing import Any

import invoke
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.program import Program
from invoke.tasks import Task

from aibase import github, log
from aibase.config import loader
from aibase.config.model import Config, VariantConfig
from aibase.config.precedence import debug_wanted
from aibase.config.settings import SETTINGS, SettingName
from aibase.errors import INTERRUPTED_EXIT, AibaseError, ConfigError

Body = Callable[..., object]

# The settings most tasks take: where the config is, what it builds, where output goes.
COMMON: tuple[SettingName, ...] = (
    "config",
    "registry",
    "repository",
    "base_mirror",
    "out",
    "cache",
    "registry_ca",
    "auth_hosts",
    "debug",
)
BUILD: tuple[SettingName, ...] = (
    *COMMON,
    "revision",
    "ca_bundle",
    "pip_index_url_file",
    "compression",
    "build_cache",
    "refresh_os",
)
# verify, smoke and promote: what they check against, and whom they tell
PROMOTES: tuple[SettingName, ...] = (
    *COMMON,
    "revision",
    "require_gpu",
    "notify_url",
    "notify_token",
)
# build-all: a build's settings, and what its verify, smoke and promote need
BUILDS_ALL: tuple[SettingName, ...] = (
    *BUILD,
    "platforms",
    "builder",
    "jobs",
    "require_gpu",
    "notify_url",
    "notify_token",
)
INDEX = "the index to rebuild and compare: REPO:TAG or REPO@sha256:..."
IMAGES = "platforms of --image, comma-separated (default: every one in the config)"
SINCE = "review only the lock changes since this git revision (a pull request's base)"
BENCH_BUILDER = (
    "the bench's own buildx builder (not the docker driver): the bench PRUNES its whole cache "
    "before each cold build, and no other builder's; without one nothing is pruned and cold "
    "builds run every step (--no-cache) [AIBASE_BUILDER]"
)
ONE_VARIANT = "the variant (one of images.toml's [variants.*])"
SOME_VARIANTS = "variants, comma-separated (default: all)"
# Task-specific flags, their help written once (a task may override it).
FLAG_HELP = {
    "dry_run": "print every command in order and change nothing (Invoke's --dry does the same)",
    "variant": SOME_VARIANTS,
    "platform": "one platform, e.g. linux/arm64",
    "cells": "cells to bench, variant/os/arch comma-separated (default: every cell)",
    "bump": "the one-pin bump each cell is rebuilt with (a shared-stack leaf package)",
    "repeats": "how often each timing runs (the table shows the median and the minimum); "
    "from 2 on, the bytes a cold rebuild of the unchanged commit pushes",
    "floor_only": "only each cell's floor: uv downloads and unpacks its lock's wheels into an "
    "empty folder (empty cache, no Docker), then gzip of a tar of them; no build, no file",
    "registry_gc": "also sweep the local registry's unreferenced blobs (stops it briefly)",
    "push": "push to the registry and write build/cells/<cell>.json (digest, size, seconds)",
    "load": "load a single-platform image into the local engine (development)",
    "no_cache": "rebuild every step, ignoring the build cache",
    "gate": "the promote matrix instead: the planned variants whose records (build/state, "
    "build/smoke) pass promote's gate; each one held back says why",
    "ref": "verify this ref instead of the merged index (REPO:TAG or REPO@sha256:...; Docker Hub "
    "names as docker writes them); its revision label is checked only with --revision",
    "smoke": "also smoke-test each platform (needed before promote)",
    "no_promote": "stop after smoke: build candidates, leave the floating tags alone",
    "allow_rollback": "move the floating tag even to a commit older than the one it serves",
    "allow_narrowing": "move the floating tag even to an index with fewer platforms than it serves",
    "check": "only check that every lock is present and matches its inputs (offline)",
    "allow_missing": "cells (variant/os/arch, comma-separated) whose lock may be absent: a "
    "known gap, printed, never silently passed",
    "snapshot": "serve this advisory snapshot (pypa/advisory-database layout) on 127.0.0.1 for "
    "the run: air-gapped audits",
    "image": "also audit what this image holds: the SBOM attached to each platform image (no "
    "container); an image without one is said so, and its layers are read instead",
    "sbom": "print the SBOM (CycloneDX JSON) attached to each platform image (REF@<a platform "
    "image's digest>: that image's alone)",
    "allowlist": "policy file (default: audit-allowlist.toml beside images.toml)",
    "today": "evaluate expiry dates as of this day (YYYY-MM-DD; default: today)",
    "json": "print JSON instead of the table",
    "pins": "NAME==VERSION, comma-separated: where each is pinned (.in file or images.toml)",
    "build": "then build verified candidates of what changed (build-all --no-promote)",
    "before": "the index before (REF: repository:tag or repository@sha256:...)",
    "after": "the index after (REF)",
    "floating": "also audit what the variant's floating tag serves now (--variant: one)",
    "ci": "cells run on separate machines: refuse a registry they cannot share (loopback)",
    "need_gb": "free space the step needs, in GB, where the engine keeps its data",
    "allow_stand_in": "also pin STAND-IN bases (bases-bootstrap's Debian 12, for tests): "
    "refused otherwise; each pinned line then says STAND-IN",
    "runner_toolchains": "on a GitHub-hosted runner, first remove its preinstalled toolchains",
}


def command(
    *names: SettingName, name: str | None = None, positional: tuple[str, ...] = (), **task_help: str
) -> Callable[[Body], Task[Any]]:
    """Make an Invoke task of body(settings, config, **task_flags) taking these settings.

    The body's own keyword parameters are its task-specific flags; `dry_run` among them
    receives Invoke's --dry too.
    """

    def wrap(body: Body) -> Task[Any]:
        own = list(inspect.signature(body).parameters.values())[2:]
        task_name = name or body.__name__
        takes_dry_run = any(p.name == "dry_run" for p in own)
        for p in own:
            if p.name not in task_help:  # a task's own help wins over the shared one
                task_help[p.name] = FLAG_HELP[p.name]

        def task_body(c: Context, **kwargs: Any) -> None:
            flags: dict[str, Any] = {n: kwargs.pop(SETTINGS[n].param, None) for n in names}
            if getattr(c.config.run, "dry", False):
                if not takes_dry_run:
                    log.error(f"`invoke --dry {body.__name__}`: this task has no dry run")
                    raise Exit(code=ConfigError.exit_code)
                kwargs["dry_run"] = True
            with _errors(flags):
                settings, config = loader.load(flags, names=("config", *names))
                log.info(settings.render(names, every=settings.debug))
                log.reset_steps()
                with log.step(task_name, fold=False):
                    body(settings, config, **kwargs)

        params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += own + [_parameter(n) for n in names]
        task_body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        # Invoke fills a positional argument only while its value is None: no "" default
        assert all(p.default is None for p in own if p.name in positional), positional
        task_body.__doc__ = body.__doc__
        task_body.__name__ = body.__name__
        flag_help = {SETTINGS[n].param: SETTINGS[n].help + _env_hint(n) for n in names}
        return Task(
            task_body,
            name=name,
            help=flag_help | task_help,
            auto_shortflags=False,
            positional=list(positional),
        )

    return wrap


HELP_FLAGS = ("-h", "--help")


class AiProgram(Program):
    """Invoke's program as `./ai` runs it (`python -m aibase`): `TASK ... --help` prints the
    task's help. Plain Invoke takes `--help` as the value of a task's positional argument
    (`update --help`: "'--help' is not NAME==VERSION") or fails parsing (`diff --help`)."""

    def parse_tasks(self) -> None:
        asked = task_asking_help(self.core.unparsed, self.collection.task_names)
        if asked:
            self.parser = self._make_parser()
            self.print_task_help(asked)
            raise Exit
        super().parse_tasks()


def task_asking_help(argv: list[str], task_names: Container[str]) -> str | None:
    """The task in `TASK [ARGS] --help` (or -h): the one Invoke's `--help TASK` names."""
    if argv and argv[0] in task_names and set(HELP_FLAGS) & set(argv[1:]):
        return argv[0]
    return None


def main(argv: list[str] | None = None) -> None:
    """`./ai ARGS`: the task list for no arguments or a bare --help, else Invoke's program."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args in (["-h"], ["--help"]):
        args = ["--list"]
    AiProgram(binary="./ai", version=invoke.__version__).run(["./ai", *args])


def _parameter(name: str) -> inspect.Parameter:
    s = SETTINGS[name]
    default: object = False if s.kind == "bool" else ""
    return inspect.Parameter(s.param, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)


def _env_hint(name: str) -> str:
    s = SETTINGS[name]
    where = f", images.toml {s.file_key}" if s.file_key else ""
    return f" [{s.env}{where}]"


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _errors(flags: dict[str, Any]) -> Iterator[None]:
    """One message and the error's exit code; --debug adds the traceback and the details."""
    debug = debug_wanted(flags)
    log.configure(debug=debug, github=github.running())
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed run cleans up too
    try:
        yield
    except AibaseError as exc:
        if debug:
            traceback.print_exc()
        log.error(exc.render())
        for line in exc.details:  # the values behind the one-line message
            log.debug(line)
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt as exc:
        log.error(f"interrupted ({exc or 'SIGINT'}): the run stopped; see the steps above")
        raise Exit(code=INTERRUPTED_EXIT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated flag value."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text) if text else date.today()
    except ValueError:
        raise ConfigError(f"{text!r} is not a date", "use YYYY-MM-DD") from None


def variant_of(config: Config, variant: str) -> VariantConfig:
    """The one variant a single-step task works on; a clear error without it."""
    if not variant:
        raise ConfigError("this task needs --variant", f"one of: {', '.join(config.variants)}")
    return config.variant(variant)


def cell_of(
    config: Config, variant: str, platform: str, *, push: bool, load: bool
) -> VariantConfig:
    """The variant of the one cell `invoke build` works on; a clear error without --platform
    or without exactly one of --push and --load."""
    v = variant_of(config, variant)
    if not platform or push == load:
        raise ConfigError(
            "build needs --platform and exactly one of --push or --load",
            f"e.g. invoke build --variant {v.name} --platform {next(iter(v.platforms))} --push",
        )
    return v
