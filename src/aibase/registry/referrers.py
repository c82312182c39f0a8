"""What refers to an image: OCI artifacts (the OCI 1.1 `subject` field; attach one, read
them) and the attestations BuildKit writes into an index beside the image.

A registry with the referrers API (`GET /v2/<repo>/referrers/<digest>`) lists an image's
referrers itself. One without it (distribution 2.8, the local default) gets the tag-schema
fallback the distribution spec defines: an image index under the tag `sha256-<hex>` of the
subject, one descriptor per referrer, which whoever attaches one keeps up to date.

Anyone who may push may add a referrer (or rewrite the fallback tag): a listing proves
nothing. Each referrer read here is its manifest, fetched by digest (the client checks it),
with the subject its manifest names; what to trust is the reader's decision (audit.sbom).
Every request is one of the client's methods (auth, retries, size caps): no HTTP here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aibase import log
from aibase.errors import NotFound
from aibase.registry.client import RegistryClient
from aibase.registry.oci import (
    ATTESTATION_ANNOTATION as REFERENCE_TYPE,
)
from aibase.registry.oci import (
    MANIFEST_TYPES,
    OCI_INDEX,
    REFERENCE_DIGEST,
    Manifest,
)

OCI_MANIFEST = MANIFEST_TYPES[0]
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"  # an artifact's config: `{}`
EMPTY = b"{}"
TITLE = "org.opencontainers.image.title"
IN_TOTO = "application/vnd.in-toto+json"  # BuildKit's attestation layers
PREDICATE_TYPE = "in-toto.io/predicate-type"
PAYLOAD_LIMIT = 32 << 20  # an SBOM of thousands of packages is a few MB


@dataclass(frozen=True)
class Referrer:
    digest: str  # the artifact's manifest
    artifact_type: str
    subject: str  # the digest its manifest says it refers to
    annotations: Mapping[str, str]
    payload: bytes  # its one layer, read whole (digest-checked)


def referrers_tag(digest: str) -> str:
    """The fallback tag of a subject: `sha256-<hex>`."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact_manifest(
    subject: Manifest,
    artifact_type: str,
    media_type: str,
    payload: bytes,
    annotations: Mapping[str, str],
    title: str,
) -> Manifest:
    """The artifact's image manifest: an empty config, the payload as its one layer, and
    the subject it refers to."""
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": EMPTY_TYPE,
            "digest": _digest(EMPTY),
            "size": len(EMPTY),
            "data": base64.b64encode(EMPTY).decode(),
        },
        "layers": [
            {
                "mediaType": media_type,
                "digest": _digest(payload),
                "size": len(payload),
                "annotations": {TITLE: title},
            }
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": len(subject.body),
        },
        "annotations": dict(annotations),
    }
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    return Manifest(_digest(data), OCI_MANIFEST, data)


def attach(
    client: RegistryClient,
    repo: str,
    subject: Manifest,
    artifact_type: str,
    media_type: str,
    payload: bytes,
    *,
    annotations: Mapping[str, str],
    title: str,
) -> str:
    """Push an artifact that refers to `subject`; the fallback tag lists it where the
    registry has no referrers API. Returns the artifact's manifest digest."""
    manifest = artifact_manifest(subject, artifact_type, media_type, payload, annotations, title)
    client.upload_blob(repo, EMPTY)
    client.upload_blob(repo, payload)
    client.put_manifest(repo, manifest.digest, manifest)
    if not has_referrers_api(client, repo, subject.digest):
        descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": manifest.digest,
            "size": len(manifest.body),
            "artifactType": artifact_type,
            "annotations": dict(annotations),
        }
        _add_to_fallback(client, repo, subject.digest, descriptor)
    return manifest.digest


def has_referrers_api(client: RegistryClient, repo: str, digest: str) -> bool:
    try:
        client.get_referrers(repo, digest)
    except NotFound:
        return False  # the spec's sign of a registry without it
    return True


def _add_to_fallback(
    client: RegistryClient, repo: str, subject: str, descriptor: Mapping[str, Any]
) -> None:
    tag = referrers_tag(subject)
    try:
        entries = list(client.get_manifest(repo, tag).json.get("manifests", []))
    except NotFound:
        entries = []
    if any(e.get("digest") == descriptor["digest"] for e in entries):
        return  # attached before (the same artifact, byte for byte)
    entries.append(dict(descriptor))
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=2
    ).encode()
    client.put_manifest(repo, tag, Manifest(_digest(body), OCI_INDEX, body))
    log.debug(f"referrers of {repo}@{subject}: {len(entries)} under the fallback tag {tag}")


def list_referrers(client: RegistryClient, repo: str, digest: str) -> list[dict[str, Any]]:
    """The descriptors listed as referrers of `digest` (the API's, else the fallback tag's)."""
    try:
        listed = client.get_referrers(repo, digest)
    except NotFound:
        try:
            listed = client.get_manifest(repo, referrers_tag(digest)).json
        except NotFound:
            return []
    entries = listed.get("manifests") if isinstance(listed, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and "digest" in e]


def read_referrers(
    client: RegistryClient, repo: str, digest: str, artifact_type: str
) -> list[Referrer]:
    """Every referrer of `digest` of this artifact type, each read from its own manifest
    (the listing's word on its type is checked there too)."""
    found = []
    for entry in list_referrers(client, repo, digest):
        if entry.get("artifactType") != artifact_type:
            continue
        manifest = client.get_manifest(repo, str(entry["digest"])).json
        layers = manifest.get("layers") or []
        if manifest.get("artifactType") != artifact_type or len(layers) != 1:
            continue
        subject = str((manifest.get("subject") or {}).get("digest", ""))
        payload = client.get_blob(repo, str(layers[0]["digest"]), limit=PAYLOAD_LIMIT)
        notes = {str(k): str(v) for k, v in (manifest.get("annotations") or {}).items()}
        found.append(Referrer(str(entry["digest"]), artifact_type, subject, notes, payload))
    return found


@dataclass(frozen=True)
class Attestation:
    digest: str  # the attestation manifest, an entry of the index
    predicate_type: str
    statement: bytes  # the in-toto statement, read whole (digest-checked)


def index_attestations(
    client: RegistryClient, repo: str, index: Manifest, image_digest: str
) -> list[Attestation]:
    """The in-toto statements BuildKit put in the index for one image: the entries it marks
    `attestation-manifest` with that image's digest. They are part of the index (its digest
    covers them), unlike referrers, which anyone may add later."""
    found = []
    for entry in index.json.get("manifests", []) if index.is_index else []:
        notes = entry.get("annotations") or {}
        if notes.get(REFERENCE_TYPE) != "attestation-manifest":
            continue
        if notes.get(REFERENCE_DIGEST) != image_digest:
            continue
        manifest = client.get_manifest(repo, str(entry["digest"]))
        for layer in manifest.json.get("layers", []):
            kind = str((layer.get("annotations") or {}).get(PREDICATE_TYPE, ""))
            if layer.get("mediaType") == IN_TOTO and kind:
                blob = client.get_blob(repo, str(layer["digest"]), limit=PAYLOAD_LIMIT)
                found.append(Attestation(manifest.digest, kind, blob))
    return found
