"""`invoke update` on a private copy of the fixture: the pin moves where it is declared, every
cell is re-locked (uv against PyPI), and the lock diff is shown."""

from __future__ import annotations

from pathlib import Path

from aibase.errors import ConfigError

from .conftest import copy_fixture, invoke


def test_update_moves_the_pin_relocks_and_shows_the_diff(tmp_path: Path) -> None:
    cfg = copy_fixture(tmp_path / "fx")
    env = {"AIBASE_OUT": str(tmp_path / "out")}
    run = invoke("update", "structlog==24.1.0", "--config", str(cfg), env=env)
    assert run.returncode == 0, run.output[-3000:]
    for platform in ("linux/amd64", "linux/arm64"):
        assert f"fixture/{platform}: structlog 24.4.0 -> 24.1.0" in run.output
    assert "structlog==24.1.0" in (tmp_path / "fx" / "requirements" / "fixture.in").read_text()
    check = invoke("lock", "--check", "--config", str(cfg), env=env)
    assert check.returncode == 0, check.output  # what update wrote is current and intact
    unknown = invoke("update", "not-a-package==1.0", "--config", str(cfg), env=env)
    assert unknown.returncode == ConfigError.exit_code
    assert "not-a-package is not pinned in" in unknown.output
