"""The promotion gate and the tag moves: the one place the promoted tags change.

The gate reads what the run recorded (merged, verified, smoke-tested on every platform the
index holds and every one images.toml requires), then re-reads the index from the registry,
because the registry is the truth and a state file is not. Each promoted tag (the floating
`cuda` and the descriptive `cuda-py3.11-torch2.4.1-cu121`) then moves only if it still serves
what it served when this run verified (no last writer wins), never to an older index unless
asked, and is read back. A promote that is run again (a CI job re-run) finds the tags already
serving this run's index: that is success, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aibase import log
from aibase.build.plan import floating_tag, promoted_tags
from aibase.config.model import Config, VariantConfig
from aibase.errors import AibaseError, PromoteError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import entry_platform, is_attestation
from aibase.registry.refs import parse_ref
from aibase.release.verify import fetch_index, raise_if_failed, verify_index
from aibase.state import MergeRecord, VariantState, VerifyRecord

CREATED = "org.opencontainers.image.created"
REVISION = "org.opencontainers.image.revision"


@dataclass(frozen=True)
class Promotion:
    tag: str  # the floating tag's full reference
    digest: str
    previous: str | None  # what the tag served when this run verified (None: it did not exist)
    already: bool = False  # it served this index before this call (a re-run): it did not move


def check_gate(
    config: Config, variant: VariantConfig, state: VariantState | None, revision: str
) -> tuple[MergeRecord, VerifyRecord]:
    """What must be on record before the registry is even asked. Pure."""
    name = variant.name
    if state is None or state.merged is None:
        raise PromoteError(
            f"promote {name}: no merged index recorded", f"run invoke merge --variant {name} first"
        )
    merged, verified = state.merged, state.verified
    expected = {
        "registry": config.registry,
        "repository": config.repository,
        "revision": revision,
        "config_digest": config.config_digest,
    }
    foreign = [k for k, v in expected.items() if getattr(merged, k) != v]
    if foreign:
        raise PromoteError(
            f"promote {name}: the recorded index is from another run (its {', '.join(foreign)}: "
            "not this checkout's; --debug shows both)",
            f"merge and verify in this checkout first: invoke merge / verify --variant {name}",
            details=tuple(
                f"{k}: recorded {getattr(merged, k)!r}, this run {expected[k]!r}" for k in expected
            ),
        )
    if verified is None or verified.index_digest != merged.index_digest:
        raise PromoteError(
            f"promote {name}: index {merged.index_digest} was never verified",
            f"run invoke verify --variant {name} (it also smoke-tests)",
        )
    platforms = dict.fromkeys([*config.required_platforms, *verified.platforms])
    failed = []
    for platform in platforms:
        smoke = state.smoke.get(platform)
        if smoke is None or not smoke.ok or smoke.digest != verified.platforms.get(platform):
            failed.append(platform)
    if failed:
        raise PromoteError(
            f"promote {name}: {', '.join(failed)} not smoke-tested or failed; "
            f"{config.image}:{floating_tag(variant)} left untouched",
            f"fix the image and rerun invoke verify --variant {name}",
        )
    return merged, verified


@dataclass(frozen=True)
class Guards:
    """What promote may do besides moving a tag forward, and what it knows of history."""

    allow_rollback: bool = False
    allow_narrowing: bool = False
    require_gpu: bool = False  # a smoke test that skipped its GPU checks does not count
    uncommitted: tuple[str, ...] = ()  # build inputs that are not what the commit holds
    is_ancestor: Callable[[str, str], bool | None] = field(default=lambda older, newer: None)


FORWARD_ONLY = Guards()  # no rollback, no narrowing, history unknown


def promote_variant(
    client: RegistryClient,
    config: Config,
    variant: VariantConfig,
    state: VariantState | None,
    *,
    revision: str,
    guards: Guards = FORWARD_ONLY,
    dry_run: bool = False,
) -> Promotion | None:
    """Move the promoted tags to the recorded index, after the gate and a fresh verify."""
    tags = promoted_tags(variant)
    if dry_run and state is None:  # build-all --dry-run: nothing merged yet
        for tag in tags:
            log.info(
                f"[dry-run] would PUT {config.image}:{tag} -> the index merged above, once "
                "verified and smoke-tested"
            )
        return None
    merged, verified = check_gate(config, variant, state, revision)
    skipped = [n for s in (state.smoke.values() if state else ()) for n in s.skipped]
    if guards.require_gpu and skipped:
        raise PromoteError(
            f"promote {variant.name} with --require-gpu: {'; '.join(skipped)}",
            "smoke-test the CUDA platforms on a GPU runner: invoke smoke --variant V "
            "--platform P --require-gpu (its result file reaches promote with the others)",
        )
    if guards.uncommitted:
        raise PromoteError(
            f"promote {variant.name}: built from files that are not what commit {revision[:12]} "
            f"holds: {', '.join(guards.uncommitted)}; a tag every build uses must come from a "
            "commit",
            "commit them (or build in a clean clone), then rerun build-all",
        )
    digest = merged.index_digest
    if dry_run:
        for tag in tags:
            log.info(f"[dry-run] would PUT {config.image}:{tag} -> {digest} (after a fresh verify)")
        return None
    result = verify_index(client, config, variant, parse_ref(f"{config.image}@{digest}"), revision)
    raise_if_failed(result)
    if {i.platform: i.digest for i in result.images} != dict(verified.platforms):
        raise PromoteError(
            f"promote {variant.name}: index content changed since verify", "rerun invoke verify"
        )
    now = {tag: client.head_manifest(config.repository, tag) for tag in tags}
    todo = tags_to_move(config, variant, digest, now, verified.promoted_before)
    floating = tags[0]
    previous = verified.promoted_before[floating]
    for tag in tags:
        if tag not in todo:
            log.info(
                f"{config.image}:{tag} already serves {digest}, this run's verified index "
                "(read back): not written again"
            )
    if not todo:
        return Promotion(f"{config.image}:{floating}", digest, previous, already=True)
    current = now[floating]
    if floating in todo and current:
        ours = Serving(
            {i.platform for i in result.images},
            revision,
            min(i.labels.get(CREATED, "") for i in result.images),
        )
        check_forward(f"{config.image}:{floating}", serving(client, config, current), ours, guards)
    moved: list[str] = []
    try:
        for tag in reversed(todo):  # the floating tag last: it is the one every build uses
            promote_tag(client, config.repository, tag, digest, expected=now[tag])
            moved.append(tag)
    except AibaseError:
        _restore(client, config, moved, now)
        raise
    return Promotion(f"{config.image}:{floating}", digest, previous, already=floating not in todo)


def tags_to_move(
    config: Config,
    variant: VariantConfig,
    digest: str,
    now: Mapping[str, str | None],
    before: Mapping[str, str | None],
) -> list[str]:
    """The promoted tags that must move to digest, in order (floating first). A tag that
    serves digest already is done (this run promoted it: a re-run); one that still serves
    what it served at verify moves; one that serves anything else was moved by another run."""
    todo = []
    for tag, serves in now.items():
        if tag not in before:
            raise PromoteError(
                f"promote {variant.name}: no record of what {tag} served at verify",
                f"rerun invoke verify --variant {variant.name}",
            )
        if serves == digest:
            continue
        if serves == before[tag]:
            todo.append(tag)
        else:
            raise PromoteError(
                f"{config.image}:{tag} moved to {serves} since this run verified (it served "
                f"{before[tag]}; this run's index is {digest}): another run promoted; "
                "not overwriting it",
                f"rerun invoke verify --variant {variant.name} to promote over it deliberately",
            )
    return todo


@dataclass(frozen=True)
class Serving:
    platforms: set[str]
    revision: str
    created: str


def serving(client: RegistryClient, config: Config, digest: str) -> Serving:
    """What an index the tag serves holds: its platforms, revision and creation labels."""
    fetched = fetch_index(client, parse_ref(f"{config.image}@{digest}"))
    entries = [e for e in fetched.index.json.get("manifests", []) if not is_attestation(e)]
    labels = [(c.get("config") or {}).get("Labels") or {} for c in fetched.configs.values()]
    return Serving(
        {entry_platform(e) for e in entries},
        next((str(lab[REVISION]) for lab in labels if lab.get(REVISION)), ""),
        max((str(lab.get(CREATED, "")) for lab in labels), default=""),
    )


def check_forward(tag: str, theirs: Serving, ours: Serving, guards: Guards) -> None:
    """Refuse to narrow the platforms a tag serves, or to move it back in history."""
    lost = sorted(theirs.platforms - ours.platforms)
    if lost and not guards.allow_narrowing:
        raise PromoteError(
            f"{tag} serves {', '.join(sorted(theirs.platforms))}; this index lacks "
            f"{', '.join(lost)}: promoting it would narrow the tag every build uses",
            "add the platforms back to images.toml, or pass --allow-narrowing after review",
        )
    if guards.allow_rollback or not theirs.revision or theirs.revision == ours.revision:
        return  # a rebuild of the same commit (OS updates) moves forward in time only
    older = guards.is_ancestor(ours.revision, theirs.revision)
    newer = guards.is_ancestor(theirs.revision, ours.revision)
    if older is None or newer is None:  # history unknown here (a shallow clone): use time
        back = bool(ours.created and theirs.created and ours.created < theirs.created)
    else:
        back = not newer
    if back:
        raise PromoteError(
            f"{tag} serves commit {theirs.revision[:12]} (created {theirs.created}); this index "
            f"is commit {ours.revision[:12]}, not a descendant of it: that would be a rollback",
            "pass --allow-rollback to move the tag back deliberately",
        )


def _restore(
    client: RegistryClient, config: Config, moved: list[str], before: dict[str, str | None]
) -> None:
    """A tag moved before a later one failed: put it back, so they move together or not."""
    for tag in moved:
        old = before[tag]
        if old is None:
            log.warn(f"{config.image}:{tag} was moved and did not exist before: it stays")
            continue
        client.put_manifest(config.repository, tag, client.get_manifest(config.repository, old))
        log.warn(f"{config.image}:{tag} put back to {old} (the promotion did not complete)")


def promote_tag(
    client: RegistryClient, repo: str, tag: str, digest: str, *, expected: str | None
) -> None:
    """Point repo:tag at digest (verified by the caller), if it still serves `expected`.

    The manifest is re-uploaded byte for byte, so the tag resolves to exactly the digest
    that was verified. The registry API has no conditional PUT: the tag is read just
    before the PUT and read back after it, and each surprise is named.
    """
    manifest = client.get_manifest(repo, digest)
    if not manifest.is_index:
        raise PromoteError(f"{repo}@{digest} is not a multi-platform index", "never promote it")
    before = client.head_manifest(repo, tag)
    if before != expected:
        raise PromoteError(
            f"{client.host}/{repo}:{tag} moved to {before} while promoting (expected {expected})",
            "another run is promoting; check the tag, then rerun verify and promote",
        )
    log.info(f"PUT {client.host}/{repo}:{tag} -> {digest} (was {before or 'unset'})")
    client.put_manifest(repo, tag, manifest)
    after = client.head_manifest(repo, tag)
    if after == digest:
        log.info(f"promoted {client.host}/{repo}:{tag} = {digest} (read back)")
        return
    if after == before:
        raise PromoteError(
            f"the PUT of {client.host}/{repo}:{tag} did not take: it still serves {after}",
            "the registry accepted the upload but kept the old tag; check its logs",
        )
    raise PromoteError(
        f"{client.host}/{repo}:{tag} serves {after} right after our PUT of {digest}: "
        "another run moved it in between",
        "check which index the tag serves before any build uses it; rerun verify and promote",
    )
