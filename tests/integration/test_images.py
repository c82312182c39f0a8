"""What the Dockerfiles produce: facts inside the image, secrets absent, layer reuse."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aibase.build.cell import platform_manifest
from aibase.build.layers import plan_groups
from aibase.build.lock_format import parse_lock
from aibase.build.locks import write_lock
from aibase.build.plan import REQUIRED_LABELS
from aibase.config.loader import load_config
from aibase.errors import BuildError
from aibase.host import engine
from aibase.registry.client import RegistryClient
from aibase.release.smoke import check_probe, locked_packages
from aibase.state import read_cell

from .conftest import (
    FIXTURE_CONFIG,
    IT_REPO,
    REGISTRY,
    REPO,
    Built,
    copy_fixture,
    env_for,
    invoke,
)

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_image_holds_the_locked_python_and_packages_and_labels(built: Built, platform: str) -> None:
    cfg = load_config(FIXTURE_CONFIG, env={})
    variant = cfg.variant("fixture")
    digest = built.platform_digests[platform]
    run = engine.run_probe(f"{REGISTRY}/{IT_REPO}@{digest}", platform)
    report = run.report
    assert report.platform.machine == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
    assert report.python.version.startswith("3.11.")
    locked = locked_packages(variant, platform)
    assert len(locked) >= 10
    assert check_probe(report, variant, platform, locked) == []
    with RegistryClient(REGISTRY) as client:
        manifest = client.get_manifest(IT_REPO, digest)
        config = json.loads(client.get_blob(IT_REPO, manifest.json["config"]["digest"]))
    labels = config["config"]["Labels"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert all(labels.get(k) for k in REQUIRED_LABELS)
    assert labels["org.opencontainers.image.revision"] == head
    assert labels["io.cerebral.ai-base.python"] == "3.11"
    assert config["config"]["Env"].count("VIRTUAL_ENV=/opt/venv") == 1


def _build(config: Path, out: Path, platform: str) -> str:
    run = invoke(
        "build",
        "--config",
        str(config),
        "--variant",
        "fixture",
        "--platform",
        platform,
        "--push",
        "--repository",
        "cerebral/ai-base-bump",
        env=env_for(out),
    )
    assert run.returncode == 0, run.output[-2000:]
    return read_cell(out / "cells" / f"fixture-{platform.replace('/', '-')}.json").digest


@pytest.mark.usefixtures("standins")
def test_bumping_a_shared_pin_changes_only_its_groups_layer(tmp_path: Path) -> None:
    """structlog 24.4.0 -> 24.1.0, built before and after for both platforms, as a
    maintainer's rebuild after a bump would: on each, only the layer of structlog's group
    and the copied lock (with the layers report) change; the OS, the venv, every other group
    and the OS package list after them keep their digests.
    """
    platforms = ("linux/amd64", "linux/arm64")
    original = {p: _build(FIXTURE_CONFIG, tmp_path / "before", p) for p in platforms}
    cfg_path = copy_fixture(tmp_path / "fx", in_edit=("structlog==24.4.0", "structlog==24.1.0"))
    variant = load_config(cfg_path, env={}).variant("fixture")
    for p in platforms:
        write_lock(variant, variant.platform(p))  # resolves with uv against PyPI
        assert "structlog==24.1.0" in variant.lock_file(p).read_text()
    bumped = {p: _build(cfg_path, tmp_path / "after", p) for p in platforms}
    for p in platforms:
        groups = plan_groups(tuple(parse_lock(variant.lock_file(p).read_text())), variant)
        assert len(groups) > 3  # the test means something only with several group layers
        group = next(k for k, g in enumerate(groups) if "structlog" in g.packages)
        before, steps = _layers("cerebral/ai-base-bump", original[p], p)
        after, _ = _layers("cerebral/ai-base-bump", bumped[p], p)
        assert len(before) == len(after) == len(steps)
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        print(
            p,
            "layers:",
            *(
                f"{i}: {'CHANGED' if i in changed else 'same'} {steps[i][:70]}"
                for i in range(len(steps))
            ),
            sep="\n  ",
        )
        # the history names no stage: the group layers are the COPY /layer/ steps, in order
        group_layers = [i for i, st in enumerate(steps) if st.startswith("COPY /layer/ ")]
        assert len(group_layers) == len(groups), p
        # the lock and the layers-check report share one small layer
        lock_layer = next(i for i, st in enumerate(steps) if st.startswith("COPY /report/ "))
        # the last step (`pip check`, then the OS package list the gate compares) runs again
        # after any group changes, but its layer is the same bytes: the same list, dated like
        # the report (reproducible layers), so a bump no longer pushes it
        os_list = next(i for i, st in enumerate(steps) if "os-packages.txt" in st)
        assert os_list == len(steps) - 1, p
        expected = [group_layers[group], lock_layer]
        assert changed == expected, f"{p}: {groups[group]} and the lock"


@pytest.mark.usefixtures("standins")
def test_two_distributions_writing_one_file_fail_the_build_by_name(tmp_path: Path) -> None:
    """jwt and PyJWT both install jwt/__init__.py (hashed into bins of their own or not,
    the later would silently win): the layers-check stage stops the build, naming the file
    and both distributions, and nothing is pushed under the cell's tag."""
    cfg_path = copy_fixture(
        tmp_path / "fx",
        in_edit=("structlog==24.4.0", "structlog==24.4.0\njwt==1.4.0\npyjwt==2.9.0"),
    )
    variant = load_config(cfg_path, env={}).variant("fixture")
    write_lock(variant, variant.platform("linux/amd64"))  # resolves with uv against PyPI
    run = invoke(
        "build",
        "--config",
        str(cfg_path),
        "--variant",
        "fixture",
        "--platform",
        "linux/amd64",
        "--push",
        "--repository",
        "cerebral/ai-base-clash",
        env=env_for(tmp_path / "out"),
    )
    assert run.returncode == BuildError.exit_code, run.output[-2000:]
    assert "written by more than one distribution with different content" in run.output
    clash = next(ln for ln in run.output.splitlines() if "site-packages/jwt/__init__.py:" in ln)
    assert "jwt-1.4.0" in clash and "2.9.0" in clash, clash
    assert not (tmp_path / "out" / "cells" / "fixture-linux-amd64.json").exists()


