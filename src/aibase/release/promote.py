"""The tag moves: the one place the promoted tags change.

After the gate (`release.promote_gate`: what the run recorded, merged, verified and
smoke-tested on every platform the index holds and every one images.toml requires), the
index is read again from the registry, because the registry is the truth and a state file
is not. Each promoted tag (the floating `cuda` and the descriptive
`cuda-py3.11-torch2.4.1-cu121`) then moves only if it still serves what it served when this
run verified (no last writer wins), never to an older index unless asked, and is read back.
A promote that is run again (a CI job re-run) finds the tags already serving this run's
index: that is success, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aibase import log
from aibase.build.plan import floating_tag, promoted_tags
from aibase.config.model import Config, VariantConfig
from aibase.errors import AibaseError, PromoteError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import entry_platform, is_attestation
from aibase.registry.refs import parse_ref
from aibase.release.promote_gate import (
    FORWARD_ONLY,
    Guards,
    Serving,
    check_forward,
    check_promotable,
)
from aibase.release.verify import fetch_index, raise_if_failed, verify_index
from aibase.state import VariantState

CREATED = "org.opencontainers.image.created"
REVISION = "org.opencontainers.image.revision"


@dataclass(frozen=True)
class Promotion:
    tag: str  # the floating tag's full reference
    digest: str
    previous: str | None  # what the tag served when this run verified (None: it did not exist)
    already: bool = False  # it served this index before this call (a re-run): it did not move


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
    if dry_run:
        show_promotion(config, variant, state, revision, guards)
        return None
    merged, verified = check_promotable(config, variant, state, revision, guards)
    digest, floating = merged.index_digest, floating_tag(variant)
    result = verify_index(client, config, variant, parse_ref(f"{config.image}@{digest}"), revision)
    raise_if_failed(result)
    if {i.platform: i.digest for i in result.images} != dict(verified.platforms):
        raise PromoteError(
            f"promote {variant.name}: index content changed since verify", "rerun invoke verify"
        )
    now = {tag: client.head_manifest(config.repository, tag) for tag in promoted_tags(variant)}
    todo = tags_to_move(config, variant, digest, now, verified.promoted_before)
    for tag in sorted(now.keys() - todo):
        log.info(
            f"{config.image}:{tag} already serves {digest}, this run's verified index "
            "(read back): not written again"
        )
    created = min(i.labels.get(CREATED, "") for i in result.images)
    ours = Serving({i.platform for i in result.images}, revision, created)
    for tag in todo:  # every tag that moves, not only the floating one, moves forward only
        served = now[tag]
        if served is not None:
            check_forward(f"{config.image}:{tag}", serving(client, config, served), ours, guards)
    # the floating tag last: it is the one every build uses
    move_tags(client, config, sorted(todo, key=lambda tag: tag == floating), digest, now)
    previous = verified.promoted_before[floating]
    return Promotion(f"{config.image}:{floating}", digest, previous, already=floating not in todo)


def show_promotion(
    config: Config,
    variant: VariantConfig,
    state: VariantState | None,
    revision: str,
    guards: Guards,
) -> None:
    """What a promote would PUT, after the gate when there is a state to check (a dry
    build-all has merged nothing yet: there is none)."""
    target = "the index merged above, once verified and smoke-tested"
    if state is not None:
        merged, _ = check_promotable(config, variant, state, revision, guards)
        target = f"{merged.index_digest} (after a fresh verify)"
    for tag in promoted_tags(variant):
        log.info(f"[dry-run] would PUT {config.image}:{tag} -> {target}")


def tags_to_move(
    config: Config,
    variant: VariantConfig,
    digest: str,
    now: Mapping[str, str | None],
    before: Mapping[str, str | None],
) -> list[str]:
    """The promoted tags that must move to digest. A tag that serves digest already is done
    (this run promoted it: a re-run); one that still serves what it served at verify moves;
    one that serves anything else was moved by another run."""
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


def move_tags(
    client: RegistryClient,
    config: Config,
    tags: Sequence[str],
    digest: str,
    before: Mapping[str, str | None],
) -> None:
    """Move the tags to digest in this order, each only if it still serves what it served
    before; when one fails, those moved already are put back: they move together or not."""
    moved: list[str] = []
    try:
        for tag in tags:
            promote_tag(client, config.repository, tag, digest, expected=before[tag])
            moved.append(tag)
    except AibaseError:
        for tag in moved:
            restore_tag(client, config, tag, before[tag])
        raise


def restore_tag(client: RegistryClient, config: Config, tag: str, old: str | None) -> None:
    """Put a moved tag back to what it served before."""
    if old is None:
        log.warn(f"{config.image}:{tag} was moved and did not exist before: it stays")
        return
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
