"""The suite's own parallelism (tests/integration/sharing.py), tried in a pytest session of
its own on two xdist workers: a test marked `alone` never overlaps another test, unmarked
tests in different files do run side by side, and `once` makes its value once for all
workers. No engine: the tests of that session sleep and write down when they ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .conftest import REPO, run_pytest

CONFTEST = f"""
import json, sys, time
sys.path.insert(0, {str(REPO)!r})
import pytest
from tests.integration.sharing import once
from tests.integration.sharing import pytest_runtest_protocol as pytest_runtest_protocol

LOG = {{log!r}}


@pytest.fixture(scope="session")
def made(tmp_path_factory):
    def make():
        with open(LOG + ".made", "a") as fh:
            fh.write("made\\n")
        time.sleep(0.5)  # long enough that the other worker asks meanwhile
        return "value"
    return once(tmp_path_factory, "made", make, str, str)


@pytest.fixture
def span(request):
    start = time.monotonic()
    yield
    with open(LOG, "a") as fh:
        fh.write(json.dumps([request.node.nodeid, start, time.monotonic()]) + "\\n")
"""

BUSY = """
import time
import pytest

{alone}
@pytest.mark.usefixtures("span")
@pytest.mark.parametrize("n", range({count}))
def test_busy(n, made):
    assert made == "value"
    time.sleep({sleep})
"""


def _session(tmp_path: Path) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """Run the little session; each file's (start, end) spans, and how often `once` made."""
    project = tmp_path / "project"
    project.mkdir()
    log = tmp_path / "spans.jsonl"
    (project / "conftest.py").write_text(CONFTEST.format(log=str(log)))
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    alone: runs alone\n")
    (project / "test_a.py").write_text(BUSY.format(alone="", count=4, sleep=0.4))
    # test_b outlasts test_a: the alone file, next on test_a's worker, meets it running
    (project / "test_b.py").write_text(BUSY.format(alone="", count=8, sleep=0.4))
    (project / "test_c.py").write_text(BUSY.format(alone="@pytest.mark.alone", count=2, sleep=0.6))
    run = run_pytest("-n", "2", "--dist", "loadfile", "-p", "xdist", cwd=project)
    assert run.returncode == 0 and run.ran == {"passed": 14}, run.output[-3000:]
    spans: dict[str, list[tuple[float, float]]] = {}
    for line in log.read_text().splitlines():
        nodeid, start, end = json.loads(line)
        spans.setdefault(nodeid.split("::")[0], []).append((start, end))
    return spans, len(Path(f"{log}.made").read_text().splitlines())


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def test_an_alone_test_runs_with_no_other_and_the_rest_side_by_side(tmp_path: Path) -> None:
    assert sys.platform.startswith("linux")  # fcntl locks between the workers' processes
    spans, made = _session(tmp_path)
    assert set(spans) == {"test_a.py", "test_b.py", "test_c.py"}
    # test_a and test_b ran at once on the two workers (the lock is shared between them) ...
    assert _overlap(spans["test_a.py"], spans["test_b.py"]) > 0.3, spans
    # ... and neither of them beside the alone ones
    others = spans["test_a.py"] + spans["test_b.py"]
    assert _overlap(spans["test_c.py"], others) == 0.0, spans
    assert made == 1  # one make for both workers; the other read its record
