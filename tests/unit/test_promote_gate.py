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
        VerifyRecord(index, images, {"cpu": None, "cpu-py3.11-torch2.4.1": None}),
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
    # the descriptive tag moves with it, first: the floating tag is the one builds use
    assert fake_registry.puts == [(REPO_NAME, "cpu-py3.11-torch2.4.1"), (REPO_NAME, "cpu")]
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
        verified=VerifyRecord(state.merged.index_digest, swapped, state.verified.promoted_before),
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
        verified=VerifyRecord(arm_only, images, state.verified.promoted_before),
    )
    _refused(fake_registry, cfg, forged, "required platform linux/amd64 is missing", VerifyError)


def _put_hook(fake_registry, hook):
    """Run hook(tag) after the fake registry handles a PUT of that tag."""
    handle = fake_registry.handle

    def wrapped(request):
        response = handle(request)
        if request.method == "PUT":
            hook(request.url.path.rsplit("/", 1)[1])
        return response

    fake_registry.handle = wrapped


def test_another_run_moving_the_tag_right_after_our_put_is_named(setup, fake_registry):
    cfg, state, images = setup
    decoy = fake_registry.add_index(REPO_NAME, {"linux/amd64": images["linux/amd64"]})

    def other_run(tag):
        if tag == "cpu":
            fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[
                (REPO_NAME, decoy)
            ]

    _put_hook(fake_registry, other_run)
    with pytest.raises(PromoteError) as info:
        _promote(fake_registry, cfg, state)
    assert f"serves {decoy} right after our PUT" in info.value.render()
    assert "another run moved it in between" in info.value.render()


def test_a_put_that_does_not_take_is_named(setup, fake_registry):
    cfg, state, _ = setup

    def lost(tag):
        if tag == "cpu":
            del fake_registry.manifests[(REPO_NAME, "cpu")]

    _put_hook(fake_registry, lost)
    with pytest.raises(PromoteError) as info:
        _promote(fake_registry, cfg, state)
    assert "the PUT of localhost:5000/cerebral/ai-base:cpu did not take" in info.value.render()


def test_a_tag_moved_since_verify_is_not_overwritten(setup, fake_registry):
    """Two runs: both verified while `cpu` was unset; the other one promoted first."""
    cfg, state, images = setup
    theirs = fake_registry.add_index(REPO_NAME, images, "cpu")
    _refused(fake_registry, cfg, state, f"moved to {theirs} since this run verified")
    # a record without what the tags served at verify is refused too
    blind = replace(state, verified=replace(state.verified, promoted_before={}))
    _refused(fake_registry, cfg, blind, "no record of what cpu served at verify")


def _index_created(fake_registry, created: str) -> str:
    labels = {k: "x" for k in REQUIRED_LABELS} | {
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.revision": REV,
        "io.cerebral.ai-base.variant": "cpu",
    }
    images = {p: fake_registry.add_image(REPO_NAME, p.split("/")[1], labels) for p in PLATFORMS}
    return fake_registry.add_index(REPO_NAME, images)


def test_a_rollback_needs_to_be_asked_for(setup, fake_registry):
    cfg, state, _ = setup
    newer = _index_created(fake_registry, "2099-01-01T00:00:00Z")
    older = _index_created(fake_registry, "2001-01-01T00:00:00Z")
    fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[(REPO_NAME, newer)]
    with fake_registry.client() as client:
        verified = client.get_manifest(REPO_NAME, older)
    images = {
        f"linux/{e['platform']['architecture']}": e["digest"] for e in verified.json["manifests"]
    }
    merged = replace(state.merged, index_digest=older, cells=images)
    before = {"cpu": newer, "cpu-py3.11-torch2.4.1": None}
    old_state = replace(
        state,
        merged=merged,
        verified=VerifyRecord(older, images, before),
        smoke={p: SmokeRecord(p, images[p], ()) for p in PLATFORMS},
    )
    _refused(fake_registry, cfg, old_state, "that would be a rollback")
    with fake_registry.client() as client:
        done = promote_variant(
            client, cfg, cfg.variant("cpu"), old_state, revision=REV, allow_rollback=True
        )
    assert done is not None and (done.digest, done.previous) == (older, newer)


def test_a_record_from_another_commit_or_config_is_refused(setup, fake_registry):
    cfg, state, _ = setup
    other_commit = replace(state, merged=replace(state.merged, revision="e" * 40))
    _refused(fake_registry, cfg, other_commit, "the recorded index is from another run")
    other_config = replace(state, merged=replace(state.merged, config_digest="0" * 64))
    _refused(fake_registry, cfg, other_config, "config_digest '0000")
