"""The shared task builder: documented exit codes, Invoke's --dry, flags without collisions."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from invoke.config import Config as InvokeConfig
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.tasks import Task

import tasks
from aibase.cli import command
from aibase.config.model import Config
from aibase.config.resolved import Settings
from aibase.errors import ALL_ERRORS, AibaseError

from .conftest import REPO, WriteConfig


def _readme_codes() -> dict[str, int]:
    """`| 2 | ConfigError | ... |` rows of the README's exit-code table."""
    text = (REPO / "README.md").read_text()
    return {
        m.group(2): int(m.group(1)) for m in re.finditer(r"^\| (\d+) \| `(\w+)` \|", text, re.M)
    }


def test_each_error_class_has_a_distinct_documented_code() -> None:
    codes = [cls.exit_code for cls in ALL_ERRORS]
    assert len(set(codes)) == len(codes) and 1 not in codes
    assert _readme_codes() == {cls.__name__: cls.exit_code for cls in ALL_ERRORS}
    assert set(ALL_ERRORS) == set(_subclasses(AibaseError))


def _subclasses(cls: type[AibaseError]) -> set[type[AibaseError]]:
    found: set[type[AibaseError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_a_task_exits_with_its_errors_code(
    cls: type[AibaseError], write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    @command("config", "debug")
    def failing(_s: Settings, _cfg: Config) -> None:
        raise cls("what went wrong", "what to do")

    with pytest.raises(Exit) as info:
        failing(Context(), config=str(write_config()))
    assert info.value.code == cls.exit_code
    err = capsys.readouterr().err
    assert "error: what went wrong\n  fix: what to do" in err
    assert "Traceback" not in err


def test_debug_adds_the_traceback(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    @command("config", "debug")
    def failing(_s: Settings, _cfg: Config) -> None:
        raise ALL_ERRORS[0]("boom")

    with pytest.raises(Exit):
        failing(Context(), config=str(write_config()), debug=True)
    assert "Traceback" in capsys.readouterr().err


def test_an_errors_details_show_only_with_debug(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    @command("config", "debug")
    def failing(_s: Settings, _cfg: Config) -> None:
        raise ALL_ERRORS[0]("one line", "the fix", details=("recorded 'a', this run 'b'",))

    with pytest.raises(Exit):
        failing(Context(), config=str(write_config()))
    err = capsys.readouterr().err
    assert "error: one line\n  fix: the fix" in err and "recorded 'a'" not in err
    with pytest.raises(Exit):
        failing(Context(), config=str(write_config()), debug=True)
    assert "debug: recorded 'a', this run 'b'" in capsys.readouterr().err


def _dry_context() -> Context:
    return Context(InvokeConfig(overrides={"run": {"dry": True}}))


def test_invoke_dry_becomes_the_tasks_dry_run(write_config: WriteConfig) -> None:
    seen: list[bool] = []

    @command("config")
    def step(_s: Settings, _cfg: Config, dry_run: bool = False) -> None:
        seen.append(dry_run)

    step(_dry_context(), config=str(write_config()))
    step(Context(), config=str(write_config()))
    assert seen == [True, False]


def test_invoke_dry_is_refused_by_a_task_without_a_dry_run(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[int] = []

    @command("config")
    def step(_s: Settings, _cfg: Config) -> None:
        ran.append(1)

    with pytest.raises(Exit) as info:
        step(_dry_context(), config=str(write_config()))
    assert info.value.code == 2 and not ran
    assert "has no dry run" in capsys.readouterr().err


def _tasks() -> list[Task[Any]]:
    return [t for t in vars(tasks).values() if t.__class__.__name__ == "Task"]


def _arguments(task: Task[Any]) -> list[Argument]:
    fresh = copy.copy(task)
    fresh.help = dict(task.help)  # Invoke consumes the help dict as it builds arguments
    return fresh.get_arguments()


def test_no_task_has_short_flags_so_none_collides_with_invokes_own() -> None:
    assert {t.name for t in _tasks()} == {
        "audit",
        "bases-bootstrap",
        "bases-update",
        "bench",
        "build",
        "build-all",
        "clean",
        "diff",
        "doctor",
        "free-disk",
        "images",
        "inspect",
        "lock",
        "matrix",
        "merge",
        "promote",
        "rebuild-check",
        "registry-down",
        "registry-up",
        "smoke",
        "update",
        "verify",
    }
    for task in _tasks():
        for arg in _arguments(task):
            assert all(len(n) > 1 for n in arg.names), (task.name, arg.names)


def test_every_flag_has_help() -> None:
    for task in _tasks():
        for arg in _arguments(task):
            assert arg.help, (task.name, arg.name)


def test_single_step_tasks_say_they_take_one_variant() -> None:
    for task in _tasks():
        args = {a.name: a.help or "" for a in _arguments(task)}
        if task.name in ("build", "merge", "verify", "smoke", "promote"):
            assert args["variant"].startswith("the variant"), task.name
        elif "variant" in args:
            assert "comma-separated" in args["variant"], task.name
