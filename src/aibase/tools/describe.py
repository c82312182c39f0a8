"""What is in the registry, as a reviewer asks: `./ai images`, `./ai inspect REF` (the old
guide's `curl | jq` checks as one command) and `./ai diff A B` (what changed between two
indexes: packages per platform, sizes)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from aibase import log
from aibase.audit.attached import attached, no_sbom, platform_images
from aibase.build.plan import CELL_TAG_PREFIX, LABEL_NS
from aibase.errors import VerifyError
from aibase.host import engine
from aibase.host.standins import STANDIN_LABEL
from aibase.names import normalize_name
from aibase.registry.client import RegistryClient
from aibase.registry.oci import compressed_size, entry_platform, is_attestation
from aibase.registry.refs import ImageRef, parse_ref
from aibase.release.verify import fetch_index

OCI = "org.opencontainers.image"


@dataclass(frozen=True)
class ImageFacts:
    platform: str
    digest: str
    compressed_mb: float
    layers_mb: tuple[float, ...]
    labels: Mapping[str, str] = field(default_factory=dict)  # those not shared by every image
    sbom: str = ""  # the SBOM artifact attached to it (inspect only; verify checks it)
    provenance: str = ""  # the attestation manifest of its provenance, in the index


@dataclass(frozen=True)
class IndexFacts:
    ref: str
    digest: str
    tags: tuple[str, ...]
    created: str
    revision: str
    python: str
    torch: str
    cuda: str
    images: tuple[ImageFacts, ...]
    labels: Mapping[str, str] = field(default_factory=dict)  # every image's, the same value
    stand_in_of: str = ""  # built on a STAND-IN for this base (its label); "" when not


def describe(client: RegistryClient, ref: ImageRef, tags: Sequence[str] = ()) -> IndexFacts:
    """One index: its platforms and sizes, and what its labels say."""
    fetched = fetch_index(client, ref)
    images = []
    for entry in fetched.index.json.get("manifests", []) if fetched.index.is_index else []:
        manifest = fetched.manifests.get(entry["digest"])
        if is_attestation(entry) or manifest is None:
            continue
        layers = tuple(int(x.get("size", 0)) for x in manifest.json.get("layers", []))
        config = fetched.configs.get(entry["digest"]) or {}
        own: Mapping[str, str] = (config.get("config") or {}).get("Labels") or {}
        images.append(
            (entry_platform(entry), entry["digest"], compressed_size(manifest), layers, own)
        )
    per_image = [own for *_, own in images]
    labels = shared_labels(per_image)
    stand_in = labels.get(STANDIN_LABEL) == "true"
    return IndexFacts(
        ref=str(ref),
        digest=fetched.index.digest,
        tags=tuple(tags),
        created=labels.get(f"{OCI}.created", "-"),
        revision=labels.get(f"{OCI}.revision", "-"),
        python=labels.get(f"{LABEL_NS}.python", "-"),
        torch=labels.get(f"{LABEL_NS}.torch", "-"),
        cuda=labels.get(f"{LABEL_NS}.cuda", "-"),
        images=tuple(
            ImageFacts(
                p,
                d,
                _mb(size),
                tuple(_mb(x) for x in layers),
                {k: v for k, v in own.items() if k not in labels},
            )
            for p, d, size, layers, own in images
        ),
        labels=labels,
        stand_in_of=(labels.get(f"{STANDIN_LABEL}.of") or "?") if stand_in else "",
    )


def shared_labels(per_image: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The labels every image carries with the same value, sorted by key."""
    if not per_image:
        return {}
    first = per_image[0]
    return {k: first[k] for k in sorted(first) if all(o.get(k) == first[k] for o in per_image)}


