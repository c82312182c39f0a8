"""Every command the README and docs/ quote exists and takes the flags shown: a renamed task,
flag or session fails here, not in a user's terminal."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nox
import noxfile
import pytest
from invoke.collection import Collection
from invoke.tasks import Task

import tasks
from aibase.config.settings import SETTINGS

from .conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = ("./ai", ".venv/bin/invoke", ".venv/bin/nox", "nox")
# on a fresh clone Invoke is only in the project's .venv: a bare `invoke` exits 127
BARE = ("invoke", "inv")
ENV = re.compile(r"^[A-Z][A-Z0-9_]*=\S*$")
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


def command_words(line: str) -> list[str]:
    """The words of a quoted line, without a trailing comment or leading VAR=value."""
    words = line.split(" #")[0].split()  # the docs quote no shell quoting
    while words and ENV.match(words[0]):
        words.pop(0)
    return words


def commands(programs: tuple[str, ...] = PROGRAMS) -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in quoted_commands(page):
            words = command_words(line)
            if words and words[0] in programs:
                found.append((f"{page.relative_to(REPO)}: {line}", words))
    return found


def task_flags(task: Task[Any]) -> set[str]:
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


@pytest.mark.parametrize("words", [c[1] for c in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_a_quoted_command_exists_with_its_flags(words: list[str]) -> None:
    check(words)


def test_the_check_reads_the_noxfiles_sessions() -> None:
    """check_nox asks nox's registry, which importing noxfile fills: every session it declares
    is there and nothing else (an empty registry would make every nox check meaningless)."""
    declared = [
        noxfile.lint,
        noxfile.typecheck,
        noxfile.unit,
        noxfile.integration,
        noxfile.smoke_cpu,
        noxfile.smoke_cuda,
        noxfile.smoke_fixture,
        noxfile.audit,
        noxfile.lock,
    ]
    assert list(nox.registry.get().values()) == declared
    check(["nox", "-s", "unit", "-s", "smoke-fixture"])


def test_the_docs_quote_the_main_commands() -> None:
    # a guard against the scan finding nothing (a changed fence style would pass every test)
    quoted = [" ".join(words) for _, words in COMMANDS]
    for main in ("./ai build-all", "./ai test", "./ai lock", "nox -s audit", "./ai update"):
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
def test_the_check_catches_a_wrong_command(words: list[str]) -> None:
    with pytest.raises(AssertionError):
        check(words)


def test_no_doc_quotes_a_bare_invoke() -> None:
    """`invoke TASK` from a fresh clone is `command not found` (rc 127): `./ai TASK` (or
    `.venv/bin/invoke TASK`) is what a reader can paste."""
    bare = [where for where, _ in commands(BARE)]
    assert not bare, "quote ./ai (or .venv/bin/invoke) instead:\n" + "\n".join(bare)


def test_the_bare_invoke_check_sees_an_env_prefix() -> None:
    assert command_words("AIBASE_REQUIRE_GPU=1 invoke smoke --variant V  # GPU")[:2] == [
        "invoke",
        "smoke",
    ]


def test_the_docs_link_to_pages_that_exist() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


# flags the docs quote that belong to the tools underneath (buildx, buildah, pip-audit, Invoke)
OTHER_TOOLS = {"--secret", "--strict", "--dry", "--tls-verify"}


def test_a_flag_quoted_alone_belongs_to_some_task() -> None:
    known = (
        OTHER_TOOLS
        | SMOKE_FLAGS
        | {f for t in COLLECTION.task_names for f in task_flags(COLLECTION[t])}
    )
    for page in PAGES:
        for flag in re.findall(r"`(--[a-z][a-z-]*)", page.read_text()):
            assert flag in known, f"{page.name} quotes {flag}, which no task takes"
