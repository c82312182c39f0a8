"""`invoke images`, `invoke inspect` and `invoke diff` against fixture images whose
differences are known."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURE_CONFIG, IT_REPO, REGISTRY, Built, Run, invoke, make_index, push_image

pytestmark = pytest.mark.engine
CFG = ("--config", str(FIXTURE_CONFIG))


def _json(run: Run) -> list[dict[str, Any]]:
    assert run.returncode == 0, run.output[-3000:]
    start = run.output.index("[\n")
    listed: list[dict[str, Any]] = json.loads(
        run.output[start : run.output.index("\n]", start) + 2]
    )
    return listed


def test_inspect_and_images_say_what_the_index_holds(built: Built) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (facts,) = _json(
        invoke("inspect", f"{REGISTRY}/{IT_REPO}@{built.index_digest}", "--json", *CFG)
    )
    assert facts["digest"] == built.index_digest
    assert {i["platform"]: i["digest"] for i in facts["images"]} == built.platform_digests
    assert all(i["compressed_mb"] > 10 and i["layers_mb"] for i in facts["images"])
    assert (facts["revision"], facts["python"], facts["torch"]) == (head, "3.11", "none")
    listed = _json(invoke("images", "--json", *CFG))
    mine = next(f for f in listed if f["digest"] == built.index_digest)
    immutable = [t for t in mine["tags"] if t.startswith("fixture-20")]
    assert len(immutable) == 1  # the tag its merge wrote, among any others it has


def test_diff_names_the_packages_and_layers_that_changed(built: Built, tmp_path: Path) -> None:
    amd, arm = built.platform_digests["linux/amd64"], built.platform_digests["linux/arm64"]
    derived = push_image(
        f"FROM {REGISTRY}/{IT_REPO}@{amd}\nRUN pip uninstall -y structlog\n",
        f"{REGISTRY}/{IT_REPO}:diff-amd64",
        tmp_path,
    )
    index = f"{REGISTRY}/{IT_REPO}:diff-index"
    make_index(index, derived, f"{REGISTRY}/{IT_REPO}@{arm}")
    run = invoke("diff", f"{REGISTRY}/{IT_REPO}@{built.index_digest}", index, *CFG)
    assert run.returncode == 0, run.output[-3000:]
    amd_part, arm_part = run.output.split("**linux/amd64**")[1].split("**linux/arm64**")
    assert "- removed: structlog 24.4.0" in amd_part and "1 new layer(s)" in amd_part
    assert "- packages: the same" in arm_part and "0 new layer(s)" in arm_part


def test_inspect_shows_the_labels_the_stand_in_and_the_tags(built: Built) -> None:
    """The help promises labels; the fixture stands on a stand-in, and its index has tags."""
    ref = f"{REGISTRY}/{IT_REPO}@{built.index_digest}"
    run = invoke("inspect", ref, *CFG)
    assert run.returncode == 0, run.output[-3000:]
    assert "STAND-IN base: Debian 12 from bases-bootstrap, NOT python:3.11-slim" in run.output
    assert "    io.cerebral.ai-base.stand-in=true" in run.output
    assert "    io.cerebral.ai-base.variant=fixture" in run.output
    assert "    io.cerebral.ai-base.lock.sha256=" in run.output  # per platform
    (facts,) = _json(invoke("inspect", ref, "--json", *CFG))
    assert any(t.startswith("fixture-20") for t in facts["tags"]), facts["tags"]
    assert facts["stand_in_of"] == "python:3.11-slim"
    assert facts["labels"]["org.opencontainers.image.source"]
