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


def _commands(output: str) -> tuple[list[str], list[str]]:
    """The dry run's commands, and each one's program and first word."""
    commands = [line for line in output.splitlines() if line.startswith("[dry-run] $ ")]
    return commands, [" ".join([Path(c.split()[2]).name, *c.split()[3:4]]) for c in commands]


def _floor_first(
    commands: list[str], kinds: list[str], lock: str, arch: str
) -> tuple[list[str], list[str]]:
    """A cell's first command is its floor's install (nothing built yet, the engine idle):
    uv, the cell's lock into an empty folder with an empty cache; the rest as they were."""
    assert kinds[0] == "uv pip", commands[:1]
    floor = commands[0]
    assert f"--python-platform {arch}-manylinux_2_28 " in floor and "--no-deps" in floor
    assert floor.endswith(f"tests/fixtures/locks/{lock}.txt") and "--require-hashes" in floor
    assert " --cache-dir " in floor and " --target " in floor
    return commands[1:], kinds[1:]


def test_bench_dry_run_prints_the_plan_and_changes_nothing() -> None:
    """Without a builder of its own the bench prunes nothing: its cold builds run every
    step (--no-cache); each timing runs twice, the bump once (its layers stay cached)."""
    before = _state()
    run = ai(
        "bench", "--dry-run", "--cells", "fixture/linux/arm64", "--config", str(FIXTURE_CONFIG)
    )
    assert run.returncode == 0, run.output[-3000:]
    commands, kinds = _floor_first(*_commands(run.output), "fixture-linux-arm64", "aarch64")
    assert kinds == [
        "git clone",  # the bump happens in a clone of HEAD
        "invoke update",
        "invoke build",  # run 1: cold
        "invoke build",  # no-op
        "invoke build",  # bumped
        "docker buildx",  # the single-layer shape: cold, no-op, bumped
        "docker buildx",
        "docker buildx",
        "invoke build",  # run 2: cold, no-op
        "invoke build",
        "docker buildx",
        "docker buildx",
    ]
    assert not any("prune" in c for c in commands)
    cold = [commands[i] for i in (2, 5, 8, 10)]
    assert all(c.endswith("--no-cache") or " --no-cache " in c for c in cold)
    assert not any("--no-cache" in commands[i] for i in (3, 4, 6, 7, 9, 11))
    assert all("--platform linux/arm64" in c for c in commands[2:])
    assert "update structlog==24.1.0" in commands[1]
    assert "/clone/" in commands[4] and "/clone/" in commands[7] and "/clone/" not in commands[5]
    assert "refuse when another build runs on this host" in run.output
    assert "this dry run wrote nothing" in run.output
    assert _state() == before


def test_bench_dry_run_on_its_own_builder_prunes_that_one_only() -> None:
    own = ("--repeats", "1", "--builder", "aibase-bench-own")
    run = ai(
        "bench",
        "--dry-run",
        "--cells",
        "fixture/linux/amd64",
        *own,
        "--config",
        str(FIXTURE_CONFIG),
    )
    assert run.returncode == 0, run.output[-3000:]
    commands, kinds = _floor_first(*_commands(run.output), "fixture-linux-amd64", "x86_64")
    prunes = [c for c in commands if "prune" in c]
    assert kinds[2:] == ["docker buildx", *["invoke build"] * 3, *["docker buildx"] * 4]
    assert prunes == [commands[2], commands[6]]
    pruned = "docker buildx prune --all --force --builder=aibase-bench-own"
    assert all(c.endswith(pruned) for c in prunes)
    assert not any("--no-cache" in c for c in commands)
    assert all("--builder aibase-bench-own" in c for c in commands if " build " in c)
