"""A registry's 5xx during a push is retried once (the build is cached); nothing else is. A
registry that stopped answering is told apart from other build failures."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from aibase.errors import EngineError
from aibase.host import buildlog, engine_build, proc

FLAKE = (
    "#17 pushing localhost:5443/r:t with docker\n"
    "ERROR: unexpected status from HEAD request to https://localhost:5443/v2/r/manifests/t: "
    "500 Internal Server Error\n"
)


def fake_runs(monkeypatch: pytest.MonkeyPatch, *answers: tuple[int, str]) -> list[int]:
    calls: list[int] = []

    def run(argv: Sequence[str], *, capture: bool = True, **_: object) -> proc.Result:
        assert capture is False  # a build streams its progress
        code, tail = answers[len(calls)]
        calls.append(code)
        return proc.Result(tuple(argv), code, "", tail)

    monkeypatch.setattr(proc, "run", run)
    return calls


def test_a_registry_5xx_is_retried_once_and_the_retry_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_runs(monkeypatch, (1, FLAKE), (0, "#16 DONE\n"))
    assert engine_build.build_retrying(["docker", "buildx", "build"]).ok
    assert calls == [1, 0]


def test_a_second_5xx_is_the_builds_failure_with_the_registrys_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_runs(monkeypatch, (1, FLAKE), (1, FLAKE), (0, ""))
    with pytest.raises(EngineError, match="500 Internal Server Error"):
        engine_build.build_and_push(["docker", "buildx", "build"], "a stand-in")
    assert calls == [1, 1]


@pytest.mark.parametrize(
    "tail",
    [
        "ERROR: failed to solve: process did not complete successfully: exit code: 1\n",
        "ERROR: unexpected status from PUT request to https://r/v2/x: 401 Unauthorized\n",
        "ERROR: failed to solve: pip: exit code: 500\n",
    ],
)
def test_other_failures_are_not_retried(monkeypatch: pytest.MonkeyPatch, tail: str) -> None:
    calls = fake_runs(monkeypatch, (1, tail), (0, ""))
    assert not engine_build.build_retrying(["docker", "buildx", "build"]).ok
    assert calls == [1]


REFUSED = (
    "ERROR: failed to solve: failed to push 127.0.0.1:5012/cerebral/x:t: failed to do request: "
    'Head "http://127.0.0.1:5012/v2/cerebral/x/blobs/sha256:ab": dial tcp 127.0.0.1:5012: '
    "connect: connection refused\n"
)
RESET = (
    'ERROR: failed to copy: failed to do request: Put "http://localhost:5012/v2/cerebral/x/'
    'blobs/uploads/u": write tcp [::1]:4711->[::1]:5012: write: connection reset by peer\n'
)


def test_a_registry_that_stops_answering_is_told_from_other_failures() -> None:
    assert buildlog.registry_stopped(REFUSED, "127.0.0.1:5012") == "connection refused"
    assert buildlog.registry_stopped(RESET, "localhost:5012") == "connection reset by peer"
    assert buildlog.registry_stopped(REFUSED, "localhost:5000") is None  # another registry's
    assert buildlog.registry_stopped(FLAKE, "localhost:5443") is None
    assert buildlog.registry_stopped("ERROR: process did not complete\n", "x:1") is None