def inspect_index(client: RegistryClient, ref: ImageRef) -> IndexFacts:
    """`invoke inspect`: one index, with every tag of its repository that points to it now."""
    digest = client.get_manifest(ref.repository, ref.reference).digest
    tags = [
        t
        for t in client.list_tags(ref.repository)
        if client.head_manifest(ref.repository, t) == digest
    ]
    facts = describe(client, ref, tags)
    return replace(facts, images=tuple(_with_attestations(client, ref, i) for i in facts.images))


def _with_attestations(client: RegistryClient, ref: ImageRef, image: ImageFacts) -> ImageFacts:
    """The image with what is attached to it: its SBOM's and its provenance's digests."""
    try:
        found = attached(client, ref, image.platform)
    except VerifyError:
        return replace(image, sbom="REFUSED (several, or another image's: ./ai verify says)")
    return replace(image, sbom=found.sbom, provenance=found.provenance)


def indexes_by_digest(client: RegistryClient, repository: str) -> dict[str, list[str]]:
    """Every tag of the repository that points to an index, grouped by that index."""
    found: dict[str, list[str]] = {}
    for tag in client.list_tags(repository):
        manifest = client.get_manifest(repository, tag)
        entries = manifest.json.get("manifests", []) if manifest.is_index else []
        if any(not is_attestation(e) for e in entries):  # not a cache or an attestation
            found.setdefault(manifest.digest, []).append(tag)
    return found


