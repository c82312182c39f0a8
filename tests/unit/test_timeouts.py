"""Every command and container has a timeout that names it: the logic, with the process and
the container faked (the real ones: tests/integration/test_fail_closed.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout
from urllib3 import HTTPConnectionPool
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from aibase.errors import EngineError, Timeout
from aibase.host import engine, proc


def test_a_captured_command_past_its_timeout_is_a_timeout_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[float] = []

    def expire(argv: Sequence[str], *, timeout: float, **_: Any) -> None:
        asked.append(timeout)
        raise subprocess.TimeoutExpired(argv, timeout)

    monkeypatch.setattr(subprocess, "run", expire)
    with pytest.raises(Timeout) as info:
        proc.run(["sleep", "30"], timeout=1)
    assert asked == [1]
    assert info.value.message == "`sleep 30` did not finish within 1 s (stopped)"


class FakePipe:
    def __init__(self, lines: Iterator[str]) -> None:
        self.lines, self.closed = lines, False

    def __iter__(self) -> Iterator[str]:
        return self.lines

    def close(self) -> None:
        self.closed = True


class FakeChild:
    """A streamed child: prints `lines`, then (hang=True) waits until its group is killed."""

    pid = 4242

    def __init__(self, lines: Sequence[str], *, returncode: int = 0, hang: bool = False):
        self.killed = threading.Event()
        self.lines, self.hang, self.code = lines, hang, returncode
        self.stdout = FakePipe(self._out())

    def _out(self) -> Iterator[str]:
        yield from self.lines
        if self.hang:
            assert self.killed.wait(10), "the group was never killed"

    def wait(self) -> int:
        return -signal.SIGKILL if self.killed.is_set() else self.code

    def poll(self) -> int | None:
        return self.wait() if self.killed.is_set() or not self.hang else None


def fake_stream(monkeypatch: pytest.MonkeyPatch, child: FakeChild) -> list[tuple[int, int]]:
    """Popen gives `child`; killpg kills it; returns the (pgid, signal) of every kill."""
    kills: list[tuple[int, int]] = []

    def popen(_argv: Sequence[str], **kwargs: Any) -> FakeChild:
        assert kwargs["start_new_session"] is True  # a group of its own, killed as one
        return child

    def killpg(pgid: int, sig: int) -> None:
        kills.append((pgid, sig))
        child.killed.set()

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(os, "killpg", killpg)
    return kills


def test_a_streamed_command_past_its_timeout_is_stopped_as_a_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    child = FakeChild(["#1 building\n"], hang=True)
    kills = fake_stream(monkeypatch, child)
    with pytest.raises(Timeout) as info:
        proc.run(["docker", "buildx", "build", "."], timeout=0.05, capture=False)
    assert info.value.message == "`docker buildx build .` did not finish within 0 s (stopped)"
    assert kills == [(FakeChild.pid, signal.SIGKILL)]
    assert child.stdout.closed  # no pipe left open behind a stopped run


def test_a_streamed_command_keeps_its_last_lines_to_name_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [f"{n}\n" for n in range(1, 101)] + ["ERROR: the last words\n"]
    child = FakeChild(lines, returncode=3)
    kills = fake_stream(monkeypatch, child)
    done = proc.run(["sh", "-c", "..."], timeout=30, capture=False)
    assert done.returncode == 3 and kills == [] and child.stdout.closed
    kept = done.stderr.splitlines()
    assert len(kept) == proc.TAIL_LINES and kept[0] == "62" and kept[-1] == "ERROR: the last words"


class FakeContainer:
    def __init__(self, error: Exception | None = None) -> None:
        self.removed: list[dict[str, Any]] = []
        self.waited: list[float] = []
        # what docker-py raises when the wait expires
        self.error = error or ReadTimeout("read timed out")

    def wait(self, timeout: float) -> dict[str, int]:
        self.waited.append(timeout)
        raise self.error

    def remove(self, **kwargs: Any) -> None:
        self.removed.append(kwargs)


class FakeSdk:
    def __init__(self, container: FakeContainer) -> None:
        self.images = self
        self.containers = self
        self.container = container

    def pull(self, *_args: object, **_kwargs: object) -> None:
        return None

    def run(self, *_args: object, **_kwargs: object) -> FakeContainer:
        return self.container


def test_a_probe_past_its_timeout_is_a_timeout_and_its_container_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    container = FakeContainer()
    monkeypatch.setattr(engine, "_sdk", lambda: FakeSdk(container))
    image = "localhost:5000/cerebral/ai-base-fixture@sha256:" + "a" * 64
    with pytest.raises(Timeout) as info:
        engine.run_probe(image, "linux/arm64", timeout=1)
    assert info.value.message == (
        f"the probe in {image} (linux/arm64) did not finish within 1 s (stopped)"
    )
    assert container.waited == [1]
    assert container.removed == [{"force": True}]


PROBED = "localhost:5000/cerebral/ai-base-fixture@sha256:" + "b" * 64
# urllib3's own: the pool that timed out (docker-py's unix socket pool), the url, the message
READ_TIMED_OUT = ReadTimeoutError(
    HTTPConnectionPool("localhost"), "/containers/x/wait", "Read timed out. (read timeout=1)"
)


def test_a_wait_past_its_timeout_over_the_unix_socket_is_a_timeout_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docker-py reading the wait's answer over the socket wraps urllib3's read timeout in a
    ConnectionError (docker/docker-py#1966): still a timeout."""
    container = FakeContainer(RequestsConnectionError(READ_TIMED_OUT))
    monkeypatch.setattr(engine, "_sdk", lambda: FakeSdk(container))
    with pytest.raises(Timeout) as info:
        engine.run_probe(PROBED, "linux/amd64", timeout=1)
    assert info.value.message.endswith("did not finish within 1 s (stopped)")
    assert container.removed == [{"force": True}]


@pytest.mark.parametrize(
    "error",
    [
        RequestsConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104))),
        RequestsConnectionError("UnixHTTPConnectionPool: connection refused"),
    ],
)
def test_an_engine_that_stops_answering_during_a_probe_is_no_timeout(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a wait past its limit is a Timeout; an engine that went away says so (before, every
    failure of the wait was reported as 'did not finish within 1800 s')."""
    container = FakeContainer(error)
    monkeypatch.setattr(engine, "_sdk", lambda: FakeSdk(container))
    with pytest.raises(EngineError) as info:
        engine.run_probe(PROBED, "linux/amd64", timeout=1800)
    assert not isinstance(info.value, Timeout)
    assert info.value.exit_code == EngineError.exit_code
    assert info.value.message.startswith(
        f"the Docker Engine stopped answering while the probe in {PROBED} (linux/amd64) ran: "
    )
    assert "did not finish" not in info.value.message
    assert container.removed == [{"force": True}]
