"""Running the integration tests on several pytest-xdist workers (noxfile.py): what is made
once per session for all of them, and the `alone` marker. Hooks and helpers only: the
integration conftest re-exports them, and test_sharing.py runs them in a session of its own."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def once(
    factory: pytest.TempPathFactory,
    name: str,
    make: Callable[[], T],
    dump: Callable[[T], Any],
    load: Callable[[Any], T],
) -> T:
    """`make()` once per test session, however many pytest-xdist workers it has: the first
    worker to come makes it under a lock in the folder all workers share, and records it
    (`dump`, as JSON); the others wait on the lock and read that record (`load`). A failed
    `make` records nothing: the next worker tries again and fails with its own message."""
    shared = shared_folder(factory)
    record = shared / f"once-{name}.json"
    with (shared / f"once-{name}.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when fh closes, also when make() fails
        if record.exists():
            return load(json.loads(record.read_text()))
        value = make()
        record.write_text(json.dumps(dump(value)))
        return value


def shared_folder(factory: pytest.TempPathFactory) -> Path:
    """The folder every pytest-xdist worker of this session shares (the session's own when
    it runs without workers)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Tests run on several xdist workers at once (noxfile.py), except one marked `alone`: it
    asserts on the whole registry or the fixture's floating tags ("nothing changed"), so it
    waits until no other test runs and holds the others off while it does. Each test holds
    the session's lock shared, an `alone` one exclusive, for its whole protocol: the module
    and session fixtures it sets up (which push too) and its teardowns. The turnstile makes
    the others queue behind a waiting `alone` test instead of starving it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:  # one process: nothing runs beside a test
        return (yield)
    shared = Path(tempfile.gettempdir()) / f"aibase-it-{run}"
    shared.mkdir(exist_ok=True)
    with (
        (shared / "alone.turnstile").open("a+") as turnstile,
        (shared / "alone.lock").open("a+") as lock,
    ):
        mine = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, mine)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        return (yield)  # the lock goes with the file when the test is done
