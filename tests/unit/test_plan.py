from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from aibase.audit.allowlist import load_allowlist
from aibase.build.cell import cell_lock_labels
from aibase.build.plan import (
    ACCEPTED_LABEL,
    LOCK_LABEL,
    REQUIRED_LABELS,
    BuildContext,
    Cell,
    build_args,
    cell_tag,
    descriptive_tag,
    floating_tag,
    immutable_tag,
    labels,
    layer_cache,
    lock_labels,
    plan_build,
    plan_cells,
    promoted_tags,
)
from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.errors import ConfigError
from aibase.host.buildx import BuildxBuild, buildx_argv

from .conftest import REPO, VALID, WriteConfig

CTX = BuildContext(
    revision="abc1234def5678" + "0" * 26,
    created="2026-11-27T06:00:00Z",
    date="20261127",
    run_id="9f3e2a",
)


def cfg(write_config: WriteConfig, **env: str) -> Config:
    return load_config(write_config(), env=env)


def test_cells_are_variant_by_platform(write_config: WriteConfig) -> None:
    c = cfg(write_config)
    cells = plan_cells(c, c.select(""))
    assert cells == (
        Cell("cpu", "linux/amd64"),
        Cell("cpu", "linux/arm64"),
        Cell("cuda", "linux/amd64"),
        Cell("cuda", "linux/arm64"),
    )
    assert cells[1].slug == "cpu-linux-arm64"


def test_tags(write_config: WriteConfig) -> None:
    c = cfg(write_config)
    cpu, cuda = c.variant("cpu"), c.variant("cuda")
    assert floating_tag(cpu) == "cpu"
    assert descriptive_tag(cpu) == "cpu-py3.11-torch2.4.1"
    assert descriptive_tag(cuda) == "cuda-py3.11-torch2.4.1-cu121"
    assert immutable_tag(cuda, CTX) == "cuda-20261127-abc1234-9f3e2a"
    # the descriptive tag moves with the floating one, in promote only
    assert promoted_tags(cuda) == ("cuda", "cuda-py3.11-torch2.4.1-cu121")
    # two runs of one commit on one day write different tags
    other = BuildContext(**{**CTX.__dict__, "run_id": "0c11aa"})
    assert immutable_tag(cuda, other) != immutable_tag(cuda, CTX)
    assert cell_tag(Cell("cuda", "linux/arm64"), other) != cell_tag(
        Cell("cuda", "linux/arm64"), CTX
    )


def test_a_tag_outside_the_oci_grammar_never_reaches_buildx(write_config: WriteConfig) -> None:
    long_name = "v" * 130
    text = VALID.replace("[variants.cpu]", f"[variants.{long_name}]").replace(
        "[variants.cpu.platforms", f"[variants.{long_name}.platforms"
    )
    c = load_config(write_config(text), env={})
    with pytest.raises(ConfigError) as info:
        immutable_tag(c.variant(long_name), CTX)
    assert "is not a valid image tag" in info.value.render()


