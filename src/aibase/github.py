"""GitHub Actions, where the tool runs in one: step outputs and the job summary. Elsewhere
every call here does nothing.

Top level, beside log: audit/, release/ and cli write to the job summary.
May import: nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def running() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def set_output(name: str, value: str) -> None:
    """A step output (`steps.<id>.outputs.<name>`), e.g. the matrix for fromJSON()."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with Path(path).open("a") as fh:
            fh.write(f"{name}={value}\n")


def add_summary(markdown: str) -> None:
    """Append to the job's summary page (the run report, the audit table)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a") as fh:
            fh.write(markdown.rstrip() + "\n\n")


def annotate(level: str, title: str, message: str) -> None:
    """A workflow command: GitHub shows it on the run's page (level: notice, warning, error)."""
    if running():
        print(f"::{level} title={title}::{message}", flush=True)
