"""Running external commands: argument lists only, echoed before they run."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aibase.log import echo_command


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
    capture: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float | None = None,
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
        return Result(tuple(argv), 124, "", f"{argv[0]}: timed out after {timeout} s")
    return Result(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")