def test_labels_and_build_args(write_config: WriteConfig) -> None:
    c = cfg(write_config, AIBASE_BASE_MIRROR="localhost:5000/mirror")
    cuda = c.variant("cuda")
    lab = labels(c, cuda, CTX)
    assert set(REQUIRED_LABELS) <= set(lab)
    assert lab["org.opencontainers.image.revision"] == CTX.revision
    assert lab["io.cerebral.ai-base.cuda"] == "linux/amd64=12.1"
    assert lab["io.cerebral.ai-base.torch"] == "2.4.1"
    assert build_args(c, cuda)["BASE_IMAGE"] == (
        "localhost:5000/mirror/nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    )
    assert labels(c, c.variant("cpu"), CTX)["io.cerebral.ai-base.cuda"] == "none"


def test_build_command_pushes_one_platform_under_an_immutable_tag(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    c = cfg(write_config)
    cpu = c.variant("cpu")
    ctx = BuildContext(**{**CTX.__dict__, "ca_bundle": Path("/etc/ca.pem")})
    plan = plan_build(
        c, cpu, Cell("cpu", "linux/arm64"), ctx, push=True, metadata_file=tmp_path / "m.json"
    )
    argv = list(plan.argv)
    assert argv[:3] == ["docker", "buildx", "build"]
    assert argv[argv.index("--platform") + 1] == "linux/arm64"
    out = argv[argv.index("--output") + 1]
    assert out == (
        "type=image,name=localhost:5000/cerebral/ai-base:"
        "build-cpu-linux-arm64-20261127-abc1234-9f3e2a,push=true,compression=gzip,force-compression=true"
    )
    # the CA bundle travels as a secret, and nowhere else in the command
    assert argv[argv.index("--secret") + 1] == "id=ca_bundle,src=/etc/ca.pem"
    assert [a for a in argv if "/etc/ca.pem" in a] == ["id=ca_bundle,src=/etc/ca.pem"]
    assert f"locks={cpu.lock_dir}" in argv
    assert argv[argv.index("--metadata-file") + 1] == str(tmp_path / "m.json")
    assert argv[-1] == str(cpu.dockerfile.parent)


def test_build_command_load_and_compression(write_config: WriteConfig, tmp_path: Path) -> None:
    c = cfg(write_config)
    cpu = c.variant("cpu")
    load = plan_build(
        c,
        cpu,
        Cell("cpu", "linux/amd64"),
        CTX,
        push=False,
        load=True,
        tags=["x:dev"],
        metadata_file=tmp_path / "m.json",
    )
    assert "--load" in load.argv and "--output" not in load.argv and "x:dev" in load.argv
    zstd = BuildContext(**{**CTX.__dict__, "compression": "zstd"})
    push = plan_build(
        c, cpu, Cell("cpu", "linux/amd64"), zstd, push=True, metadata_file=tmp_path / "m.json"
    )
    assert "compression=zstd,force-compression=true" in push.argv[push.argv.index("--output") + 1]
    gzip = plan_build(
        c, cpu, Cell("cpu", "linux/amd64"), CTX, push=True, metadata_file=tmp_path / "m.json"
    )
    # forced for the default too: a cache holding zstd blobs would otherwise ship them
    assert "compression=gzip,force-compression=true" in gzip.argv[gzip.argv.index("--output") + 1]


def test_build_cache_in_the_registry_or_a_folder(write_config: WriteConfig, tmp_path: Path) -> None:
    c = cfg(write_config)
    cell = Cell("cpu", "linux/arm64")
    assert layer_cache(c, cell, None, "gzip") == (None, None)
    assert layer_cache(c, cell, "registry", "gzip") == (
        "type=registry,ref=localhost:5000/cerebral/ai-base:cache-cpu-linux-arm64",
        "type=registry,ref=localhost:5000/cerebral/ai-base:cache-cpu-linux-arm64,"
        "mode=max,compression=gzip,force-compression=true",
    )
    assert layer_cache(c, cell, str(tmp_path), "zstd") == (
        f"type=local,src={tmp_path}/cpu-linux-arm64",
        f"type=local,dest={tmp_path}/cpu-linux-arm64,mode=max,compression=zstd,force-compression=true",
    )
    ctx = BuildContext(**{**CTX.__dict__, "build_cache": "registry"})
    plan = plan_build(c, c.variant("cpu"), cell, ctx, push=True, metadata_file=tmp_path / "m")
    argv = list(plan.argv)
    assert argv[argv.index("--cache-from") + 1] == (
        "type=registry,ref=localhost:5000/cerebral/ai-base:cache-cpu-linux-arm64"
    )
    assert argv[argv.index("--cache-to") + 1].endswith(
        "mode=max,compression=gzip,force-compression=true"
    )


def test_a_buildkit_cluster_builds_on_its_builder_and_pushes_by_digest(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    c = cfg(write_config)
    ctx = BuildContext(**{**CTX.__dict__, "builder": "cluster"})
    plan = plan_build(
        c,
        c.variant("cpu"),
        Cell("cpu", "linux/arm64"),
        ctx,
        push=True,
        by_digest=True,
        metadata_file=tmp_path / "m",
    )
    argv = list(plan.argv)
    assert argv[3:5] == ["--builder", "cluster"]
    assert argv[argv.index("--output") + 1] == (
        "type=image,name=localhost:5000/cerebral/ai-base,push-by-digest=true,"
        "name-canonical=true,push=true,compression=gzip,force-compression=true"
    )  # no tag at all: the cell record carries the digest


def test_a_rendered_cell_builds_from_its_own_dockerfile_and_groups(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    c = cfg(write_config)
    cpu = c.variant("cpu")
    cell = Cell("cpu", "linux/arm64")
    plan = plan_build(c, cpu, cell, CTX, push=True, metadata_file=tmp_path / "m", rendered=tmp_path)
    argv = list(plan.argv)
    assert argv[argv.index("--file") + 1] == str(tmp_path / "Dockerfile")
    assert f"groups={tmp_path / 'groups'}" in argv
    assert "INSTALLER_IMAGE=python:3.11-slim" in argv
    assert argv[-1] == str(cpu.dockerfile.parent)  # install-group.sh comes from there


def test_refresh_os_rebuilds_the_os_stage_only(write_config: WriteConfig, tmp_path: Path) -> None:
    """The weekly schedule (AIBASE_REFRESH_OS): apt runs again in the OS stage; the group
    stages stay cached. --no-cache already rebuilds everything."""
    c = cfg(write_config)
    cell = Cell("cpu", "linux/arm64")

    def argv_of(ctx: BuildContext) -> list[str]:
        plan = plan_build(c, c.variant("cpu"), cell, ctx, push=True, metadata_file=tmp_path / "m")
        return list(plan.argv)

    plain = argv_of(CTX)
    argv = argv_of(replace(CTX, refresh_os=True))
    assert "--no-cache-filter" not in plain
    assert argv[argv.index("--no-cache-filter") + 1] == "os"
    assert [a for a in argv if a not in ("--no-cache-filter", "os")] == plain
    argv = argv_of(replace(CTX, refresh_os=True, no_cache=True))
    assert "--no-cache" in argv and "--no-cache-filter" not in argv
    # the stage the filter names holds apt; the image is built on it, the groups after it
    for dockerfile in sorted((REPO / "docker").glob("Dockerfile.ai-base.*")):
        text = dockerfile.read_text()
        os_stage = text.index("FROM ${BASE_IMAGE} AS os\n")
        image = text.index("FROM os AS image\n")
        assert (
            os_stage < text.index("apt-get install") < image < text.index("@ai-base:group-layers")
        )


@pytest.mark.parametrize(
    ("config", "variant", "platform", "accepted"),
    [
        ("images.toml", "cuda", "linux/amd64", "CVE-2025-32434"),
        ("images.toml", "cpu", "linux/arm64", "CVE-2025-32434"),
        ("tests/fixtures/images.toml", "fixture", "linux/amd64", None),  # no torch, no allowlist
    ],
)
def test_an_image_whose_lock_pins_an_allowlisted_package_says_so(
    config: str, variant: str, platform: str, accepted: str | None, tmp_path: Path
) -> None:
    """The committed locks pin torch 2.4.1, which the committed allowlist accepts
    CVE-2025-32434 for: their images carry the label, in the exact buildx command."""
    c = load_config(REPO / config, env={})
    v = c.variant(variant)
    extra = cell_lock_labels(c, v, platform)
    cell = Cell(variant, platform)
    plan = plan_build(c, v, cell, CTX, push=True, metadata_file=tmp_path / "m", extra_labels=extra)
    found = [a for a in plan.argv if a.startswith(f"{ACCEPTED_LABEL}=")]
    assert found == ([f"{ACCEPTED_LABEL}={accepted}"] if accepted else [])
    assert f"{LOCK_LABEL}={extra[LOCK_LABEL]}" in plan.argv and len(extra[LOCK_LABEL]) == 64


def test_the_accepted_label_follows_the_lock_not_the_variant() -> None:
    allowlist = load_allowlist(REPO / "audit-allowlist.toml")
    fixture_lock = (REPO / "tests/fixtures/locks/fixture-linux-amd64.txt").read_bytes()
    assert ACCEPTED_LABEL not in lock_labels(fixture_lock, allowlist)  # its lock has no torch
    torch_lock = b"torch==2.4.1 \\\n    --hash=sha256:" + b"0" * 64 + b"\n"
    assert lock_labels(torch_lock, allowlist)[ACCEPTED_LABEL] == "CVE-2025-32434"
    assert ACCEPTED_LABEL not in lock_labels(torch_lock, ())


def test_provenance_is_one_of_buildkit_s_modes_or_none() -> None:
    """The mode is typed: a misspelt one is a type error (mypy runs over the tests; the
    ignore below is needed, or --strict calls it unused), not a buildx failure mid-run."""
    argv = {
        mode: buildx_argv(BuildxBuild(context=".", platforms=("linux/amd64",), provenance=mode))
        for mode in ("mode=max", "mode=min", False, None)
    }
    assert "--provenance=mode=max" in argv["mode=max"]
    assert "--provenance=mode=min" in argv["mode=min"]
    assert "--provenance=false" in argv[False]
    assert not [a for a in argv[None] if a.startswith("--provenance")]
    BuildxBuild(context=".", platforms=(), provenance="max")  # type: ignore[arg-type]
