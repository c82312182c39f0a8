"""What a newcomer reads when `./ai build-all` must refuse (a lock missing, a base nobody can
resolve): a few lines. The settings the run changed, the checks, one error naming each
problem once with each fix once, the offline path once; no retry lines, no empty step table,
no advice to build another variant when none would build."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibase.errors import LockError

from .conftest import IT_REPO, ai, copy_fixture, registry_snapshot


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
@pytest.mark.usefixtures("registry")
def test_a_refusal_is_short_and_says_each_thing_once(tmp_path: Path) -> None:
    cfg = copy_fixture(tmp_path / "fx")
    (tmp_path / "fx" / "locks" / "fixture-linux-arm64.txt").unlink()
    before = registry_snapshot()
    mirror = "127.0.0.1:5999/mirror"  # nothing listens there: the bases cannot be resolved
    env = {"AIBASE_OUT": str(tmp_path / "out"), "AIBASE_BASE_MIRROR": mirror}
    run = ai("build-all", "--config", str(cfg), "--repository", IT_REPO, env=env)
    assert run.returncode == LockError.exit_code, run.output[-3000:]
    lines = run.output.splitlines()
    error = lines.index("error: 2 preflight checks failed; nothing was built:")
    assert lines[error + 1].startswith("  - lock fixture/linux/arm64: missing")
    assert lines[error + 2].startswith(f"  - base {mirror}/library/python:3.11-slim: cannot")
    assert [line for line in lines if "fixture/linux/arm64: missing" in line] == [lines[error + 1]]
    assert run.output.count("./ai bases-bootstrap --config tests/fixtures/images.toml") == 1
    assert "retry in" not in run.output  # the registry client's retries: --debug only
    assert "total" not in run.output  # no step ran: no step table
    assert "meanwhile" not in run.output and "another --variant" not in run.output
    assert "(default)" not in run.output  # only what the run changed, and how many are left
    assert "more at their defaults: --debug lists them" in run.output
    assert len(lines) <= 25, run.output
    assert registry_snapshot() == before
