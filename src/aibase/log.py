"""Console output, all on stderr (stdout stays for results a script may parse).

Levels: debug (only with --debug / AIBASE_DEBUG=1), info, warn, error. Steps print one line
when they start and one with their duration when they end; on GitHub Actions each step is
also a foldable group. Commands are echoed as one copy-pasteable line before they run.

Top level: every package prints through it.
May import: nothing.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    status: str  # "ok" or "FAILED"


@dataclass
class _State:
    debug: bool = False
    github: bool = False  # GitHub Actions: fold each step with ::group::
    steps: list[Step] = field(default_factory=list)  # this process's run, in order
    grouped: bool = False  # a GitHub ::group:: is open


_state = _State()


def configure(*, debug: bool, github: bool) -> None:
    _state.debug = debug
    _state.github = github


_lines = threading.Lock()


def _emit(message: str) -> None:
    write_line(message + "\n")


def write_line(line: str) -> None:
    """One whole line at a time: cells building side by side (--jobs) stream their build
    output from threads, and print()'s separate newline write would let another thread's
    line land in the middle of this one."""
    with _lines:
        sys.stderr.write(line)
        sys.stderr.flush()


def debug(message: str) -> None:
    if _state.debug:
        _emit(f"debug: {message}")


def info(message: str) -> None:
    _emit(message)


def warn(message: str) -> None:
    _emit(f"warning: {message}")


def error(message: str) -> None:
    _emit(f"error: {message}")


def echo_command(argv: Sequence[str], dry_run: bool = False) -> None:
    """Print the command as one copy-pasteable line (users re-run these when debugging)."""
    prefix = "[dry-run] $ " if dry_run else "$ "
    _emit(prefix + shlex.join(argv))


def steps() -> tuple[Step, ...]:
    return tuple(_state.steps)


def reset_steps() -> None:
    _state.steps.clear()


@contextmanager
def step(name: str, *, fold: bool = True) -> Iterator[None]:
    """One line when the step starts, one with its duration and status when it ends.
    On GitHub Actions a step is a foldable group, unless one is open (groups don't nest)."""
    group = fold and _state.github and not _state.grouped
    if group:
        _state.grouped = True
        _emit(f"::group::{name}")
    _emit(f"==> {name}")
    start = time.monotonic()
    status = "FAILED"
    try:
        yield
        status = "ok"
    finally:
        took = time.monotonic() - start
        _state.steps.append(Step(name, took, status))
        _emit(
            f"<== {name}: ok ({took:.1f} s)"
            if status == "ok"
            else f"<== {name}: FAILED after {took:.1f} s"
        )
        if group:
            _state.grouped = False
            _emit("::endgroup::")


def summary() -> str:
    """The step table; empty when no step ran (a refusal before the first step)."""
    if not _state.steps:
        return ""
    width = max((len(s.name) for s in _state.steps), default=4)
    lines = [f"{'step':<{width}}  {'seconds':>8}  status"]
    lines += [f"{s.name:<{width}}  {s.seconds:>8.1f}  {s.status}" for s in _state.steps]
    lines.append(f"{'total':<{width}}  {sum(s.seconds for s in _state.steps):>8.1f}")
    return "\n".join(lines)
