"""A cell's SBOM: made right after the push from what the pushed image's layers hold (read
through the registry: no container, and exactly the bytes a puller gets, whatever any
Dockerfile step installed or removed), then attached to the image as an OCI artifact
(registry.referrers), so anyone holding the image's digest finds it.

After the build rather than in a build stage: a stage sees only what exists when it runs,
and verify must read the layers anyway to check an SBOM against them; one reader
(audit.contents) serves both. The base's digest comes from the cell's provenance, which
records what the build resolved the base's tag to.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aibase import log
from aibase.audit.attached import read_contents
from aibase.audit.provenance import Provenance, read_provenance
from aibase.audit.sbom import SBOM_TYPE, BaseImage, ImageId, Locked, make_sbom, sbom_bytes
from aibase.build.lock_format import parse_lock, split_blocks
from aibase.build.plan import LABEL_NS, Cell
from aibase.build.run_context import RunContext
from aibase.config.model import VariantConfig
from aibase.errors import BuildError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, entry_platform, is_attestation
from aibase.registry.referrers import attach, index_attestations
from aibase.registry.refs import parse_ref

HASH_RE = re.compile(r"--hash=sha256:([0-9a-f]{64})")
REVISION, CREATED = "org.opencontainers.image.revision", "org.opencontainers.image.created"


def locked_hashes(lock_text: str) -> Locked:
    """name -> (version, every sha256 the lock allows for that pin)."""
    pins, blocks = parse_lock(lock_text), split_blocks(lock_text)
    return {
        name: (pin.version, tuple(HASH_RE.findall(blocks.get(name, ""))))
        for name, pin in pins.items()
    }


def image_of(client: RegistryClient, repo: str, top: Manifest, platform: str) -> Manifest:
    """The platform image behind what a cell pushed (an index with attestations, or the
    image itself)."""
    if not top.is_index:
        return top
    for entry in top.json.get("manifests", []):
        if not is_attestation(entry) and entry_platform(entry) == platform:
            return client.get_manifest(repo, str(entry["digest"]))
    raise BuildError(f"pushed {top.digest} holds no {platform} image", "rebuild the cell")


def provenance_of(client: RegistryClient, repo: str, top: Manifest, image: str) -> Provenance:
    """The cell's SLSA provenance (BuildKit's, in what the cell pushed)."""
    for attestation in index_attestations(client, repo, top, image):
        try:
            return read_provenance(json.loads(attestation.statement))
        except (KeyError, TypeError, ValueError):
            continue
    raise BuildError(
        f"{repo}@{top.digest} carries no SLSA provenance for {image}",
        "build with provenance (the plan asks buildx for --provenance mode=max; a builder "
        "that drops attestations cannot build release cells)",
    )


def base_of(provenance: Provenance, base_ref: str, platform: str) -> BaseImage | None:
    """The base image among the build's materials: the configured base, for the cell's
    platform (the installer image may be the same name for the build platform)."""
    want = parse_ref(base_ref)
    for material in provenance.materials:
        ref = parse_ref(f"{material.name}@{material.digest}")
        same = (ref.api_host, ref.repository) == (want.api_host, want.repository)
        if same and material.platform in ("", platform):
            return BaseImage(material.name, base_ref, material.digest, platform)
    return None


def attach_sbom(ctx: RunContext, variant: VariantConfig, cell: Cell, pushed: str) -> str:
    """Make the SBOM of the image a cell pushed and attach it; returns the artifact's digest."""
    client, repo = ctx.registry, ctx.config.repository
    top = client.get_manifest(repo, pushed)
    image = image_of(client, repo, top, cell.platform)
    config: dict[str, Any] = json.loads(client.get_blob(repo, image.json["config"]["digest"]))
    labels = (config.get("config") or {}).get("Labels") or {}
    provenance = provenance_of(client, repo, top, image.digest)
    base = base_of(provenance, ctx.config.base_for(variant), cell.platform)
    if base is None:
        log.warn(f"cell {cell.slug}: the provenance names no base {ctx.config.base_for(variant)}")
    lock = variant.lock_file(cell.platform)
    with log.step(f"sbom {cell.variant}/{cell.platform}"):
        contents = read_contents(client, repo, image)
        identity = ImageId(
            ctx.config.image,
            image.digest,
            cell.platform,
            labels.get(REVISION, ""),
            labels.get(CREATED, ""),
        )
        document = make_sbom(contents, identity, locked_hashes(lock.read_text()), base)
        digest = attach(
            client,
            repo,
            image,
            SBOM_TYPE,
            SBOM_TYPE,
            sbom_bytes(document),
            annotations={CREATED: labels.get(CREATED, ""), f"{LABEL_NS}.sbom": "cyclonedx"},
            title=f"{cell.slug}.cdx.json",
        )
    log.info(
        f"cell {cell.variant}/{cell.platform}: SBOM {digest} attached to {image.digest} "
        f"({len(contents.dists)} Python distributions, {len(contents.os_packages)} OS packages)"
    )
    return digest
