"""`./ai TASK --help` and `./ai --help TASK` for every task in tasks.py, through the repository's
own `./ai` as a user types it: each exits 0 and names every flag the task takes. Tasks with a
positional argument (update, inspect, diff) used to take `--help` as that argument's value."""

from __future__ import annotations

import copy
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from invoke.collection import Collection
from invoke.tasks import Task

import tasks

from .conftest import REPO

COLLECTION = Collection.from_module(tasks)
TASKS = sorted(COLLECTION.task_names)


def help_flags(task: Task[Any]) -> set[str]:
    """Each flag as Invoke's help writes it: --name, or --[no-]name for one that is on."""
    task = copy.copy(task)  # get_arguments() pops each flag's help from the task
    task.help = dict(task.help)
    flags: set[str] = set()
    for arg in task.get_arguments():
        name = str(arg.name).replace("_", "-")
        flags.add(f"--[no-]{name}" if arg.kind is bool and arg.default is True else f"--{name}")
    return flags


def ai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./ai", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


FORMS = ("TASK --help", "--help TASK", "TASK -h")


@pytest.fixture(scope="module")
def helped() -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """Every task's help in every form, run all at once: each run is a second of Python
    start-up, and one after the other they were a minute of CI."""
    cases = [(name, form) for name in TASKS for form in FORMS]
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        runs = pool.map(lambda case: ai(*case[1].replace("TASK", case[0]).split()), cases)
        return dict(zip(cases, runs, strict=True))


def test_every_task_is_here() -> None:
    # a guard against an empty collection passing every parametrized case below
    assert {"build-all", "update", "inspect", "diff", "bench", "matrix"} <= set(TASKS)


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("form", FORMS)
def test_help_works_for_every_task(
    name: str, form: str, helped: dict[tuple[str, str], subprocess.CompletedProcess[str]]
) -> None:
    run = helped[name, form]
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(f"Usage: ./ai [--core-opts] {name} "), run.stdout[:300]
    missing = {f for f in help_flags(COLLECTION[name]) if f not in run.stdout}
    assert not missing, f"{name} --help does not name {sorted(missing)}"
    assert "settings (flag > env" not in run.stdout + run.stderr  # the task itself never ran


def test_help_after_a_positional_value_is_still_help() -> None:
    run = ai("update", "structlog==24.1.0", "--help")
    assert run.returncode == 0 and "--build" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"]])
def test_bare_help_lists_the_tasks_in_full_sentences(args: list[str]) -> None:
    run = ai(*args)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Available tasks:")
    for name in TASKS:
        first = (COLLECTION[name].__doc__ or "").strip().splitlines()[0]
        assert first.endswith("."), f"{name}: --list shows a cut sentence: {first!r}"
        assert " ".join(first.split()[:3]) in " ".join(run.stdout.split()), name
