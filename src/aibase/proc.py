"""Running external commands: argument lists only, echoed before they run, each with a
timeout; one that does not finish in time is a `Timeout` naming the command."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aibase.errors import Timeout
from aibase.log import echo_command

QUICK = 60.0  # a query: docker info, git rev-parse
LONG = 4 * 3600.0  # a full cuda cell builds in ~15 min on 2 cores; a cold CI runner is slower


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
    input_text: str | None = None,
    echo: bool = True,
) -> Result:
    """Run argv; capture=False streams output (long steps show progress)."""
    if echo:
        echo_command(argv)
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
        raise Timeout(
            f"`{shlex.join(argv)[:300]}` did not finish within {timeout:.0f} s (stopped)",
            "see what it was waiting for (network, a lock, the engine) and rerun",
        ) from None
    return Result(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")
