"""The promotion gate on its own: a fake registry (in memory, no socket) and run records.
Every refusal leaves the floating tag untouched: no PUT reaches the registry."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aibase.configfile import load_config
from aibase.errors import PromoteError, VerifyError
from aibase.plan import REQUIRED_LABELS
from aibase.promote import Promotion, promote_variant
from aibase.state import MergeRecord, SmokeRecord, VariantState, VerifyRecord

REPO_NAME = "cerebral/ai-base"
REV = "f" * 40
PLATFORMS = ("linux/amd64", "linux/arm64")


@pytest.fixture
def setup(write_config, fake_registry):
    cfg = load_config(write_config(), env={})
    labels = {k: "x" for k in REQUIRED_LABELS} | {
        "org.opencontainers.image.revision": REV,
        "io.cerebral.ai-base.variant": "cpu",
    }
    images = {p: fake_registry.add_image(REPO_NAME, p.split("/")[1], labels) for p in PLATFORMS}
    index = fake_registry.add_index(REPO_NAME, images, "cpu-20261127-fffffff")
    merged = MergeRecord(
        "localhost:5000",
        REPO_NAME,
        REV,
        cfg.config_digest,
        index,
        ("cpu-20261127-fffffff",),
        images,
    )
    state = VariantState(
        "cpu",
        "localhost:5000",
        REPO_NAME,
        merged,
        VerifyRecord(index, images),
        {p: SmokeRecord(p, images[p], ()) for p in PLATFORMS},
    )
    return cfg, state, images


def _promote(fake_registry, cfg, state):
    with fake_registry.client() as client:
        return promote_variant(client, cfg, cfg.variant("cpu"), state, revision=REV)


def test_a_verified_smoke_tested_index_is_promoted_and_read_back(setup, fake_registry):
    cfg, state, _ = setup
    done = _promote(fake_registry, cfg, state)
    assert done == Promotion("localhost:5000/cerebral/ai-base:cpu", state.merged.index_digest, None)
    assert fake_registry.puts == [(REPO_NAME, "cpu")]
    with fake_registry.client() as client:
        assert client.head_manifest(REPO_NAME, "cpu") == state.merged.index_digest


def _refused(fake_registry, cfg, state, expect: str, error=PromoteError) -> None:
    with pytest.raises(error) as info:
        _promote(fake_registry, cfg, state)
    assert expect in info.value.render()
    assert fake_registry.puts == []  # the floating tag was never written


def test_no_merged_index(setup, fake_registry):
    cfg, state, _ = setup
    _refused(fake_registry, cfg, None, "no merged index recorded")
    _refused(fake_registry, cfg, replace(state, merged=None), "no merged index recorded")


def test_merged_but_never_verified(setup, fake_registry):
    cfg, state, _ = setup
    _refused(fake_registry, cfg, replace(state, verified=None), "was never verified")
    other = replace(state.verified, index_digest="sha256:" + "0" * 64)
    _refused(fake_registry, cfg, replace(state, verified=other), "was never verified")


def test_index_changed_since_verify(setup, fake_registry):
    cfg, state, images = setup
    swapped = {"linux/amd64": images["linux/arm64"], "linux/arm64": images["linux/amd64"]}
    # what verify recorded is not what the registry serves now
    stale = replace(
        state,
        verified=VerifyRecord(state.merged.index_digest, swapped),
        smoke={p: SmokeRecord(p, swapped[p], ()) for p in PLATFORMS},
    )
    _refused(fake_registry, cfg, stale, "index content changed since verify")


def test_smoke_missing_for_a_platform(setup, fake_registry):
    cfg, state, _ = setup
    only_amd = replace(state, smoke={"linux/amd64": state.smoke["linux/amd64"]})
    _refused(fake_registry, cfg, only_amd, "linux/arm64 not smoke-tested or failed")


def test_smoke_failed(setup, fake_registry):
    cfg, state, _ = setup
    failed = dict(state.smoke) | {
        "linux/arm64": SmokeRecord(
            "linux/arm64",
            state.smoke["linux/arm64"].digest,
            ("python is 3.12.1, the config promises 3.11",),
        )
    }
    _refused(fake_registry, cfg, replace(state, smoke=failed), "linux/arm64 not smoke-tested")


def test_smoke_of_another_image_does_not_count(setup, fake_registry):
    cfg, state, _ = setup
    other = dict(state.smoke) | {
        "linux/amd64": SmokeRecord("linux/amd64", "sha256:" + "1" * 64, ())
    }
    _refused(fake_registry, cfg, replace(state, smoke=other), "linux/amd64 not smoke-tested")


def test_records_that_lie_about_an_arm64_only_index(setup, fake_registry):
    """The old incident, with forged records: the registry is read again and says no."""
    cfg, state, images = setup
    arm_only = fake_registry.add_index(REPO_NAME, {"linux/arm64": images["linux/arm64"]})
    forged = replace(
        state,
        merged=replace(state.merged, index_digest=arm_only),
        verified=VerifyRecord(arm_only, images),
    )
    _refused(fake_registry, cfg, forged, "required platform linux/amd64 is missing", VerifyError)


def test_a_registry_that_stores_something_else_is_caught_on_read_back(setup, fake_registry):
    cfg, state, images = setup
    decoy = fake_registry.add_index(REPO_NAME, {"linux/amd64": images["linux/amd64"]})
    put = fake_registry.handle

    def handle(request):
        response = put(request)
        if request.method == "PUT":  # the tag ends up on another manifest
            fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[
                (REPO_NAME, decoy)
            ]
        return response

    fake_registry.handle = handle
    with pytest.raises(PromoteError) as info:
        _promote(fake_registry, cfg, state)
    assert f"read-back of localhost:5000/{REPO_NAME}:cpu gives {decoy}" in info.value.render()
