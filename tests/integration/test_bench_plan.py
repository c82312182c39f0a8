"""`./ai bench --dry-run`: every step of a bench run in order, its commands as they would run,
and nothing run: no prune, build, clone or results file (the run itself is `invoke bench`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import FIXTURE_CONFIG, REPO, ai


def _state() -> tuple[str, list[str]]:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return status, sorted(p.name for p in (REPO / "bench" / "results").glob("*"))


def test_bench_dry_run_prints_the_plan_and_changes_nothing() -> None:
    before = _state()
    run = ai(
        "bench", "--dry-run", "--cells", "fixture/linux/arm64", "--config", str(FIXTURE_CONFIG)
    )
    assert run.returncode == 0, run.output[-3000:]
    commands = [line for line in run.output.splitlines() if line.startswith("[dry-run] $ ")]
    kinds = [" ".join([Path(c.split()[2]).name, *c.split()[3:4]]) for c in commands]
    assert kinds == [
        "docker buildx",  # prune: cold
        "invoke build",  # cold
        "invoke build",  # no-op
        "git clone",  # the bump happens in a clone of HEAD
        "invoke update",
        "invoke build",  # bumped
        "docker buildx",  # prune, then the single-layer shape: cold, no-op, bumped
        "docker buildx",
        "docker buildx",
        "docker buildx",
    ]
    assert "prune --all --force" in commands[0] and "prune --all --force" in commands[6]
    assert all("--platform linux/arm64" in c for c in commands[1:3] + commands[7:])
    assert "update structlog==24.1.0" in commands[4]
    assert "/clone/" in commands[9] and "/clone/" not in commands[7]
    assert "this dry run wrote nothing" in run.output
    assert _state() == before
