"""What the Dockerfiles produce: facts inside the image, secrets absent, layer reuse."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aibase import engine
from aibase.configfile import load_config
from aibase.lock import write_lock
from aibase.plan import REQUIRED_LABELS
from aibase.registry import RegistryClient
from aibase.smoke import check_probe, locked_packages
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
def test_image_holds_the_locked_python_and_packages_and_labels(built: Built, platform: str):
    cfg = load_config(FIXTURE_CONFIG, env={})
    variant = cfg.variant("fixture")
    digest = built.platform_digests[platform]
    run = engine.run_probe(f"{REGISTRY}/{IT_REPO}@{digest}", platform)
    report = run.report
    assert (
        report["platform"]["machine"]
        == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
    )
    assert report["python"]["version"].startswith("3.11.")
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


def _build_amd64(config: Path, out: Path) -> str:
    run = invoke(
        "build",
        "--config",
        str(config),
        "--variant",
        "fixture",
        "--platform",
        "linux/amd64",
        "--push",
        "--repository",
        "cerebral/ai-base-bump",
        env=env_for(out),
    )
    assert run.returncode == 0, run.output[-2000:]
    return read_cell(out / "cells" / "fixture-linux-amd64.json").digest


def test_bumping_a_shared_pin_keeps_the_heavy_layer(standins: str, tmp_path: Path):
    """structlog 24.4.0 -> 24.1.0: only the layers after the heavy (torch-family) one change.

    Both builds run here, one after the other, as a maintainer's rebuild after a bump would.
    """
    original = _build_amd64(FIXTURE_CONFIG, tmp_path / "before")
    cfg_path = copy_fixture(tmp_path / "fx", in_edit=("structlog==24.4.0", "structlog==24.1.0"))
    cfg = load_config(cfg_path, env={})
    variant = cfg.variant("fixture")
    write_lock(variant, variant.platform("linux/amd64"))  # resolves with uv against PyPI
    assert "structlog==24.1.0" in variant.lock_file("linux/amd64").read_text()
    bumped = _build_amd64(cfg_path, tmp_path / "after")
    before, steps = _layers("cerebral/ai-base-bump", original)
    after, _ = _layers("cerebral/ai-base-bump", bumped)
    assert len(before) == len(after) == len(steps)
    heavy = next(i for i, s in enumerate(steps) if "torch.txt" in s and "pip install" in s)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    print(
        "layers:",
        *(
            f"{i}: {'CHANGED' if i in changed else 'same'} {steps[i][:70]}"
            for i in range(len(steps))
        ),
        sep="\n  ",
    )
    assert before[: heavy + 1] == after[: heavy + 1], "the heavy layer or one before it changed"
    assert changed, "nothing changed: the bump did not reach the image"
    assert min(changed) > heavy
    assert any("requirements.txt" in steps[i] and "pip install" in steps[i] for i in changed)


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


def test_build_secret_is_absent_from_layers_and_history(
    standins: str, tmp_path: Path, out_dir: Path
):
    canary = f"aibase-canary-{uuid.uuid4().hex}"
    bundle = tmp_path / "ca-with-canary.pem"
    # a working CA bundle (pip needs it here) with a marker line PEM parsers ignore
    bundle.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text() + f"\n{canary}\n")
    # Both pip steps (the ones that mount the secret) must really run with it, on a warm
    # builder too: the real Dockerfile plus one ARG right before them changes their cache
    # key, and nothing else. (--no-cache would also redo the earlier steps and leave a second
    # cache record for each, which makes later rebuilds pick either.)
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    dockerfile = (REPO / "docker" / "Dockerfile.ai-base.cpu").read_text()
    marker = "# The torch family and what it needs"
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
    assert run.output.count("Successfully installed") == 2  # both pip steps ran, not cached
    ref = "cerebral/ai-base-fixture:fixture-linux-amd64-dev"
    history = subprocess.run(
        ["docker", "history", "--no-trunc", ref], capture_output=True, text=True, check=True
    ).stdout
    inspect = subprocess.run(
        ["docker", "image", "inspect", ref], capture_output=True, text=True, check=True
    ).stdout
    assert "/run/secrets/ca.pem" in history  # the step that used it is there...
    assert canary not in history and canary not in inspect  # ...its content is not
    scanned, leaks = _scan(ref, canary.encode(), tmp_path / "image.tar")
    assert scanned > 1000, scanned  # really looked inside the layers
    assert leaks == 0
    # the positive control: the same canary planted in a file of one more layer is found
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "planted.txt").write_text(f"{canary}\n")
    (planted / "Dockerfile").write_text(f"FROM {ref}\nCOPY planted.txt /opt/planted.txt\n")
    subprocess.run(["docker", "buildx", "build", "--platform", "linux/amd64", "--load",
                    "--tag", f"{ref}-planted", str(planted)], check=True)  # fmt: skip
    assert _scan(f"{ref}-planted", canary.encode(), tmp_path / "planted.tar")[1] >= 1


def _scan(ref: str, needle: bytes, archive: Path) -> tuple[int, int]:
    """(files scanned, files holding the needle) in every layer of a `docker save`."""
    subprocess.run(["docker", "save", "--output", str(archive), ref], check=True)
    scanned = leaks = 0
    for data in _layer_files(archive):
        scanned += 1
        leaks += needle in data
    return scanned, leaks


def _layers(repo: str, ref: str) -> tuple[list[str], list[str]]:
    """Layer digests and the instruction that made each (from the config history)."""
    with RegistryClient(REGISTRY) as client:
        m = client.get_manifest(repo, ref)
        if m.is_index:
            entry = next(
                e
                for e in m.json["manifests"]
                if e.get("platform", {}).get("architecture") == "amd64"
            )
            m = client.get_manifest(repo, entry["digest"])
        config = json.loads(client.get_blob(repo, m.json["config"]["digest"]))
    steps = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
    return [layer["digest"] for layer in m.json["layers"]], steps
