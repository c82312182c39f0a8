"""`./ai bench --floor-only`: the real floor of the fixture's linux/amd64 cell, as the docs
quote it: uv downloads the lock's wheels from the package index into an empty folder with an
empty cache, then a tar of them is gzipped. No engine; it needs the package index (through uv):
locally a run that cannot reach it skips with uv's words, with CI set it fails."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import FIXTURE_CONFIG, REPO, ai

UNREACHABLE = ("error sending request", "dns error", "Connection refused", "timed out")


def test_the_floor_only_run_downloads_unpacks_and_compresses_the_fixtures_wheels() -> None:
    before = sorted(p.name for p in (REPO / "bench" / "results").glob("*"))
    run = ai(
        "bench", "--floor-only", "--cells", "fixture/linux/amd64", "--config", str(FIXTURE_CONFIG)
    )
    if run.returncode and any(w in run.output for w in UNREACHABLE) and not os.environ.get("CI"):
        pytest.skip(f"the package index is not reachable through uv: {run.output[-500:]}")
    assert run.returncode == 0, run.output[-3000:]
    installs = [line for line in run.output.splitlines() if " pip install " in line]
    assert len(installs) == 2  # --repeats' default, each from an empty folder and cache
    lock = FIXTURE_CONFIG.parent / "locks" / "fixture-linux-amd64.txt"
    assert all(line.endswith(f"-r {lock}") for line in installs)
    work = Path(installs[0].split(" --target ")[1].split()[0]).parent
    assert work.name == "floor" and not work.exists()  # nothing left behind
    row = re.search(
        r"^\| fixture/linux/amd64 \| ([\d.]+) \(min [\d.]+, n=2\) \| .* \| ([\d.]+) MB "
        r"\| ([\d.]+) MB \| - \| - \| - \|$",
        run.output,
        re.M,
    )
    assert row, run.output[-2000:]
    seconds, unpacked, compressed = (float(g) for g in row.groups())
    # the fixture's wheels: numpy, pydantic-core, fastapi, ... ~78 MB unpacked, ~21 MB gzipped
    assert 40 < unpacked < 200 and 10 < compressed < unpacked / 2 and seconds > 0
    pinned = re.search(r"^uv==(\S+)", (REPO / "docker" / "uv.txt").read_text(), re.M)
    assert pinned and f"uv {pinned[1]} downloads and unpacks" in run.output  # the images' uv
    assert sorted(p.name for p in (REPO / "bench" / "results").glob("*")) == before