@pytest.mark.usefixtures("standins")
def test_the_configured_compression_is_what_ships_whatever_the_cache_holds(tmp_path: Path) -> None:
    """A builder that once built zstd holds zstd blobs in its cache; the default (gzip)
    build after it must still push gzip layers (older pullers cannot read zstd), not reuse
    the cached blobs. Fails on the code before force-compression was set for gzip too."""
    media: dict[str, set[str]] = {}
    for compression in ("zstd", "gzip", "gzip"):
        run = invoke(
            "build",
            "--config",
            str(FIXTURE_CONFIG),
            "--variant",
            "fixture",
            "--platform",
            "linux/amd64",
            "--push",
            "--compression",
            compression,
            "--repository",
            "cerebral/ai-base-compression",
            env=env_for(tmp_path / compression),
        )
        assert run.returncode == 0, run.output[-2000:]
        digest = read_cell(tmp_path / compression / "cells" / "fixture-linux-amd64.json").digest
        with RegistryClient(REGISTRY) as client:
            image = platform_manifest(client, "cerebral/ai-base-compression", digest, "linux/amd64")
        media[compression] = {layer["mediaType"] for layer in image.json["layers"]}
    assert media["zstd"] == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert media["gzip"] == {"application/vnd.oci.image.layer.v1.tar+gzip"}


def _layer_files(archive: Path) -> Iterator[bytes]:
    """Every blob of a `docker save` archive and every file inside each layer, decompressed."""
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            fh = outer.extractfile(member) if member.isfile() else None
            if fh is None:
                continue
            data = fh.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            yield data
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for f in layer.getmembers():
                        inner = layer.extractfile(f) if f.isfile() else None
                        if inner is not None:
                            yield inner.read()
            except tarfile.TarError:
                continue


