"""What an image holds and what is attached to it, read from the registry alone (no
container, no engine): the contents of its layers (audit.contents parses them), its
platform images, the SBOM to believe for each (audit.sbom chooses; a conflict or an SBOM of
another image is refused), and its provenance in the index. `inspect --sbom` and
`audit --image` read SBOMs here; verify checks them against the layers as well
(release.attestations).

Each layer is read once per process (content-addressed: its digest is checked on download),
so making an SBOM and verifying it in one run downloads each layer once.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from typing import Any

import zstandard

from aibase.audit.contents import Contents, LayerFacts, read_layer, stack_layers
from aibase.audit.provenance import PROVENANCE_TYPES
from aibase.audit.sbom import SBOM_TYPE, SbomFacts, choose_sbom
from aibase.errors import NotFound, RegistryError, VerifyError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, entry_platform, is_attestation
from aibase.registry.referrers import index_attestations, read_referrers
from aibase.registry.refs import ImageRef

LAYER_LIMIT = 16 << 30  # read whole: the largest layer (a CUDA library) is a few GB


@dataclass(frozen=True)
class Attached:
    platform: str
    image: str  # the platform image's digest
    sbom: str  # the SBOM artifact's digest ("" when none is attached)
    document: bytes  # its CycloneDX document (b"" when none)
    facts: SbomFacts | None
    provenance: str  # the attestation manifest holding its provenance ("" when none)


def platform_images(client: RegistryClient, ref: ImageRef) -> tuple[Manifest, dict[str, str]]:
    """The manifest behind ref and platform -> image digest (a single image: its config's)."""
    top = client.get_manifest(ref.repository, ref.reference)
    if top.is_index:
        return top, {
            entry_platform(e): str(e["digest"])
            for e in top.json.get("manifests", [])
            if not is_attestation(e)
        }
    config: dict[str, Any] = json.loads(
        client.get_blob(ref.repository, top.json["config"]["digest"])
    )
    return top, {f"{config.get('os')}/{config.get('architecture')}": top.digest}


def attached(client: RegistryClient, ref: ImageRef, platform: str) -> Attached:
    """The SBOM and provenance of ref's image for `platform`; VerifyError when the SBOMs
    attached to it cannot be believed (another image's, several that disagree)."""
    top, images = platform_images(client, ref)
    if platform not in images:
        raise NotFound(
            f"{ref} holds no {platform} image (it holds {', '.join(sorted(images)) or 'none'})",
            "name one of the platforms it holds with --platform",
        )
    digest, repo = images[platform], ref.repository
    referrers = read_referrers(client, repo, digest, SBOM_TYPE)
    candidates = [(r.digest, r.subject, r.payload) for r in referrers]
    chosen, problems = choose_sbom(digest, candidates)
    if problems:
        raise VerifyError(
            f"{ref} {platform}: the SBOMs attached to {digest} cannot be believed:\n  - "
            + "\n  - ".join(problems),
            "run `./ai verify` on the index; remove the artifacts that were not attached by "
            "the build, or rebuild the image",
        )
    provenance = next(
        (
            a.digest
            for a in index_attestations(client, repo, top, digest)
            if a.predicate_type in PROVENANCE_TYPES
        ),
        "",
    )
    if chosen is None:
        return Attached(platform, digest, "", b"", None, provenance)
    payload = next(p for d, _, p in candidates if d == chosen[0])
    return Attached(platform, digest, chosen[0], payload, chosen[1], provenance)


def no_sbom(ref: ImageRef, found: Attached) -> NotFound:
    """The error for an image without an SBOM: what it is and how to get one."""
    return NotFound(
        f"{ref} {found.platform} ({found.image}) has no SBOM attached",
        "images built by `./ai build-all` (or `./ai build --push`) since SBOMs were added "
        "carry one; rebuild it",
    )


_SEEN: dict[str, LayerFacts] = {}  # layer digest -> what it holds (content-addressed)


def read_contents(client: RegistryClient, repo: str, image: Manifest) -> Contents:
    """An image's contents, from its layers in the registry (each layer read once a process)."""
    facts = []
    for layer in image.json.get("layers", []):
        digest = str(layer.get("digest", ""))
        if digest not in _SEEN:
            try:
                _SEEN[digest] = read_layer(client.get_blob(repo, digest, limit=LAYER_LIMIT))
            except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
                raise RegistryError(
                    f"layer {digest} of {repo}@{image.digest} is not a readable tar ({exc})",
                    "rebuild the image; a layer must be a tar (gzip, zstd or plain)",
                ) from None
        facts.append(_SEEN[digest])
    return stack_layers(facts)
