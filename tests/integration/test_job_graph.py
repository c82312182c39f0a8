"""The CI job graph (.github/workflows/build.yml), replayed here: every job runs in a fresh
clone with its own build/ directory and receives nothing but the files the workflow hands
on as artifacts. No job depends on another job's disk."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from aibase.build.cell import platform_manifest
from aibase.errors import PromoteError
from aibase.registry.client import RegistryClient
from aibase.release.unchanged import read_os_packages

from .conftest import MIRROR, REGISTRY, REPO, Run, copy_fixture, floating_digest, invoke

pytestmark = pytest.mark.engine
REPOSITORY = "cerebral/ai-base-jobgraph"
FLAGS = ("--config", "tests/fixtures/images.toml", "--repository", REPOSITORY)


def _clone(tmp_path: Path, job: str) -> Path:
    dest = tmp_path / job
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    return dest


def _job(clone: Path, *args: str) -> Run:
    return invoke(*args, *FLAGS, cwd=clone, env={"AIBASE_BASE_MIRROR": MIRROR})


def _artifact(source: Path, pattern: str, clone: Path, into: str) -> None:
    """What upload-artifact / download-artifact carry: these files, nothing else."""
    files = sorted(source.glob(pattern))
    assert files, f"no artifact {pattern} under {source}"
    (clone / into).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, clone / into / f.name)


@pytest.mark.usefixtures("standins")
def test_the_job_graph_in_separate_clones(tmp_path: Path) -> None:
    cells = {}
    for platform in ("linux/amd64", "linux/arm64"):  # cell jobs, one per runner
        clone = _clone(tmp_path, f"cell-{platform.split('/')[1]}")
        run = _job(clone, "build", "--variant", "fixture", "--platform", platform, "--push")
        assert run.returncode == 0, run.output[-3000:]
        cells[platform] = clone
    merge = _clone(tmp_path, "merge")  # merge + verify (no smoke) job
    for clone in cells.values():
        _artifact(clone / "build" / "cells", "fixture-*.json", merge, "build/cells")
    assert _job(merge, "merge", "--variant", "fixture").returncode == 0
    verified = _job(merge, "verify", "--variant", "fixture", "--no-smoke")
    assert verified.returncode == 0, verified.output[-3000:]
    smoke = {}
    for platform in ("linux/amd64", "linux/arm64"):  # smoke jobs on each native runner
        clone = _clone(tmp_path, f"smoke-{platform.split('/')[1]}")
        _artifact(merge / "build" / "state", "*.json", clone, "build/state")
        run = _job(clone, "smoke", "--variant", "fixture", "--platform", platform)
        assert run.returncode == 0, run.output[-3000:]
        smoke[platform] = clone
    before = floating_digest(REPOSITORY)
    promote = _clone(tmp_path, "promote")
    _artifact(merge / "build" / "state", "*.json", promote, "build/state")
    _artifact(smoke["linux/amd64"] / "build" / "smoke", "*.json", promote, "build/smoke")
    early = _job(promote, "promote", "--variant", "fixture")  # one smoke result missing
    assert early.returncode == PromoteError.exit_code
    assert "linux/arm64 not smoke-tested or failed" in early.output
    assert floating_digest(REPOSITORY) == before
    _artifact(smoke["linux/arm64"] / "build" / "smoke", "*.json", promote, "build/smoke")
    done = _job(promote, "promote", "--variant", "fixture")
    assert done.returncode == 0, done.output[-3000:]
    merged = next((merge / "build" / "state").glob("*.json")).read_text()
    serves = floating_digest(REPOSITORY)
    assert serves is not None and serves in merged  # the tag serves the index merge made


@pytest.mark.usefixtures("standins")
def test_the_layer_cache_lives_in_the_registry_per_cell(tmp_path: Path) -> None:
    """What build.yml sets (AIBASE_BUILD_CACHE=registry): the cell's cache goes to
    <registry>/<repository>:cache-<cell>, and the next build reads it from there.
    The builder first builds the cell with zstd, so it holds both kinds of blobs: an
    unforced cache export then walks every mix of them (moby/buildkit#6088) until dockerd
    runs out of memory; forced, it exports the configured compression only."""
    repo = "cerebral/ai-base-cachetest"
    env = {"AIBASE_BASE_MIRROR": MIRROR, "AIBASE_OUT": str(tmp_path)}
    cell = ("--variant", "fixture", "--platform", "linux/amd64", "--push")
    flags = ("--config", "tests/fixtures/images.toml", "--repository", repo, *cell)
    zstd = invoke("build", *flags, "--compression", "zstd", env=env)
    assert zstd.returncode == 0, zstd.output[-3000:]
    run = invoke("build", *flags, env={**env, "AIBASE_BUILD_CACHE": "registry"})
    assert run.returncode == 0, run.output[-3000:]
    assert f"--cache-to type=registry,ref=localhost:5000/{repo}:cache-fixture-linux-amd64" in (
        run.output
    )
    with RegistryClient(REGISTRY) as client:
        cache = client.get_manifest(repo, "cache-fixture-linux-amd64").json
    layers = {m["mediaType"] for m in cache["manifests"] if ".layer." in m["mediaType"]}
    assert layers == {"application/vnd.oci.image.layer.v1.tar+gzip"}, layers


@pytest.mark.usefixtures("standins")
def test_cells_build_at_once_with_jobs(tmp_path: Path) -> None:
    """--jobs 2 (what a BuildKit cluster gets by default): both cells in flight together."""
    run = invoke(
        "build-all",
        "--config",
        "tests/fixtures/images.toml",
        "--repository",
        "cerebral/ai-base-jobs",
        "--jobs",
        "2",
        "--no-promote",
        env={"AIBASE_BASE_MIRROR": MIRROR, "AIBASE_OUT": str(tmp_path)},
    )
    assert run.returncode == 0, run.output[-3000:]
    starts = [i for i, ln in enumerate(run.output.splitlines()) if ln.startswith("==> build fix")]
    ends = [i for i, ln in enumerate(run.output.splitlines()) if ln.startswith("<== build fix")]
    assert len(starts) == len(ends) == 2 and max(starts) < min(ends)  # overlapping


@pytest.mark.usefixtures("standins")
def test_the_weekly_refresh_rebuilds_the_os_step_and_keeps_every_group_layer(
    tmp_path: Path,
) -> None:
    """What build.yml's schedule sets (AIBASE_REFRESH_OS): apt runs again in the OS stage, so
    the OS-package layer is new, while every Python group layer (COPY --link from its cached
    stage) keeps its digest: the refresh re-pushes the OS step, not the groups."""
    repo = "cerebral/ai-base-refresh"
    # its own copy of the Dockerfile, one ENV apart in the OS stage: the refreshed OS stage
    # gets cache keys of its own, so no other test's build can pick the refreshed result
    cfg = copy_fixture(
        tmp_path / "fx",
        dockerfile_edit=(
            "FROM ${BASE_IMAGE} AS os\n",
            "FROM ${BASE_IMAGE} AS os\nENV AIBASE_TEST=refresh\n",
        ),
    )
    env = {"AIBASE_BASE_MIRROR": MIRROR, "AIBASE_OUT": str(tmp_path)}
    flags = (
        "--config",
        str(cfg),
        "--repository",
        repo,
        "--variant",
        "fixture",
        "--platform",
        "linux/amd64",
        "--push",
    )
    layers, os_lists = [], []
    for extra in ({}, {"AIBASE_REFRESH_OS": "1"}):
        run = invoke("build", *flags, env={**env, **extra})
        assert run.returncode == 0, run.output[-3000:]
        assert ("--no-cache-filter os" in run.output) == bool(extra)
        record = json.loads((tmp_path / "cells" / "fixture-linux-amd64.json").read_text())
        with RegistryClient(REGISTRY) as client:
            image = platform_manifest(client, repo, record["digest"], "linux/amd64")
            os_lists.append(read_os_packages(client, repo, image))
        layers.append([layer["digest"] for layer in image.json["layers"]])
    # what the gate compares to skip an unchanged promotion (tests/unit/test_unchanged.py):
    # apt ran twice within minutes, so the same packages, read from each image's last layer
    assert os_lists[0] is not None and os_lists[0] == os_lists[1]
    assert any(line.startswith("gcc ") for line in os_lists[0].splitlines()), os_lists[0][:500]
    before, after = layers
    groups = (tmp_path / "dockerfiles" / "fixture-linux-amd64" / "Dockerfile").read_text()
    copies = groups.count("COPY --link --from=group-")
    assert copies >= 2
    print("layers before:", before, "\nlayers after: ", after)
    assert len(before) == len(after)
    # the image ends: each group's COPY --link, the layers-check COPY --link, `pip check`
    group_layers = slice(len(before) - copies - 1, len(before) - 1)
    assert before[group_layers] == after[group_layers], (before, after)
    new = [d for d in after if d not in before]
    assert new and after.index(new[0]) < group_layers.start  # the OS step (before the groups)
