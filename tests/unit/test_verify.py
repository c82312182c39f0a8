from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from aibase.build.plan import REQUIRED_LABELS
from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.errors import VerifyError
from aibase.registry.oci import Manifest
from aibase.registry.refs import parse_ref
from aibase.release.verify import FetchedIndex, check_index, raise_if_failed

from .conftest import WriteConfig

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REV = "f" * 40


def manifest(body: dict[str, Any], media: str) -> Manifest:
    raw = json.dumps(body).encode()
    return Manifest("sha256:" + hashlib.sha256(raw).hexdigest(), media, raw)


def image(
    arch: str,
    *,
    config_arch: str | None = None,
    size: int = 1000,
    labels: dict[str, str] | None = None,
) -> tuple[Manifest, dict[str, Any]]:
    m = manifest(
        {
            "mediaType": OCI_MANIFEST,
            "config": {"digest": f"sha256:{arch}", "size": 10},
            "layers": [{"size": size}],
        },
        OCI_MANIFEST,
    )
    lab = {k: "x" for k in REQUIRED_LABELS} | {
        "org.opencontainers.image.revision": REV,
        "io.cerebral.ai-base.variant": "cpu",
    }
    cfg = {
        "architecture": config_arch or arch,
        "os": "linux",
        "config": {"Labels": lab if labels is None else labels},
    }
    return m, cfg


def index_of(
    *images: tuple[str, tuple[Manifest, dict[str, Any]]], attest: bool = True
) -> FetchedIndex:
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": m.digest,
            "platform": {"os": "linux", "architecture": arch},
        }
        for arch, (m, _) in images
    ]
    if attest:  # what buildx adds: must not count as a platform
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:att",
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            }
        )
    idx = manifest({"mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
    return FetchedIndex(
        parse_ref("localhost:5000/cerebral/ai-base:t"),
        idx,
        {m.digest: m for _, (m, _) in images},
        {m.digest: c for _, (m, c) in images},
    )


@pytest.fixture
def cfg(write_config: WriteConfig) -> Config:
    return load_config(write_config(), env={})


def test_complete_index_passes_and_skips_attestations(cfg: Config) -> None:
    amd, arm = image("amd64"), image("arm64")
    result = check_index(cfg, cfg.variant("cpu"), index_of(("amd64", amd), ("arm64", arm)), REV)
    assert result.ok, result.problems
    assert [i.platform for i in result.images] == ["linux/amd64", "linux/arm64"]
    rows = [line.split() for line in result.table().splitlines()[1:]]
    assert rows == [["linux/amd64", amd[0].digest, "0.0"], ["linux/arm64", arm[0].digest, "0.0"]]
    raise_if_failed(result)


def test_arm64_only_index_fails_naming_amd64(cfg: Config) -> None:
    result = check_index(cfg, cfg.variant("cpu"), index_of(("arm64", image("arm64"))), REV)
    assert result.problems == ("required platform linux/amd64 is missing from the index",)
    with pytest.raises(VerifyError) as info:
        raise_if_failed(result)
    assert "linux/amd64" in info.value.render() and "do not promote" in info.value.render()


def test_single_manifest_is_not_an_index(cfg: Config) -> None:
    m, _ = image("arm64")
    fetched = FetchedIndex(parse_ref("localhost:5000/r:t"), m, {}, {})
    assert "not a multi-platform index" in check_index(cfg, cfg.variant("cpu"), fetched).problems[0]


def test_config_architecture_must_match_entry(cfg: Config) -> None:
    result = check_index(
        cfg,
        cfg.variant("cpu"),
        index_of(("amd64", image("amd64", config_arch="arm64")), ("arm64", image("arm64"))),
        REV,
    )
    assert len(result.problems) == 1
    assert (
        "index entry says linux/amd64 but the image config says linux/arm64" in result.problems[0]
    )


def test_duplicate_platform(cfg: Config) -> None:
    result = check_index(
        cfg,
        cfg.variant("cpu"),
        index_of(
            ("amd64", image("amd64")), ("amd64", image("amd64", size=5)), ("arm64", image("arm64"))
        ),
    )
    assert any("appears 2 times" in p for p in result.problems)


def test_labels_revision_and_size_collected_together(cfg: Config) -> None:
    result = check_index(
        cfg,
        cfg.variant("cpu"),
        index_of(
            ("amd64", image("amd64", size=3_000_000_000)),
            ("arm64", image("arm64", labels={"org.opencontainers.image.revision": "0" * 40})),
        ),
        REV,
    )
    text = "\n".join(result.problems)
    assert "linux/amd64: compressed size 3000.0 MB exceeds the budget of 2500 MB" in text
    assert "linux/arm64: labels missing" in text
    assert f"is not the commit {REV}" in text


def test_a_narrowing_override_never_narrows_what_an_index_must_hold(
    write_config: WriteConfig,
) -> None:
    narrowed = load_config(write_config(), env={"AIBASE_PLATFORMS": "linux/arm64"})
    assert narrowed.platforms == ("linux/arm64",)
    result = check_index(
        narrowed, narrowed.variant("cpu"), index_of(("arm64", image("arm64"))), REV
    )
    assert result.problems == ("required platform linux/amd64 is missing from the index",)
