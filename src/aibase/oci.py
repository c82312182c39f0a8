"""The OCI image-spec shapes this project reads: media types, manifests, index entries."""

from __future__ import annotations

import json
from collections.abc import Mapping
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
