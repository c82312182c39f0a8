"""Moves a floating tag, fail-closed: copy the exact index bytes, then read the tag back."""

from __future__ import annotations

from aibase import log
from aibase.errors import PromoteError
from aibase.registry import RegistryClient


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
