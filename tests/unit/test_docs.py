"""Every command the README and docs/ quote exists and takes the flags shown: a renamed task,
flag or session fails here, not in a user's terminal."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path

import nox
import noxfile
import pytest
from invoke import Collection, Task

import tasks
from aibase.settings import SETTINGS

from .conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = ("./ai", ".venv/bin/invoke", "invoke", ".venv/bin/nox", "nox")
# pytest options of the smoke sessions (tests/smoke/conftest.py declares them from these)
SMOKE_FLAGS = {
    SETTINGS[n].flag for n in ("config", "smoke_variant", "smoke_image", "smoke_platforms")
} | {SETTINGS["require_gpu"].flag}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")


def quoted_commands(page: Path) -> Iterator[str]:
    """Lines of fenced blocks and inline code spans that start with one of PROGRAMS."""
    text = page.read_text()
    for block in FENCE.findall(text):
        yield from (line.strip().removeprefix("$ ") for line in block.splitlines())
    yield from SPAN.findall(FENCE.sub("", text))


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in quoted_commands(page):
            words = line.split(" #")[0].split()  # the docs quote no shell quoting
            if words and words[0] in PROGRAMS:
                found.append((f"{page.relative_to(REPO)}: {line}", words))
    return found


def task_flags(task: Task) -> set[str]:
    # get_arguments() pops each flag's help from the task: ask a copy
    task = copy.copy(task)
    task.help = dict(task.help)
    flags = {"--help", "-h"}
    for arg in task.get_arguments():
        for name in arg.names:
            flag = name.replace("_", "-")
            flags.add(f"--{flag}" if len(flag) > 1 else f"-{flag}")
            if arg.kind is bool and arg.default is True:
                flags.add(f"--no-{flag}")
    return flags


COLLECTION = Collection.from_module(tasks)


def check_invoke(words: list[str]) -> None:
    if not words or words[0] in ("--list", "-l", "--help", "-h"):
        return
    name, *rest = words
    if name.startswith("<") or name.isupper():  # a placeholder: `invoke <task> --help`
        return
    assert name in COLLECTION.task_names, f"no task {name!r} (invoke --list)"
    flags = task_flags(COLLECTION[name])
    for word in rest:
        if word.startswith("-"):
            flag = word.split("=")[0]
            assert flag in flags, f"{name} takes no {flag} (has {sorted(flags)})"


def check_nox(words: list[str]) -> None:
    posargs: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, posargs = words[:cut], words[cut + 1 :]
    sessions = [w for i, w in enumerate(words) if i and words[i - 1] in ("-s", "--session")]
    known = set(nox.registry.get())
    for session in sessions:
        assert session in known, f"no nox session {session!r} (nox --list)"
    for session in sessions:
        if session == "audit":
            check_invoke(["audit", *posargs])
        elif session.startswith("smoke-"):
            unknown = {w.split("=")[0] for w in posargs if w.startswith("-")} - SMOKE_FLAGS
            assert not unknown, f"{session} takes no {sorted(unknown)}"


def check(words: list[str]) -> None:
    program, *rest = words
    if program.endswith("nox"):
        check_nox(["nox", *rest])
    elif program == "./ai" and rest[:1] == ["test"]:
        check_nox(["nox", *rest[1:]])
    else:
        check_invoke(rest)


COMMANDS = commands()


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_quoted_command_exists_with_its_flags(where, words):
    assert noxfile  # imported for its sessions' registration
    check(words)


def test_the_docs_quote_the_main_commands():
    # a guard against the scan finding nothing (a changed fence style would pass every test)
    quoted = [" ".join(words) for _, words in COMMANDS]
    for main in ("./ai build-all", "./ai test", "invoke build-all", "nox -s audit", "./ai update"):
        assert any(q.startswith(main) for q in quoted), f"no doc quotes {main!r}"
    assert len(COMMANDS) > 40


@pytest.mark.parametrize(
    "words",
    [
        ["./ai", "bild-all"],
        ["invoke", "build-all", "--dryrun"],
        ["./ai", "update", "x==1", "--no-build"],
        ["nox", "-s", "smoke-gpu"],
        ["nox", "-s", "audit", "--", "--servce", "osv"],
        ["nox", "-s", "smoke-cuda", "--", "--gpu"],
        ["./ai", "test", "-s", "units"],
    ],
)
def test_the_check_catches_a_wrong_command(words):
    with pytest.raises(AssertionError):
        check(words)


def test_the_docs_link_to_pages_that_exist():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


# flags the docs quote that belong to the tools underneath (buildx, buildah, pip-audit, Invoke)
OTHER_TOOLS = {"--secret", "--strict", "--dry", "--tls-verify"}


def test_a_flag_quoted_alone_belongs_to_some_task():
    known = (
        OTHER_TOOLS
        | SMOKE_FLAGS
        | {f for t in COLLECTION.task_names for f in task_flags(COLLECTION[t])}
    )
    for page in PAGES:
        for flag in re.findall(r"`(--[a-z][a-z-]*)", page.read_text()):
            assert flag in known, f"{page.name} quotes {flag}, which no task takes"
