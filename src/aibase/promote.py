"""The promotion gate and the tag move: the one place a floating tag changes.

The gate reads what the run recorded (merged, verified, smoke-tested on every required
platform), then re-reads the index from the registry, because the registry is the truth and
a state file is not. Only then is the index manifest copied, byte for byte, to the floating
tag, and the tag read back.
"""

from __future__ import annotations

from dataclasses import dataclass

from aibase import log
from aibase.config import Config, VariantConfig
from aibase.errors import PromoteError
from aibase.plan import floating_tag
from aibase.refs import parse_ref
from aibase.registry import RegistryClient
from aibase.state import MergeRecord, VariantState, VerifyRecord
from aibase.verify import raise_if_failed, verify_index


@dataclass(frozen=True)
class Promotion:
    tag: str  # the floating tag's full reference
    digest: str
    previous: str | None  # what the tag served before (None: it did not exist)


def check_gate(
    config: Config, variant: VariantConfig, state: VariantState | None
) -> tuple[MergeRecord, VerifyRecord]:
    """What must be on record before the registry is even asked. Pure."""
    name = variant.name
    if state is None or state.merged is None:
        raise PromoteError(
            f"promote {name}: no merged index recorded", f"run invoke merge --variant {name} first"
        )
    merged, verified = state.merged, state.verified
    if verified is None or verified.index_digest != merged.index_digest:
        raise PromoteError(
            f"promote {name}: index {merged.index_digest} was never verified",
            f"run invoke verify --variant {name} (it also smoke-tests)",
        )
    failed = []
    for platform in config.platforms:
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


def promote_variant(
    client: RegistryClient,
    config: Config,
    variant: VariantConfig,
    state: VariantState | None,
    *,
    revision: str,
    dry_run: bool = False,
) -> Promotion | None:
    """Move the floating tag to the recorded index, after the gate and a fresh verify."""
    tag = floating_tag(variant)
    if dry_run:
        log.info(f"[dry-run] would PUT {config.image}:{tag} -> <the verified, smoke-tested index>")
        return None
    merged, verified = check_gate(config, variant, state)
    ref = parse_ref(f"{config.image}@{merged.index_digest}")
    result = verify_index(client, config, variant, ref, revision)
    raise_if_failed(result)
    if {i.platform: i.digest for i in result.images} != dict(verified.platforms):
        raise PromoteError(
            f"promote {variant.name}: index content changed since verify", "rerun invoke verify"
        )
    previous = promote_tag(client, config.repository, tag, merged.index_digest)
    return Promotion(f"{config.image}:{tag}", merged.index_digest, previous)


def promote_tag(client: RegistryClient, repo: str, tag: str, digest: str) -> str | None:
    """Point repo:tag at digest (already verified by the caller). Returns the previous digest.

    The manifest is re-uploaded byte for byte, so the tag resolves to exactly the digest
    that was verified; a registry that answers with anything else is an error.
    """
    previous = client.head_manifest(repo, tag)
    manifest = client.get_manifest(repo, digest)
    if not manifest.is_index:
        raise PromoteError(f"{repo}@{digest} is not a multi-platform index", "never promote it")
    log.info(f"PUT {client.host}/{repo}:{tag} -> {digest} (was {previous or 'unset'})")
    client.put_manifest(repo, tag, manifest)
    now = client.head_manifest(repo, tag)
    if now != digest:
        raise PromoteError(
            f"read-back of {client.host}/{repo}:{tag} gives {now}, expected {digest}",
            "the registry did not store the tag as sent; check it before any build uses the tag",
        )
    log.info(f"promoted {client.host}/{repo}:{tag} = {digest} (read back)")
    return previous
