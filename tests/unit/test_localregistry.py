"""Stopping the local registry this process started: nothing left serving or unreaped."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import cast

import pytest

from aibase.config.paths import Paths
from aibase.host import engine, local_registry


class SlowRegistry:
    """A registry process that drains a push past the grace period, then obeys SIGKILL."""

    pid = 4343

    def __init__(self) -> None:
        self.signals: list[str] = []

    def poll(self) -> int | None:
        return -9 if "kill" in self.signals else None

    def terminate(self) -> None:
        self.signals.append("term")

    def kill(self) -> None:
        self.signals.append("kill")

    def wait(self, timeout: float | None = None) -> int:
        if "kill" not in self.signals:
            raise subprocess.TimeoutExpired(["docker-registry"], timeout or 0)
        return -9


def test_a_registry_this_process_started_is_gone_when_stop_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    child = SlowRegistry()
    handle = cast("subprocess.Popen[bytes]", child)
    monkeypatch.setitem(local_registry._STARTED, paths.registry_dir(5097), handle)
    monkeypatch.setattr(engine, "remove_container", lambda _: False)
    assert local_registry.stop_registry("127.0.0.1:5097", paths) is True
    assert child.signals == ["term", "kill"]  # asked first, killed after the grace period
    assert paths.registry_dir(5097) not in local_registry._STARTED
