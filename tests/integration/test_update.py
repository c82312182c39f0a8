"""`invoke update` on a private copy of the fixture: the pin moves where it is declared, every
cell is re-locked (uv against PyPI), and the lock diff is shown."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from aibase.errors import ConfigError, LockError

from .conftest import IT_REPO, REPO, ai, copy_fixture, env_for, invoke


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


def _tree(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def test_a_version_the_index_lacks_changes_no_file(tmp_path: Path) -> None:
    # the docs' old headline: there is no structlog 24.4.1, so the re-lock fails
    cfg = copy_fixture(tmp_path / "fx")
    before, status = _tree(tmp_path / "fx"), _git_status()
    run = ai(
        "update",
        "structlog==24.4.1",
        "--config",
        str(cfg),
        env={"AIBASE_OUT": str(tmp_path / "out")},
    )
    assert run.returncode == LockError.exit_code, run.output[-3000:]
    assert "no version of structlog==24.4.1" in run.output
    assert _tree(tmp_path / "fx") == before  # the .in edit and the first cell's lock put back
    assert _git_status() == status
    assert "nothing changed" in run.output


def main_copy(dest: Path) -> Path:
    """images.toml with what it names (requirements, locks, Dockerfiles), for a real re-lock."""
    for name in ("requirements", "docker"):
        shutil.copytree(REPO / name, dest / name)
    shutil.copy(REPO / "images.toml", dest / "images.toml")
    return dest / "images.toml"


DOCS = REPO / "docs" / "updates.md"
QUOTED = sorted(set(re.findall(r"`(\./ai update [^`]+)`", DOCS.read_text())))


def test_the_docs_quote_update_commands() -> None:
    assert len(QUOTED) >= 3, QUOTED  # the scan finds the table's commands


@pytest.mark.parametrize("line", QUOTED)
def test_an_update_the_docs_quote_runs_as_written(
    line: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each quoted `./ai update` runs as written, on a private copy: the torch family on the
    main config (the fixture pins no torch), the rest on the fixture; --build builds the
    fixture's candidates into the test repository (nothing promoted)."""
    words = line.split()
    torch = "torch==" in line
    cfg = main_copy(tmp_path / "main") if torch else copy_fixture(tmp_path / "fx")
    env = {"AIBASE_OUT": str(tmp_path / "out")}
    extra = []
    if "--build" in words:
        request.getfixturevalue("standins")
        env |= env_for(tmp_path / "out")
        extra = ["--repository", IT_REPO]
    run = ai(*words[1:], "--config", str(cfg), *extra, env=env)
    assert run.returncode == 0, run.output[-3000:]
    for pin in words[2].split(","):
        name, version = pin.split("==")
        assert re.search(rf": {name} \S+ -> {re.escape(version)}$", run.output, re.M), pin
