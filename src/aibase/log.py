"""Console output: one line per step with its duration, commands echoed before they run."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


def info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def echo_command(argv: Sequence[str], dry_run: bool = False) -> None:
    """Print the command as one copy-pasteable line (users re-run these when debugging)."""
    prefix = "[dry-run] $ " if dry_run else "$ "
    info(prefix + shlex.join(argv))


@dataclass
class StepTimer:
    """Collects (step, seconds, status) for the final summary table and the report."""

    steps: list[tuple[str, float, str]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        info(f"==> {name}")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            took = time.monotonic() - start
            self.steps.append((name, took, "FAILED"))
            info(f"<== {name}: FAILED after {took:.1f} s")
            raise
        took = time.monotonic() - start
        self.steps.append((name, took, "ok"))
        info(f"<== {name}: ok ({took:.1f} s)")

    def summary(self) -> str:
        width = max((len(n) for n, _, _ in self.steps), default=4)
        lines = [f"{'step':<{width}}  {'seconds':>8}  status"]
        lines += [f"{n:<{width}}  {s:>8.1f}  {st}" for n, s, st in self.steps]
        lines.append(f"{'total':<{width}}  {sum(s for _, s, _ in self.steps):>8.1f}")
        return "\n".join(lines)
