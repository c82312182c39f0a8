"""Reproducible Python layers: rebuilding the group layers (and the report beside them) of an
unchanged commit makes them byte for byte again, so a fresh builder (a hosted CI runner
starts with an empty one) pushes none of them. The fixture, one platform: CI stays fast."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from aibase.build import layers
from aibase.build.cell import cell_lock_labels, platform_manifest, write_rendered
from aibase.build.lock_format import parse_lock
from aibase.build.plan import BuildContext, Cell, plan_build
from aibase.config.loader import load_config
from aibase.config.settings import HOST_CA_BUNDLE
from aibase.host import engine_build
from aibase.registry.client import RegistryClient

from .conftest import FIXTURE_CONFIG, IT_REPO, MIRROR, REGISTRY, REPO, Built

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


def _rebuild_python_stages(tmp_path: Path) -> str:
    """The fixture's cell as `invoke build --push` builds it, with every install stage, the
    layers-check and the image's own steps run again (--no-cache-filter): on a later clock,
    writing new files. The OS stage comes from the cache: rebuilding it would leave a second
    version of it in the engine's shared cache (apt's layers are not reproducible), and the
    groups' layers do not depend on it (COPY --link)."""
    cfg = load_config(FIXTURE_CONFIG, {"repository": IT_REPO, "base_mirror": MIRROR}, env={})
    variant, cell = cfg.variant("fixture"), Cell("fixture", PLATFORM)
    lock = variant.lock_file(PLATFORM).read_text()
    files = layers.render_cell(variant.dockerfile.read_text(), lock, variant, PLATFORM)
    write_rendered(tmp_path / "rendered", files)
    groups = layers.plan_groups(tuple(parse_lock(lock)), variant)
    git = ["git", "-C", str(REPO), "rev-parse", "HEAD"]
    head = subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
    ca = HOST_CA_BUNDLE if HOST_CA_BUNDLE.exists() else None
    ctx = BuildContext(head, "2026-01-01T00:00:00Z", "20260101", "repro", ca_bundle=ca)
    labels = cell_lock_labels(cfg, variant, PLATFORM)
    meta, rendered = tmp_path / "meta.json", tmp_path / "rendered"
    plan = plan_build(
        cfg,
        variant,
        cell,
        ctx,
        push=True,
        metadata_file=meta,
        rendered=rendered,
        extra_labels=labels,
    )
    stages = [*(f"group-{g.name}" for g in groups), "layers-check", "image"]
    argv = [*plan.argv[:-1], "--no-cache-filter", ",".join(stages), plan.argv[-1]]
    metadata = engine_build.run_build(
        argv, plan.metadata_file, "fixture/linux/amd64", registry=REGISTRY
    )
    return str(metadata["containerimage.digest"])


def test_a_rebuild_of_an_unchanged_commit_remakes_the_python_layers_byte_for_byte(
    built: Built, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The session's fixture image against the same commit's install stages run again, a
    minute or more later. The wall clock of dockerd cannot be faked from here; every
    timestamp a build writes is that clock, and the two builds' clocks differ."""
    first = _layers(built.platform_digests[PLATFORM])
    started = time.time()
    time.sleep(2)  # tar headers keep mtimes to the second: the clocks differ for certain
    again = _layers(_rebuild_python_stages(tmp_path))
    progress = capfd.readouterr()
    assert progress.out.count(" Installed ") + progress.err.count(" Installed ") >= 4, (
        "the group installs did not run again"
    )
    python = [(s, d) for s, d, _ in first if s.startswith(PYTHON_STEPS)]
    python_again = [(s, d) for s, d, _ in again if s.startswith(PYTHON_STEPS)]
    old = {d for _, d, _ in first}
    pushed = {s[:60]: n for s, d, n in again if d not in old}
    print(f"rebuilt in {time.time() - started:.0f} s; layers pushed again: {pushed}")
    print("Python layers, first build -> rebuild:")
    print(
        "\n".join(
            f"  {a[1]} -> {b[1]}  {a[0][:40]}" for a, b in zip(python, python_again, strict=False)
        )
    )
    assert len(python) > 4  # the groups and the report
    assert python_again == python, f"pushed again: {pushed}"
