"""A refusal is short: the settings a run changed (not a table of defaults), each failed
check once with its fix once, the offline path once, `--variant` advice only for a variant
that passed every check, no empty step table, and a cell with no lock never shown as planned."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

import pytest

from aibase import log
from aibase.build import preflight
from aibase.build.locks import LockStatus
from aibase.build.preflight import OFFLINE, Check, raise_failed
from aibase.build.run_context import RunContext
from aibase.config.loader import load
from aibase.config.model import Config
from aibase.errors import BuildError, LockError
from aibase.host import engine

from .conftest import WriteConfig

LOCK_FIX = "run `./ai lock` where every index the config names is reachable, and commit it"
BASE_FIX = "check the name in images.toml; without access to registry-1.docker.io, ..."


@pytest.fixture
def config(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> Config:
    """VALID (cpu, cuda) with no locks; preflight sees an engine that passes."""
    monkeypatch.setattr(engine, "gather_engine_facts", lambda: None)
    monkeypatch.setattr(engine, "engine_problem", lambda *_: None)
    return load({"config": str(write_config())}, env={})[1]


def _unreachable(*names: str) -> Callable[[RunContext, str, str], Check]:
    def base(_ctx: RunContext, mirrored: str, original: str) -> Check:
        if original in names:
            return Check(
                f"base {mirrored}", "cannot be resolved", BASE_FIX, BuildError, offline=True
            )
        return Check(f"base {mirrored}", "")

    return base


def test_every_variant_stopped_gets_no_variant_advice(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        preflight, "_base", _unreachable("python:3.11-slim", config.variant("cuda").base)
    )
    ctx = cast(
        RunContext, SimpleNamespace(config=config)
    )  # preflight reads the config alone without --push
    failed = preflight.preflight(
        ctx, list(config.variants.values()), config.platforms, push=False, dry_run=True
    )
    with pytest.raises(LockError) as info:
        raise_failed(failed)
    text = info.value.render()
    assert text.startswith(f"{len(failed)} preflight checks failed; nothing was built:")
    assert text.count("  - lock ") == 4 and text.count("  - base ") == 2
    assert text.count(LOCK_FIX) == 1 and text.count(BASE_FIX) == 1  # one fix, said once
    assert text.count(OFFLINE) == 1
    assert "meanwhile" not in text  # no variant passed: there is nothing else to build


def test_a_variant_that_passed_is_named(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = config.variant("cuda")
    for platform in config.platforms:  # cuda's locks are fine (check_lock asked), cpu's missing
        cuda.lock_file(platform).parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(
        preflight,
        "check_lock",
        lambda v, spec: LockStatus(
            v.name,
            spec.platform,
            v.lock_file(spec.platform),
            "ok" if v.name == "cuda" else "missing",
        ),
    )
    monkeypatch.setattr(preflight, "_base", _unreachable())
    ctx = cast(
        RunContext, SimpleNamespace(config=config)
    )  # preflight reads the config alone without --push
    failed = preflight.preflight(
        ctx, [config.variant("cpu"), cuda], config.platforms, push=False, dry_run=True
    )
    with pytest.raises(LockError) as info:
        raise_failed(failed)
    assert "fix: meanwhile ./ai build-all --variant cuda builds the rest" in info.value.render()


def test_one_failure_is_one_line_with_its_fix() -> None:
    with pytest.raises(LockError) as info:
        raise_failed([Check("lock cpu/linux/amd64", "missing (x.txt)", LOCK_FIX, LockError)])
    assert info.value.render() == (
        f"lock cpu/linux/amd64: missing (x.txt); nothing was built\n  fix: {LOCK_FIX}"
    )


def test_no_step_no_step_table() -> None:
    log.reset_steps()
    assert log.summary() == ""
    with log.step("build x"):
        pass
    assert log.summary().splitlines()[0].startswith("step")


def test_the_settings_block_shows_what_was_set(write_config: WriteConfig) -> None:
    settings, _ = load({"config": str(write_config()), "revision": "a" * 40}, env={})
    names = ("config", "registry", "revision", "cache", "debug", "compression")
    short = settings.render(names, every=False).splitlines()
    assert [line.split()[0] for line in short[1:-1]] == ["config", "registry", "revision"]
    assert short[-1] == "  (3 more at their defaults: --debug lists them)"
    assert len(settings.render(names).splitlines()) == 1 + len(names)


def test_a_cell_without_its_lock_is_never_planned(config: Config) -> None:
    """build-all --dry-run used to show the raw template as `build cpu/linux/amd64 ... ok`."""
    from aibase.build.cell import build_cell
    from aibase.build.plan import Cell

    with pytest.raises(LockError) as info:
        build_cell(
            cast(RunContext, SimpleNamespace(config=config)),
            config.variant("cpu"),
            Cell("cpu", "linux/amd64"),
            dry_run=True,
        )
    assert "cell cpu/linux/amd64 cannot be planned: its lock is missing" in info.value.message