def render(facts: Sequence[IndexFacts], as_json: bool, *, labels: bool = False) -> str:
    """The indexes as text (labels: every label, per index and per platform) or JSON."""
    if as_json:
        return json.dumps([asdict(f) for f in facts], indent=2)
    lines = []
    for f in facts:
        lines.append(f.ref if f.ref.endswith(f"@{f.digest}") else f"{f.ref}  {f.digest}")
        if f.stand_in_of:
            lines.append(
                f"  STAND-IN base: Debian 12 from bases-bootstrap, NOT {f.stand_in_of} "
                "(a test fixture: never a release)"
            )
        if f.tags:
            lines.append(f"  tags: {', '.join(sorted(f.tags))}")
        lines.append(
            f"  created {f.created}  revision {f.revision[:12]}  python {f.python}  "
            f"torch {f.torch}  cuda {f.cuda}"
        )
        if labels:
            lines.append("  labels (every platform):")
            lines += [f"    {k}={v}" for k, v in f.labels.items()]
        for i in f.images:
            lines.append(
                f"  {i.platform:<13} {i.digest}  {i.compressed_mb:>9.1f} MB  "
                f"{len(i.layers_mb)} layers"
            )
            if labels:
                lines += [f"    {k}={v}" for k, v in sorted(i.labels.items())]
                lines.append(f"    sbom {i.sbom or 'none attached'}")
                lines.append(f"    provenance {i.provenance or 'none in the index'}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PlatformDiff:
    platform: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # "name a -> b"
    size_mb: tuple[float, float]
    layers_changed: int  # layers of B not in A (what a pull of B fetches on top of A)


def diff_packages(a: Mapping[str, str], b: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    """(added, removed, changed) between two {name: version} sets, names normalised."""
    na = {normalize_name(k): v for k, v in a.items()}
    nb = {normalize_name(k): v for k, v in b.items()}
    added = tuple(f"{n} {nb[n]}" for n in sorted(nb.keys() - na.keys()))
    removed = tuple(f"{n} {na[n]}" for n in sorted(na.keys() - nb.keys()))
    changed = tuple(
        f"{n} {na[n]} -> {nb[n]}" for n in sorted(na.keys() & nb.keys()) if na[n] != nb[n]
    )
    return added, removed, changed


def diff_indexes(
    client: RegistryClient, a: IndexFacts, b: IndexFacts, name_a: str, name_b: str
) -> list[PlatformDiff]:
    """Per platform both hold: the packages (each image's own, probed) and the sizes."""
    out = []
    images_b = {i.platform: i for i in b.images}
    for ia in a.images:
        ib = images_b.get(ia.platform)
        if ib is None:
            continue
        pa = engine.run_probe(f"{name_a}@{ia.digest}", ia.platform).report.packages
        pb = engine.run_probe(f"{name_b}@{ib.digest}", ib.platform).report.packages
        added, removed, changed = diff_packages(pa, pb)
        repo_a, repo_b = name_a.split("/", 1)[1], name_b.split("/", 1)[1]
        layers_a = _layer_digests(client, repo_a, ia.digest)
        new_layers = [d for d in _layer_digests(client, repo_b, ib.digest) if d not in layers_a]
        out.append(
            PlatformDiff(
                ia.platform,
                added,
                removed,
                changed,
                (ia.compressed_mb, ib.compressed_mb),
                len(new_layers),
            )
        )
    return out


def render_diff(diffs: Sequence[PlatformDiff], a: str, b: str) -> str:
    """Markdown to paste into the pull request that updates a base."""
    lines = [f"### {a} -> {b}", ""]
    for d in diffs:
        delta = d.size_mb[1] - d.size_mb[0]
        lines.append(
            f"**{d.platform}**: {d.size_mb[0]:.1f} MB -> {d.size_mb[1]:.1f} MB "
            f"({delta:+.1f} MB), {d.layers_changed} new layer(s)"
        )
        for kind, items in (("added", d.added), ("removed", d.removed), ("changed", d.changed)):
            lines += [f"- {kind}: {item}" for item in items]
        if not (d.added or d.removed or d.changed):
            lines.append("- packages: the same")
        lines.append("")
    return "\n".join(lines)


def _layer_digests(client: RegistryClient, repo: str, digest: str) -> set[str]:
    return {layer["digest"] for layer in client.get_manifest(repo, digest).json.get("layers", [])}


def _mb(size: int) -> float:
    return round(size / 1e6, 1)


def list_indexes(client: RegistryClient, registry: str, repository: str) -> list[IndexFacts]:
    """`invoke images`: every index in the repository, newest first, with all its tags. A
    cell's single-platform image (its `build-*` tag: what merge reads) is not an image a
    service builds on: counted, not listed."""
    facts, cells = [], 0
    for digest, tags in indexes_by_digest(client, repository).items():
        named = [t for t in tags if not t.startswith(CELL_TAG_PREFIX)]
        if not named:
            cells += 1
            continue
        facts.append(describe(client, parse_ref(f"{registry}/{repository}@{digest}"), named))
    if cells:
        log.info(
            f"{cells} cell image(s) left out: single-platform, tagged {CELL_TAG_PREFIX}*, "
            "what merge reads (`inspect REPO:TAG` shows one)"
        )
    return sorted(facts, key=lambda f: f.created, reverse=True)


def compare(client: RegistryClient, a: ImageRef, b: ImageRef) -> str:
    """`invoke diff A B` (both in one registry): the Markdown of diff_indexes."""
    facts_a, facts_b = describe(client, a), describe(client, b)
    return render_diff(diff_indexes(client, facts_a, facts_b, a.name, b.name), str(a), str(b))


def sbom_of(client: RegistryClient, ref: ImageRef) -> str:
    """`inspect REF --sbom`: the SBOM of each platform image of ref (a platform image's own
    digest: its document; an index: a JSON object by platform). An image without one is an
    error that says so."""
    documents = {}
    for platform in sorted(platform_images(client, ref)[1]):
        found = attached(client, ref, platform)
        if not found.document:
            raise no_sbom(ref, found)
        documents[platform] = json.loads(found.document)
    if len(documents) == 1:
        return json.dumps(next(iter(documents.values())), indent=2, sort_keys=True)
    return json.dumps(documents, indent=2, sort_keys=True)


def show(client: RegistryClient, ref: ImageRef, as_json: bool, sbom: bool) -> str:
    """`./ai inspect`: the index with every label (or, with sbom, its SBOMs)."""
    if sbom:
        return sbom_of(client, ref)
    return render([inspect_index(client, ref)], as_json, labels=True)
