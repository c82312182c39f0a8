"""Merging cells into one index through the registry client (a fake registry here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from aibase.build.merge import merge_variant
from aibase.build.plan import BuildContext
from aibase.build.run_context import RunContext
from aibase.config.loader import load
from aibase.config.paths import Paths
from aibase.errors import BuildError
from aibase.registry.oci import OCI_INDEX, image_entries, make_index
from aibase.state import CellRecord

from .conftest import FakeRegistry, WriteConfig

REV = "a" * 40
ATTEST = {"vnd.docker.reference.type": "attestation-manifest"}


def _cell_index(fake: FakeRegistry, repo: str, platform: str) -> str:
    """What buildx pushes for one cell: an index of the image and its attestation."""
    image = fake.add_image(repo, platform.split("/")[1], {})
    note = fake.add_image(repo, "unknown", {})
    entries = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image,
            "platform": {"os": "linux", "architecture": platform.split("/")[1]},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": note,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": ATTEST | {"vnd.docker.reference.digest": image},
        },
    ]
    return fake.add_manifest(repo, {"mediaType": OCI_INDEX, "manifests": entries})


def _ctx(write_config: WriteConfig, fake: FakeRegistry, tmp_path: Path, **env: str) -> RunContext:
    settings, cfg = load({"config": str(write_config())}, env=env)
    build = BuildContext(
        revision=REV, created="2026-11-27T06:00:00Z", date="20261127", run_id="0a0b0c"
    )
    return RunContext(settings, cfg, Paths(tmp_path / "out", tmp_path), build, fake.client())


def _cells(ctx: RunContext, fake: FakeRegistry, platforms: Sequence[str]) -> dict[str, CellRecord]:
    return {
        p: CellRecord(
            "cpu",
            p,
            ctx.config.registry,
            ctx.config.repository,
            REV,
            ctx.config.config_digest,
            _cell_index(fake, ctx.config.repository, p),
            1,
            1.0,
        )
        for p in platforms
    }


def test_one_index_of_every_platform_under_the_immutable_tag(
    write_config: WriteConfig, fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    ctx = _ctx(write_config, fake_registry, tmp_path)
    merged = merge_variant(
        ctx, ctx.config.variant("cpu"), _cells(ctx, fake_registry, ("linux/arm64", "linux/amd64"))
    )
    assert merged is not None and merged.tags == ("cpu-20261127-aaaaaaa-0a0b0c",)
    index = ctx.registry.get_manifest("cerebral/ai-base", "cpu-20261127-aaaaaaa-0a0b0c")
    assert index.digest == merged.index_digest
    entries = index.json["manifests"]
    # images.toml's order, each image followed by its own attestation
    assert [e["platform"]["architecture"] for e in entries] == [
        "amd64",
        "unknown",
        "arm64",
        "unknown",
    ]
    assert fake_registry.puts == [("cerebral/ai-base", "cpu-20261127-aaaaaaa-0a0b0c")]


def test_an_override_narrows_the_build_never_the_index(
    write_config: WriteConfig, fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    ctx = _ctx(write_config, fake_registry, tmp_path, AIBASE_PLATFORMS="linux/arm64")
    with pytest.raises(BuildError) as info:
        merge_variant(ctx, ctx.config.variant("cpu"), _cells(ctx, fake_registry, ["linux/arm64"]))
    assert "no cell result for linux/amd64" in info.value.render()
    assert "narrows what is built, never what an index must hold" in info.value.render()
    assert fake_registry.puts == []


def test_a_cell_of_another_run_is_refused(
    write_config: WriteConfig, fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    ctx = _ctx(write_config, fake_registry, tmp_path)
    cells = _cells(ctx, fake_registry, ("linux/amd64", "linux/arm64"))
    cells["linux/arm64"] = replace(cells["linux/arm64"], revision="b" * 40)
    with pytest.raises(BuildError) as info:
        merge_variant(ctx, ctx.config.variant("cpu"), cells)
    assert f"cell linux/arm64: revision '{'b' * 40}', not '{REV}'" in info.value.render()
    assert fake_registry.puts == []


def test_a_single_manifest_cell_becomes_one_entry_with_its_configs_platform() -> None:
    body = b'{"mediaType": "application/vnd.oci.image.manifest.v1+json"}'
    from aibase.registry.oci import Manifest

    top = Manifest("sha256:" + "1" * 64, "application/vnd.oci.image.manifest.v1+json", body)
    entries = image_entries(top, "linux/arm64", {"os": "linux", "architecture": "arm64"})
    assert entries == [
        {
            "mediaType": top.media_type,
            "digest": top.digest,
            "size": len(body),
            "platform": {"os": "linux", "architecture": "arm64"},
        }
    ]
    index = make_index(entries)
    assert index.is_index and index.json["manifests"] == entries


def test_a_cell_record_on_disk_from_another_commit_is_named(
    write_config: WriteConfig, fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    from aibase.build.merge import read_cells
    from aibase.errors import StateError
    from aibase.state import write_cell

    ctx = _ctx(write_config, fake_registry, tmp_path)
    cells = _cells(ctx, fake_registry, ("linux/amd64",))
    path = ctx.paths.cell_record("cpu-linux-amd64")
    write_cell(path, replace(cells["linux/amd64"], revision="c" * 40))  # an earlier run's
    with pytest.raises(StateError) as info:
        read_cells(ctx, ctx.config.variant("cpu"))
    assert str(path) in info.value.render() and "not a cell of this run" in info.value.render()
