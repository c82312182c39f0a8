"""scripts/daemon_json.py: the setup script's merge into Docker's daemon.json (pure file I/O)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from .conftest import REPO

spec = importlib.util.spec_from_file_location("daemon_json", REPO / "scripts" / "daemon_json.py")
assert spec and spec.loader
daemon_json = importlib.util.module_from_spec(spec)
spec.loader.exec_module(daemon_json)

EXISTING = {
    "data-root": "/srv/docker",
    "registry-mirrors": ["https://mirror.example.internal"],
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
    "features": {"buildkit": True},
}


def test_merge_keeps_every_other_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(EXISTING))
    assert daemon_json.main(["x", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "changed"
    merged = json.loads(path.read_text())
    assert merged == EXISTING | {"features": {"buildkit": True, "containerd-snapshotter": True}}
    backups = list(tmp_path.glob("daemon.json.bak-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == EXISTING
    assert daemon_json.main(["x", str(path)]) == 0  # a second run: nothing to do
    assert capsys.readouterr().out.strip() == "unchanged"
    assert len(list(tmp_path.glob("daemon.json.bak-*"))) == 1


def test_no_file_gets_just_the_needed_key(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "daemon.json"
    assert daemon_json.main(["x", str(path)]) == 0
    assert json.loads(path.read_text()) == {"features": {"containerd-snapshotter": True}}


def test_a_broken_file_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"runtimes": {')
    assert daemon_json.main(["x", str(path)]) == 2
    assert path.read_text() == '{"runtimes": {'
    assert "not valid JSON" in capsys.readouterr().err
