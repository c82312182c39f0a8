"""The OCI image-spec shapes this project reads: media types, manifests, index entries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"  # buildx's provenance entries


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json


def entry_platform(entry: Mapping[str, Any]) -> str:
    p = entry.get("platform") or {}
    parts = [p.get("os", "unknown"), p.get("architecture", "unknown")]
    if p.get("variant"):
        parts.append(p["variant"])
    return "/".join(parts)


def is_attestation(entry: Mapping[str, Any]) -> bool:
    annotations = entry.get("annotations") or {}
    return ATTESTATION_ANNOTATION in annotations or entry_platform(entry) == "unknown/unknown"


def compressed_size(manifest: Manifest) -> int:
    data = manifest.json
    return int(data.get("config", {}).get("size", 0)) + sum(
        int(layer.get("size", 0)) for layer in data.get("layers", [])
    )


OCI_INDEX = INDEX_TYPES[0]
REFERENCE_DIGEST = "vnd.docker.reference.digest"  # which image an attestation describes


def image_entries(top: Manifest, platform: str, config: Mapping[str, Any] | None) -> list[Any]:
    """The index entries that carry one platform's image out of what a cell pushed: from an
    index, the image for that platform and the attestations that describe it; a single
    image manifest becomes one entry, its platform taken from its config."""
    if top.is_index:
        images = [
            e
            for e in top.json.get("manifests", [])
            if not is_attestation(e) and entry_platform(e) == platform
        ]
        keep = {e["digest"] for e in images}
        notes = [
            e
            for e in top.json.get("manifests", [])
            if is_attestation(e) and (e.get("annotations") or {}).get(REFERENCE_DIGEST) in keep
        ]
        return images + notes
    cfg = config or {}
    entry_platform_ = {"os": cfg.get("os", "unknown"), "architecture": cfg.get("architecture")}
    if cfg.get("variant"):
        entry_platform_["variant"] = cfg["variant"]
    return [
        {
            "mediaType": top.media_type,
            "digest": top.digest,
            "size": len(top.body),
            "platform": entry_platform_,
        }
    ]


def make_index(entries: Sequence[Mapping[str, Any]]) -> Manifest:
    """One OCI image index of these entries, in this order."""
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}, indent=2
    ).encode()
    return Manifest("sha256:" + hashlib.sha256(body).hexdigest(), OCI_INDEX, body)
