"""Check an index in the registry against the configuration.

Fetching (I/O) and checking (pure) are separate: `fetch_index` reads everything once,
`check_index` collects every problem before failing, so one run names them all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aibase import log
from aibase.build.plan import REQUIRED_LABELS
from aibase.config.model import Config, VariantConfig
from aibase.errors import VerifyError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, compressed_size, entry_platform, is_attestation
from aibase.registry.refs import ImageRef
from aibase.release.attestations import check_evidence, gather_evidence


@dataclass(frozen=True)
class FetchedIndex:
    ref: ImageRef
    index: Manifest
    manifests: Mapping[str, Manifest]  # digest -> platform manifest
    configs: Mapping[str, dict[str, Any]]  # manifest digest -> its image config


@dataclass(frozen=True)
class PlatformImage:
    platform: str
    digest: str
    compressed_bytes: int
    labels: Mapping[str, str]
    layers: tuple[int, ...] = ()  # compressed size of each layer, base first
    layer_digests: tuple[str, ...] = ()  # the same layers' digests
    steps: tuple[str, ...] = ()  # the history step that made each layer; () when unaligned
    sbom: str = ""  # the SBOM artifact verify checked against the layers ("" none did)
    provenance: str = ""  # the attestation manifest holding its checked provenance


@dataclass(frozen=True)
class VerifyResult:
    ref: ImageRef
    index_digest: str
    images: tuple[PlatformImage, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> str:
        lines = [f"{'platform':<14} {'digest':<71} {'size MB':>8}"]
        lines += [
            f"{i.platform:<14} {i.digest:<71} {i.compressed_bytes / 1e6:>8.1f}" for i in self.images
        ]
        return "\n".join(lines)


def fetch_index(client: RegistryClient, ref: ImageRef) -> FetchedIndex:
    """Everything verify looks at, read once: the index, each image manifest and config."""
    repo, reference = ref.repository, ref.reference
    index = client.get_manifest(repo, reference)
    manifests: dict[str, Manifest] = {}
    configs: dict[str, dict[str, Any]] = {}
    if index.is_index:
        for entry in index.json.get("manifests", []):
            if is_attestation(entry):
                continue
            m = client.get_manifest(repo, entry["digest"])
            manifests[m.digest] = m
            cfg_digest = m.json.get("config", {}).get("digest")
            if cfg_digest:
                configs[m.digest] = json.loads(client.get_blob(repo, cfg_digest))
    return FetchedIndex(ref, index, manifests, configs)


def verify_index(
    client: RegistryClient,
    config: Config,
    variant: VariantConfig,
    ref: ImageRef,
    revision: str | None,
    secrets: Sequence[tuple[str, str]] = (),
) -> VerifyResult:
    """Read the index through the registry API and check it, with each image's SBOM and
    provenance (`attestations`: never a secret's value in it); prints the platform table."""
    fetched = fetch_index(client, ref)
    result = check_index(config, variant, fetched, revision)
    evidence = gather_evidence(client, ref.repository, fetched.index)
    labels = {i.digest: i.labels for i in result.images}
    checked = check_evidence(config, evidence, labels, secrets)
    for note in checked.notes:
        log.info(note)
    images = tuple(
        replace(
            i, sbom=checked.sbom.get(i.digest, ""), provenance=checked.provenance.get(i.digest, "")
        )
        for i in result.images
    )
    result = replace(result, images=images, problems=result.problems + checked.problems)
    log.info(result.table())
    return result


def check_index(
    config: Config,
    variant: VariantConfig,
    fetched: FetchedIndex,
    revision: str | None = None,
) -> VerifyResult:
    """Every problem found, not just the first. revision=None skips the revision check."""
    problems: list[str] = []
    images: list[PlatformImage] = []
    if not fetched.index.is_index:
        problems.append(
            f"{fetched.ref} is a single image, not a multi-platform index: "
            f"it cannot serve {', '.join(config.required_platforms)}"
        )
        return VerifyResult(fetched.ref, fetched.index.digest, (), tuple(problems))
    entries = [e for e in fetched.index.json.get("manifests", []) if not is_attestation(e)]
    problems += platform_problems(config.required_platforms, entries)
    budget = variant.size_budget_mb * 1_000_000
    for entry in entries:
        platform = entry_platform(entry)
        digest = entry["digest"]
        manifest = fetched.manifests.get(digest)
        cfg = fetched.configs.get(digest)
        if manifest is None or cfg is None:
            problems.append(f"{platform}: manifest or config {digest} could not be read")
            continue
        want_os, _, want_arch = platform.partition("/")
        want_arch = want_arch.split("/")[0]
        if cfg.get("architecture") != want_arch or cfg.get("os") != want_os:
            problems.append(
                f"{platform}: the index entry says {platform} but the image config says "
                f"{cfg.get('os')}/{cfg.get('architecture')} ({digest})"
            )
        labels: dict[str, str] = (cfg.get("config") or {}).get("Labels") or {}
        missing = [k for k in REQUIRED_LABELS if not labels.get(k)]
        if missing:
            problems.append(f"{platform}: labels missing: {', '.join(missing)}")
        if revision and labels.get("org.opencontainers.image.revision") not in (None, revision):
            problems.append(
                f"{platform}: revision label {labels.get('org.opencontainers.image.revision')} "
                f"is not the commit {revision}"
            )
        variant_label = labels.get("io.cerebral.ai-base.variant")
        if variant_label and variant_label != variant.name:
            problems.append(f"{platform}: variant label {variant_label!r} is not {variant.name!r}")
        size = compressed_size(manifest)
        if size > budget:
            problems.append(
                f"{platform}: compressed size {size / 1e6:.1f} MB exceeds the budget of "
                f"{variant.size_budget_mb} MB"
            )
        layers = manifest.json.get("layers", [])
        sizes = tuple(int(layer.get("size", 0)) for layer in layers)
        digests = tuple(str(layer.get("digest", "")) for layer in layers)
        images.append(
            PlatformImage(platform, digest, size, labels, sizes, digests, layer_steps(cfg, sizes))
        )
    return VerifyResult(fetched.ref, fetched.index.digest, tuple(images), tuple(problems))


def platform_problems(required: Sequence[str], entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each required platform exactly once among the index's images."""
    counts = Counter(entry_platform(e) for e in entries)
    return [
        f"required platform {p} is missing from the index"
        if not counts[p]
        else f"platform {p} appears {counts[p]} times (must be exactly once)"
        for p in required
        if counts[p] != 1
    ]


def layer_steps(config: Mapping[str, Any], layers: tuple[int, ...]) -> tuple[str, ...]:
    """The config history's step (created_by) for each layer, in order: the entries that made
    no layer are left out. () when the history does not line up with the layers."""
    history = config.get("history") or []
    steps = tuple(str(h.get("created_by", "")) for h in history if not h.get("empty_layer"))
    return steps if len(steps) == len(layers) else ()


def raise_if_failed(result: VerifyResult) -> None:
    if not result.ok:
        raise VerifyError(
            f"verify {result.ref} ({result.index_digest}) failed:\n  - "
            + "\n  - ".join(result.problems),
            "do not promote this index; rebuild the missing or wrong platforms with "
            "`invoke build-all` (never a single-platform `docker build` + push)",
        )