@pytest.mark.usefixtures("standins")
def test_build_secret_is_absent_from_layers_and_history(tmp_path: Path, out_dir: Path) -> None:
    canary = f"aibase-canary-{uuid.uuid4().hex}"
    bundle = tmp_path / "ca-with-canary.pem"
    # a working CA bundle (pip needs it here) with a marker line PEM parsers ignore
    bundle.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text() + f"\n{canary}\n")
    # Every step that mounts the secret (the installer's pip and each group's uv install)
    # must really run with it, on a warm builder too: the real Dockerfile plus one ARG in
    # the installer stage changes their cache keys, and nothing else. (--no-cache would also
    # redo the other steps and leave a second cache record for each, which makes later
    # rebuilds pick either.)
    docker_dir = tmp_path / "docker"
    shutil.copytree(REPO / "docker", docker_dir)  # the template and install-group.sh
    dockerfile = (REPO / "docker" / "Dockerfile.ai-base.cpu").read_text()
    marker = "# pip's cache is a BuildKit cache mount"
    assert marker in dockerfile
    (docker_dir / "Dockerfile.ai-base.cpu").write_text(
        dockerfile.replace(marker, f"ARG SECRET_TEST_RUN={uuid.uuid4().hex}\n{marker}")
    )
    cfg_path = copy_fixture(tmp_path / "fx")
    cfg_path.write_text(cfg_path.read_text().replace(str(REPO / "docker"), str(docker_dir)))
    run = invoke(
        "build",
        "--config",
        str(cfg_path),
        "--variant",
        "fixture",
        "--platform",
        "linux/amd64",
        "--load",
        "--ca-bundle",
        str(bundle),
        env=env_for(out_dir),
    )
    assert run.returncode == 0, run.output[-2000:]
    assert "id=ca_bundle,src=" in run.output  # it really went in as a BuildKit secret
    # the installer's pip and every group's uv install ran, not cached
    assert run.output.count("Successfully installed uv-") == 1
    groups = len(list((out_dir / "dockerfiles" / "fixture-linux-amd64" / "groups").iterdir()))
    assert run.output.count(" Installed ") == groups > 3, run.output[-3000:]
    ref = "cerebral/ai-base-fixture:fixture-linux-amd64-dev"
    history = subprocess.run(
        ["docker", "history", "--no-trunc", ref], capture_output=True, text=True, check=True
    ).stdout
    inspect = subprocess.run(
        ["docker", "image", "inspect", ref], capture_output=True, text=True, check=True
    ).stdout
    # the steps that used it ran in the install stages: the image's history holds neither
    # the secret's content nor a step that mounted it
    assert "COPY /layer/ / " in history
    assert canary not in history and canary not in inspect
    scanned, leaks = _scan(ref, canary.encode(), tmp_path / "image.tar")
    assert scanned > 1000, scanned  # really looked inside the layers
    assert leaks == 0
    # the positive control: the same canary planted in a file of one more layer is found
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "planted.txt").write_text(f"{canary}\n")
    (planted / "Dockerfile").write_text(f"FROM {ref}\nCOPY planted.txt /opt/planted.txt\n")
    subprocess.run(
        [
            "docker",
            "buildx",
            "build",
            "--platform",
            "linux/amd64",
            "--load",
            "--tag",
            f"{ref}-planted",
            str(planted),
        ],
        check=True,
    )
    assert _scan(f"{ref}-planted", canary.encode(), tmp_path / "planted.tar")[1] >= 1


def _scan(ref: str, needle: bytes, archive: Path) -> tuple[int, int]:
    """(files scanned, files holding the needle) in every layer of a `docker save`."""
    subprocess.run(["docker", "save", "--output", str(archive), ref], check=True)
    scanned = leaks = 0
    for data in _layer_files(archive):
        scanned += 1
        leaks += needle in data
    return scanned, leaks


def _layers(repo: str, ref: str, platform: str) -> tuple[list[str], list[str]]:
    """Layer digests and the instruction that made each (from the config history)."""
    with RegistryClient(REGISTRY) as client:
        m = client.get_manifest(repo, ref)
        if m.is_index:
            entry = next(
                e
                for e in m.json["manifests"]
                if e.get("platform", {}).get("architecture") == platform.split("/")[1]
            )
            m = client.get_manifest(repo, entry["digest"])
        config = json.loads(client.get_blob(repo, m.json["config"]["digest"]))
    steps = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
    return [layer["digest"] for layer in m.json["layers"]], steps
