"""What a build leaves beside each image, made in memory for the fake registry: a real (tiny)
layer tar, BuildKit-shaped SLSA provenance in the index, and this tool's SBOM attached under
the referrers fallback tag, exactly as `build-all` leaves them on distribution 2.8."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from typing import Any

from aibase.audit.contents import read_layer, stack_layers
from aibase.audit.sbom import SBOM_TYPE, BaseImage, ImageId, make_sbom, sbom_bytes
from aibase.registry.oci import Manifest
from aibase.registry.referrers import OCI_MANIFEST, artifact_manifest

SOURCE = "https://example.invalid/ai-base"  # conftest.VALID's project source
BASE = "localhost:5000/mirror/library/python"
BASE_DIGEST = "sha256:" + "b" * 64
SITE = "opt/venv/lib/python3.11/site-packages"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def layer_tar(files: Mapping[str, str]) -> bytes:
    """A gzip tar of these files (path -> text), byte for byte the same every time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def image_files(arch: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """One installed distribution and one OS package: what a fake image holds."""
    return {
        f"{SITE}/fastapi-0.115.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: fastapi\nVersion: 0.115.0\nLicense-Expression: MIT\n"
        ),
        f"{SITE}/fastapi-0.115.0.dist-info/RECORD": "fastapi/__init__.py,,\n",
        "var/lib/dpkg/status": (
            f"Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: {arch}\n"
        ),
        "usr/lib/os-release": 'ID=debian\nVERSION_ID="12"\n',
    } | dict(extra or {})


def provenance(image: str, platform: str, *, revision: str, **changes: Any) -> dict[str, Any]:
    """BuildKit's SLSA v0.2 statement for `image` (mode=max: the labels are in the args);
    `changes` replaces the subject, the vcs source/revision, the recorded source label, adds
    args, or says mode="min"."""
    args = {
        "label:org.opencontainers.image.source": changes.get("label_source", SOURCE),
        "label:org.opencontainers.image.revision": revision,
    } | changes.get("args", {})
    if changes.get("mode") == "min":  # BuildKit's default: no labels or build args recorded
        args = {}
    vcs = {"revision": changes.get("vcs_revision", revision)}
    if "vcs_source" in changes:
        vcs["source"] = changes["vcs_source"]
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [
            {
                "name": "pkg:docker/x",
                "digest": {"sha256": changes.get("subject", image).removeprefix("sha256:")},
            }
        ],
        "predicate": {
            "builder": {"id": ""},
            "buildType": "https://mobyproject.org/buildkit@v1",
            "materials": [
                {
                    "uri": f"pkg:docker/{BASE}@3.11-slim?platform={platform.replace('/', '%2F')}",
                    "digest": {"sha256": BASE_DIGEST.removeprefix("sha256:")},
                }
            ],
            "invocation": {"parameters": {"args": args, "secrets": [{"id": "ca_bundle"}]}},
            "metadata": {"https://mobyproject.org/buildkit@v1#metadata": {"vcs": vcs}},
        },
    }


def sbom_document(
    repo: str, files: Mapping[str, str], image: str, platform: str, revision: str
) -> dict[str, Any]:
    """This tool's SBOM of an image holding `files`."""
    contents = stack_layers([read_layer(layer_tar(files))])
    return make_sbom(
        contents,
        ImageId(f"localhost:5000/{repo}", image, platform, revision, "2026-11-27T00:00:00Z"),
        {"fastapi": ("0.115.0", ("a" * 64,))},
        BaseImage(BASE, "python:3.11-slim", BASE_DIGEST, platform),
    )


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def sbom_artifact(subject: Manifest, document: Mapping[str, Any]) -> tuple[Manifest, bytes]:
    """The artifact manifest `attach` would push for this document, and the document."""
    payload = sbom_bytes(document)
    return artifact_manifest(subject, SBOM_TYPE, SBOM_TYPE, payload, {}, "x.cdx.json"), payload


def fallback_entry(artifact: Manifest) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": artifact.digest,
        "size": len(artifact.body),
        "artifactType": SBOM_TYPE,
    }


def attestation_entry(image: str, manifest_digest: str, size: int) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": manifest_digest,
        "size": size,
        "annotations": {
            "vnd.docker.reference.digest": image,
            "vnd.docker.reference.type": "attestation-manifest",
        },
        "platform": {"architecture": "unknown", "os": "unknown"},
    }
