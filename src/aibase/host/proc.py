"""Running external commands: argument lists only, echoed before they run, each with a
timeout; one that does not finish in time is a `Timeout` naming the command."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aibase.errors import Timeout
from aibase.log import echo_command, write_line

QUICK = 60.0  # a query: docker info, git rev-parse
LONG = 4 * 3600.0  # a full cuda cell builds in ~15 min on 2 cores; a cold CI runner is slower
TAIL_LINES = 40  # of a streamed command's output, kept to tell its failures apart


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    capture: bool = True,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    echo: bool = True,
) -> Result:
    """Run argv; capture=False streams output (long steps show progress) and keeps its
    last lines as `stderr`, so a caller can tell one failure from another. extra_env: set
    on top of env (or this process's), and echoed as `NAME=value` before the command."""
    if echo:
        echo_command([*(f"{k}={v}" for k, v in (extra_env or {}).items()), *argv])
    if extra_env:
        env = {**(os.environ if env is None else env), **extra_env}
    if not capture:
        return _stream(argv, timeout=timeout, env=env)
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=capture,
            text=True,
            env=dict(env) if env is not None else None,
            input=input_text,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return Result(tuple(argv), 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        raise _timeout(argv, timeout) from None
    return Result(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")


def _stream(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None) -> Result:
    try:
        # its own process group: a timeout stops buildx's plugin and whatever else holds
        # the pipe, not only the child; undecodable bytes must not end a healthy build
        child = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Result(tuple(argv), 127, "", f"{argv[0]}: command not found")
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        _kill_group(child)

    timer = threading.Timer(timeout, stop)
    timer.start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            write_line(line)
            tail.append(line)
        returncode = child.wait()
    finally:
        timer.cancel()
        if child.poll() is None:  # interrupted here: never leave the build running
            _kill_group(child)
            child.wait()
        if child.stdout is not None:  # a stopped run's pipe too, not only a finished one's
            child.stdout.close()
    if expired.is_set():
        raise _timeout(argv, timeout)
    return Result(tuple(argv), returncode, "", "".join(tail))


def start(argv: Sequence[str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start a long-running program (a daemon) in its own session, its output in log_file;
    echoed. The caller stops it (a Ctrl-C at the terminal does not reach it first)."""
    echo_command(argv)
    with log_file.open("ab") as out:
        return subprocess.Popen(
            list(argv), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )


def _kill_group(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _timeout(argv: Sequence[str], timeout: float) -> Timeout:
    return Timeout(
        f"`{shlex.join(argv)[:300]}` did not finish within {timeout:.0f} s (stopped)",
        "see what it was waiting for (network, a lock, the engine) and rerun",
    )
