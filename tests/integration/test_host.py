"""The local registry's life on this host (no engine needed): it listens on loopback only,
and registry-down signals only the process it started."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aibase import localregistry
from aibase.paths import Paths


def test_registry_down_leaves_a_recycled_pid_alone(tmp_path: Path, capsys):
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = paths.registry_dir(5099)
        state.mkdir(parents=True)
        (state / "pid").write_text(str(bystander.pid))  # a stale pid, now someone else's
        assert localregistry.stop_registry("127.0.0.1:5099", paths) is False
        assert bystander.poll() is None  # still running
        assert "is not the registry this tool started: left alone" in capsys.readouterr().err
        assert not (state / "pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_the_local_registry_listens_on_loopback_only(tmp_path: Path):
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    host = "127.0.0.1:5098"
    localregistry.start_registry(host, paths)
    try:
        config = (paths.registry_dir(5098) / "config.yml").read_text()
        assert "addr: '127.0.0.1:5098'" in config
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        assert "127.0.0.1:5098" in listening and "0.0.0.0:5098" not in listening
        assert "*:5098" not in listening and "[::]:5098" not in listening
    finally:
        assert localregistry.stop_registry(host, paths) is True
    assert not localregistry.answers(host)
