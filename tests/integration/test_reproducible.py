"""Reproducible Python layers: a cold rebuild of an unchanged commit makes byte-identical
group layers (and the report beside them), so a fresh builder (a hosted CI runner starts
with an empty one) pushes none of them again. The fixture, one platform: CI stays fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aibase.build.cell import platform_manifest
from aibase.registry.client import RegistryClient
from aibase.state import read_cell

from .conftest import FIXTURE_CONFIG, IT_REPO, REGISTRY, Built, env_for, invoke

pytestmark = pytest.mark.engine

PLATFORM = "linux/amd64"
# the history's steps of the layers the groups' files and the report make (build/layers.py)
PYTHON_STEPS = ("COPY /layer/ ", "COPY /report/ ")


def _layers(digest: str) -> list[tuple[str, str, int]]:
    """(history step, layer digest, compressed bytes) of a platform image, base first."""
    with RegistryClient(REGISTRY) as client:
        manifest = platform_manifest(client, IT_REPO, digest, PLATFORM)  # an index or not
        config = json.loads(client.get_blob(IT_REPO, manifest.json["config"]["digest"]))
    steps = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
    layers = manifest.json["layers"]
    assert len(steps) == len(layers)
    return [(s, x["digest"], int(x["size"])) for s, x in zip(steps, layers, strict=True)]


def test_a_cold_rebuild_of_an_unchanged_commit_remakes_the_python_layers_byte_for_byte(
    built: Built, tmp_path: Path
) -> None:
    """The session's fixture image against the same commit rebuilt with every step run
    again (--no-cache: the install stages rerun, on a later clock, with new file times),
    a few seconds to minutes later. The wall clock of dockerd cannot be faked from here;
    every timestamp a build writes is that clock, and the two builds' clocks differ."""
    first = _layers(built.platform_digests[PLATFORM])
    started = time.time()
    time.sleep(2)  # tar headers keep mtimes to the second: the clocks differ for certain
    out = tmp_path / "cold"
    run = invoke("build", "--config", str(FIXTURE_CONFIG), "--repository", IT_REPO,
                 "--variant", "fixture", "--platform", PLATFORM, "--push", "--no-cache",
                 env=env_for(out))  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert run.output.count(" Installed ") >= 4, "the group installs did not run again"
    record = read_cell(out / "cells" / f"fixture-{PLATFORM.replace('/', '-')}.json")
    again = _layers(record.digest)
    python = [(s, d) for s, d, _ in first if s.startswith(PYTHON_STEPS)]
    python_again = [(s, d) for s, d, _ in again if s.startswith(PYTHON_STEPS)]
    old = {d for _, d, _ in first}
    pushed = {s[:60]: n for s, d, n in again if d not in old}
    print(
        f"cold build {record.seconds} s, done {time.time() - started:.0f} s after the first "
        f"image was read; layers pushed again: {pushed}"
    )
    print("Python layers, first build -> cold rebuild:")
    print(
        "\n".join(
            f"  {a[1]} -> {b[1]}  {a[0][:40]}" for a, b in zip(python, python_again, strict=False)
        )
    )
    assert len(python) > 4  # the groups and the report
    assert python_again == python, f"pushed again: {pushed}"
