"""The promotion gate on its own: a fake registry (in memory, no socket) and run records.
Every refusal leaves the floating tag untouched: no PUT reaches the registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from aibase.audit.allowlist import DEFAULT_ALLOWLIST
from aibase.build.plan import REQUIRED_LABELS, BuildContext
from aibase.build.run_context import RunContext
from aibase.config.loader import load, load_config
from aibase.config.model import Config
from aibase.config.paths import Paths
from aibase.errors import AibaseError, PromoteError, RegistryError, VerifyError
from aibase.host import git
from aibase.registry.oci import is_attestation
from aibase.release.pipeline import promote_checked
from aibase.release.promote import Promotion, promote_variant
from aibase.release.promote_gate import FORWARD_ONLY, Guards
from aibase.state import MergeRecord, SmokeRecord, VariantState, VerifyRecord

from .conftest import REPO, FakeRegistry, WriteConfig
from .test_build_inputs import with_variant_folder

REPO_NAME = "cerebral/ai-base"
REV = "f" * 40
PLATFORMS = ("linux/amd64", "linux/arm64")


Setup = tuple[Config, VariantState, dict[str, str]]  # the config, a promotable state, its images


@pytest.fixture
def setup(write_config: WriteConfig, fake_registry: FakeRegistry) -> Setup:
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


def merged(state: VariantState) -> MergeRecord:
    assert state.merged is not None
    return state.merged


def verified(state: VariantState) -> VerifyRecord:
    assert state.verified is not None
    return state.verified


def _promote(
    fake_registry: FakeRegistry, cfg: Config, state: VariantState | None
) -> Promotion | None:
    with fake_registry.client() as client:
        return promote_variant(client, cfg, cfg.variant("cpu"), state, revision=REV)


def test_a_verified_smoke_tested_index_is_promoted_and_read_back(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, _ = setup
    done = _promote(fake_registry, cfg, state)
    assert done == Promotion(
        "localhost:5000/cerebral/ai-base:cpu", merged(state).index_digest, None
    )
    # the descriptive tag moves with it, first: the floating tag is the one builds use
    assert fake_registry.puts == [(REPO_NAME, "cpu-py3.11-torch2.4.1"), (REPO_NAME, "cpu")]
    with fake_registry.client() as client:
        assert client.head_manifest(REPO_NAME, "cpu") == merged(state).index_digest


def test_promoting_again_is_a_no_op_success(setup: Setup, fake_registry: FakeRegistry) -> None:
    """A re-run of promote (a CI job re-run): the tags serve this run's index already; that
    is success, read back, and nothing is written."""
    cfg, state, _ = setup
    first = _promote(fake_registry, cfg, state)
    assert first is not None and not first.already and len(fake_registry.puts) == 2
    fake_registry.puts.clear()
    again = _promote(fake_registry, cfg, state)
    assert again == Promotion(first.tag, merged(state).index_digest, None, already=True)
    assert fake_registry.puts == []


def test_a_rerun_completes_a_missing_descriptive_tag(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    """The floating tag serves this run's index, the descriptive one is missing: only it is
    written (the floating tag is left as it is)."""
    cfg, state, _ = setup
    ours = merged(state).index_digest
    fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[(REPO_NAME, ours)]
    done = _promote(fake_registry, cfg, state)
    assert done == Promotion("localhost:5000/cerebral/ai-base:cpu", ours, None, already=True)
    assert fake_registry.puts == [(REPO_NAME, "cpu-py3.11-torch2.4.1")]
    with fake_registry.client() as client:
        assert client.head_manifest(REPO_NAME, "cpu-py3.11-torch2.4.1") == ours


def _refused(
    fake_registry: FakeRegistry,
    cfg: Config,
    state: VariantState | None,
    expect: str,
    error: type[AibaseError] = PromoteError,
) -> None:
    with pytest.raises(error) as info:
        _promote(fake_registry, cfg, state)
    assert expect in info.value.render()
    assert fake_registry.puts == []  # the floating tag was never written


def test_no_merged_index(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    _refused(fake_registry, cfg, None, "no merged index recorded")
    _refused(fake_registry, cfg, replace(state, merged=None), "no merged index recorded")


def test_merged_but_never_verified(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    _refused(fake_registry, cfg, replace(state, verified=None), "was never verified")
    other = replace(verified(state), index_digest="sha256:" + "0" * 64)
    _refused(fake_registry, cfg, replace(state, verified=other), "was never verified")


def test_index_changed_since_verify(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, images = setup
    swapped = {"linux/amd64": images["linux/arm64"], "linux/arm64": images["linux/amd64"]}
    # what verify recorded is not what the registry serves now
    stale = replace(
        state,
        verified=VerifyRecord(merged(state).index_digest, swapped, verified(state).promoted_before),
        smoke={p: SmokeRecord(p, swapped[p], ()) for p in PLATFORMS},
    )
    _refused(fake_registry, cfg, stale, "index content changed since verify")


def test_smoke_missing_for_a_platform(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    only_amd = replace(state, smoke={"linux/amd64": state.smoke["linux/amd64"]})
    _refused(fake_registry, cfg, only_amd, "linux/arm64 not smoke-tested or failed")


def test_smoke_failed(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    failed = dict(state.smoke) | {
        "linux/arm64": SmokeRecord(
            "linux/arm64",
            state.smoke["linux/arm64"].digest,
            ("python is 3.12.1, the config promises 3.11",),
        )
    }
    _refused(fake_registry, cfg, replace(state, smoke=failed), "linux/arm64 not smoke-tested")


def test_smoke_of_another_image_does_not_count(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    other = dict(state.smoke) | {
        "linux/amd64": SmokeRecord("linux/amd64", "sha256:" + "1" * 64, ())
    }
    _refused(fake_registry, cfg, replace(state, smoke=other), "linux/amd64 not smoke-tested")


def test_records_that_lie_about_an_arm64_only_index(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    """The old incident, with forged records: the registry is read again and says no."""
    cfg, state, images = setup
    arm_only = fake_registry.add_index(REPO_NAME, {"linux/arm64": images["linux/arm64"]})
    forged = replace(
        state,
        merged=replace(merged(state), index_digest=arm_only),
        verified=VerifyRecord(arm_only, images, verified(state).promoted_before),
    )
    _refused(fake_registry, cfg, forged, "required platform linux/amd64 is missing", VerifyError)


def _put_hook(fake_registry: FakeRegistry, hook: Callable[[str], None]) -> None:
    """Run hook(tag) after the fake registry handles a PUT of that tag."""
    handle = fake_registry.handler

    def wrapped(request: httpx.Request) -> httpx.Response:
        response = handle(request)
        if request.method == "PUT":
            hook(request.url.path.rsplit("/", 1)[1])
        return response

    fake_registry.handler = wrapped


def test_another_run_moving_the_tag_right_after_our_put_is_named(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, images = setup
    decoy = fake_registry.add_index(REPO_NAME, {"linux/amd64": images["linux/amd64"]})

    def other_run(tag: str) -> None:
        if tag == "cpu":
            fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[
                (REPO_NAME, decoy)
            ]

    _put_hook(fake_registry, other_run)
    with pytest.raises(PromoteError) as info:
        _promote(fake_registry, cfg, state)
    assert f"serves {decoy} right after our PUT" in info.value.render()
    assert "another run moved it in between" in info.value.render()


def test_a_put_that_does_not_take_is_named(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup

    def lost(tag: str) -> None:
        if tag == "cpu":
            del fake_registry.manifests[(REPO_NAME, "cpu")]

    _put_hook(fake_registry, lost)
    with pytest.raises(PromoteError) as info:
        _promote(fake_registry, cfg, state)
    assert "the PUT of localhost:5000/cerebral/ai-base:cpu did not take" in info.value.render()


def test_a_tag_moved_since_verify_is_not_overwritten(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    """Two runs: both verified while `cpu` was unset; the other one promoted first."""
    cfg, state, _ = setup
    theirs = _index(fake_registry, "2001-01-01T00:00:00Z", THEIRS)
    assert theirs != merged(state).index_digest
    fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[(REPO_NAME, theirs)]
    _refused(fake_registry, cfg, state, f"moved to {theirs} since this run verified")
    # the floating tag serves this run's index, the descriptive one another run's: refused
    fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[
        (REPO_NAME, merged(state).index_digest)
    ]
    fake_registry.manifests[(REPO_NAME, "cpu-py3.11-torch2.4.1")] = fake_registry.manifests[
        (REPO_NAME, theirs)
    ]
    _refused(fake_registry, cfg, state, f"cpu-py3.11-torch2.4.1 moved to {theirs}")
    # a record without what the tags served at verify is refused too
    blind = replace(state, verified=replace(verified(state), promoted_before={}))
    _refused(fake_registry, cfg, blind, "no record of what cpu served at verify")


THEIRS = "e" * 40  # the commit the floating tag serves now


def _index(
    fake_registry: FakeRegistry, created: str, revision: str, platforms: Sequence[str] = PLATFORMS
) -> str:
    labels = {k: "x" for k in REQUIRED_LABELS} | {
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.revision": revision,
        "io.cerebral.ai-base.variant": "cpu",
    }
    images = {p: fake_registry.add_image(REPO_NAME, p.split("/")[1], labels) for p in platforms}
    return fake_registry.add_index(REPO_NAME, images)


def _against(
    fake_registry: FakeRegistry, state: VariantState, theirs: str, ours_created: str
) -> VariantState:
    """The tag serves `theirs`; this run verified a new index of REV created ours_created."""
    ours = _index(fake_registry, ours_created, REV)
    fake_registry.manifests[(REPO_NAME, "cpu")] = fake_registry.manifests[(REPO_NAME, theirs)]
    with fake_registry.client() as client:
        entries = client.get_manifest(REPO_NAME, ours).json["manifests"]
    images = {
        f"linux/{e['platform']['architecture']}": e["digest"]
        for e in entries
        if not is_attestation(e)  # the provenance beside each image
    }
    return replace(
        state,
        merged=replace(merged(state), index_digest=ours, cells=images),
        verified=VerifyRecord(ours, images, {"cpu": theirs, "cpu-py3.11-torch2.4.1": None}),
        smoke={p: SmokeRecord(p, images[p], ()) for p in PLATFORMS},
    )


def _promote_with(
    fake_registry: FakeRegistry, cfg: Config, state: VariantState, **guards: Any
) -> Promotion | None:
    with fake_registry.client() as client:
        return promote_variant(
            client, cfg, cfg.variant("cpu"), state, revision=REV, guards=Guards(**guards)
        )


def test_moving_back_in_history_needs_to_be_asked_for(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, _ = setup
    theirs = _index(fake_registry, "2001-01-01T00:00:00Z", THEIRS)
    later_but_older = _against(fake_registry, state, theirs, "2099-01-01T00:00:00Z")
    history = {"is_ancestor": lambda older, newer: (older, newer) == (REV, THEIRS)}
    # re-running an old commit: built later, but its commit is an ancestor of the served one
    with pytest.raises(PromoteError, match="that would be a rollback"):
        _promote_with(fake_registry, cfg, later_but_older, **history)
    assert fake_registry.puts == []
    done = _promote_with(fake_registry, cfg, later_but_older, allow_rollback=True, **history)
    assert done is not None and done.previous == theirs


def test_a_descendant_moves_forward(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    theirs = _index(fake_registry, "2099-01-01T00:00:00Z", THEIRS)
    newer = _against(fake_registry, state, theirs, "2001-01-01T00:00:00Z")  # clock skew
    done = _promote_with(
        fake_registry,
        cfg,
        newer,
        is_ancestor=lambda older, newer_: (older, newer_) == (THEIRS, REV),
    )
    assert done is not None and done.previous == theirs


def test_without_history_the_created_labels_decide(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, _ = setup
    theirs = _index(fake_registry, "2099-01-01T00:00:00Z", THEIRS)
    with pytest.raises(PromoteError, match="that would be a rollback"):
        _promote_with(fake_registry, cfg, _against(fake_registry, state, theirs, "2001-01-01"))


def test_an_index_with_fewer_platforms_than_the_tag_serves_is_refused(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, _ = setup
    wider = _index(fake_registry, "2001-01-01", REV, platforms=(*PLATFORMS, "linux/ppc64le"))
    narrowing = _against(fake_registry, state, wider, "2002-01-01")
    with pytest.raises(PromoteError) as info:
        _promote_with(fake_registry, cfg, narrowing)
    assert "this index lacks linux/ppc64le" in info.value.render()
    assert fake_registry.puts == []
    assert _promote_with(fake_registry, cfg, narrowing, allow_narrowing=True) is not None


def test_built_from_uncommitted_files_is_refused(setup: Setup, fake_registry: FakeRegistry) -> None:
    cfg, state, _ = setup
    with pytest.raises(PromoteError) as info:
        _promote_with(fake_registry, cfg, state, uncommitted=("/x/images.toml",))
    assert "built from files that are not what commit" in info.value.render()
    assert "/x/images.toml" in info.value.render() and fake_registry.puts == []


def test_when_the_floating_put_fails_the_descriptive_tag_is_put_back(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, images = setup
    old = fake_registry.add_index(REPO_NAME, images, "cpu-py3.11-torch2.4.1")
    before = {"cpu": None, "cpu-py3.11-torch2.4.1": old}
    state = replace(state, verified=replace(verified(state), promoted_before=before))
    handle = fake_registry.handler

    def refuse_floating(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and request.url.path.endswith("/manifests/cpu"):
            return httpx.Response(403)
        return handle(request)

    fake_registry.handler = refuse_floating
    with pytest.raises(RegistryError, match="forbidden"):
        _promote(fake_registry, cfg, state)
    with fake_registry.client() as client:
        assert client.head_manifest(REPO_NAME, "cpu-py3.11-torch2.4.1") == old
        assert client.head_manifest(REPO_NAME, "cpu") is None


def test_a_record_from_another_commit_or_config_is_refused(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, _ = setup
    other_commit = replace(state, merged=replace(merged(state), revision="e" * 40))
    _refused(fake_registry, cfg, other_commit, "the recorded index is from another run")
    other_config = replace(state, merged=replace(merged(state), config_digest="0" * 64))
    _refused(fake_registry, cfg, other_config, "(its config_digest: not this checkout's")


def test_a_foreign_record_is_one_line_and_its_values_are_details(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    """One line (and its fix); the recorded and expected values only under --debug."""
    cfg, state, _ = setup
    other = replace(state, merged=replace(merged(state), revision="e" * 40))
    with pytest.raises(PromoteError) as info:
        _promote(fake_registry, cfg, other)
    message, fix = info.value.render().split("\n")
    assert message.startswith("promote cpu: the recorded index is from another run (its revision")
    assert fix.startswith("  fix: merge and verify in this checkout first")
    assert "e" * 40 not in info.value.render() and cfg.config_digest not in info.value.render()
    assert f"revision: recorded {'e' * 40!r}, this run {REV!r}" in info.value.details
    assert f"config_digest: recorded {cfg.config_digest!r}, this run" in "".join(info.value.details)


def test_a_platform_the_index_holds_beyond_images_toml_must_be_smoke_tested_too(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    cfg, state, images = setup
    extra = dict(images) | {"linux/386": "sha256:" + "3" * 64}
    stale = replace(state, verified=replace(verified(state), platforms=extra))
    _refused(fake_registry, cfg, stale, "linux/386 not smoke-tested or failed")


def test_the_descriptive_tag_moves_forward_only_too(
    setup: Setup, fake_registry: FakeRegistry
) -> None:
    """Every tag that moves is checked, not only the floating one: with `cpu` gone (deleted
    by hand) and the descriptive tag, which pinned builds use, serving a later commit,
    promoting an older commit over it is a rollback."""
    cfg, state, _ = setup
    theirs = _index(fake_registry, "2001-01-01T00:00:00Z", THEIRS)
    older = _against(fake_registry, state, theirs, "2099-01-01T00:00:00Z")
    del fake_registry.manifests[(REPO_NAME, "cpu")]
    desc = "cpu-py3.11-torch2.4.1"
    fake_registry.manifests[(REPO_NAME, desc)] = fake_registry.manifests[(REPO_NAME, theirs)]
    before = {"cpu": None, desc: theirs}
    older = replace(older, verified=replace(verified(older), promoted_before=before))
    history = {"is_ancestor": lambda older, newer: (older, newer) == (REV, THEIRS)}
    with pytest.raises(PromoteError) as info:
        _promote_with(fake_registry, cfg, older, **history)
    assert f"{REPO_NAME}:{desc} serves commit {THEIRS[:12]}" in info.value.render()
    assert "that would be a rollback" in info.value.render() and fake_registry.puts == []
    done = _promote_with(fake_registry, cfg, older, allow_rollback=True, **history)
    assert done is not None and done.previous is None
    assert fake_registry.puts == [(REPO_NAME, desc), (REPO_NAME, "cpu")]


def test_a_dry_run_shows_the_puts_after_the_gate_and_writes_nothing(
    setup: Setup, fake_registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, state, _ = setup
    with fake_registry.client() as client:
        assert (
            promote_variant(client, cfg, cfg.variant("cpu"), state, revision=REV, dry_run=True)
            is None
        )
        # build-all --dry-run: nothing merged, no gate to ask yet
        assert (
            promote_variant(client, cfg, cfg.variant("cpu"), None, revision=REV, dry_run=True)
            is None
        )
        # a dry run refuses what the real one would
        with pytest.raises(PromoteError, match="never verified"):
            promote_variant(
                client,
                cfg,
                cfg.variant("cpu"),
                replace(state, verified=None),
                revision=REV,
                dry_run=True,
            )
    err = capsys.readouterr().err
    index = merged(state).index_digest
    for tag in ("cpu", "cpu-py3.11-torch2.4.1"):
        assert (
            f"would PUT localhost:5000/{REPO_NAME}:{tag} -> {index} (after a fresh verify)" in err
        )
        assert f"would PUT localhost:5000/{REPO_NAME}:{tag} -> the index merged above" in err
    assert fake_registry.puts == []


@pytest.mark.parametrize("dirty", [DEFAULT_ALLOWLIST, "names.py", "install-group.sh"])
def test_an_uncommitted_input_blocks_promote(
    setup: Setup,
    fake_registry: FakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dirty: str,
) -> None:
    """The allowlist changes the image's labels; names.py how the renderer groups packages:
    either one uncommitted, the tags stay where they are."""
    cfg, state, _ = setup
    with_variant_folder(cfg)

    def uncommitted(_cwd: Path, paths: Sequence[Path]) -> list[str]:
        return [str(p) for p in paths if p.name == dirty]

    monkeypatch.setattr(git, "toplevel", lambda _: REPO)
    monkeypatch.setattr(git, "uncommitted", uncommitted)
    monkeypatch.setattr(git, "is_ancestor", lambda *_: None)
    settings, _ = load({"config": str(cfg.path)}, env={})
    build = BuildContext(REV, "2026-11-27T06:00:00Z", "20261127", "0a0b0c")
    paths = Paths(tmp_path / "out", tmp_path)
    with fake_registry.client() as client:
        ctx = RunContext(settings, cfg, paths, build, client)
        with pytest.raises(PromoteError) as info:
            promote_checked(ctx, cfg.variant("cpu"), state, FORWARD_ONLY, dry_run=False)
    assert "built from files that are not what commit" in info.value.render()
    assert f"/{dirty}" in info.value.render() and fake_registry.puts == []
