"""What verify checks besides the index: each platform image's SBOM and its provenance.

The SBOM is an OCI artifact referring to the image (anyone who may push can add one): it
counts only when its manifest's subject and its document both name the image, every one so
attached agrees, and what it lists is what the image's layers hold, read again here. The
provenance is BuildKit's SLSA statement inside the index (the index digest covers it; a
referrer claiming to be provenance is never read): it must describe the image, name the
revision the labels name and this repository, and hold no build secret's value.

Reading (`gather_evidence`, registry I/O) and checking (`check_evidence`, pure) are apart,
and the check names every problem at once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aibase.audit.attached import read_contents
from aibase.audit.contents import Contents
from aibase.audit.provenance import (
    Provenance,
    is_remote,
    leaked_secrets,
    read_provenance,
    same_repository,
    secret_markers,
)
from aibase.audit.sbom import SBOM_TYPE, SbomFacts, choose_sbom, compare_sbom
from aibase.build.plan import BuildContext
from aibase.config.model import Config
from aibase.errors import RegistryError
from aibase.registry.client import RegistryClient
from aibase.registry.credentials import load_credentials
from aibase.registry.oci import Manifest, entry_platform, is_attestation
from aibase.registry.referrers import index_attestations, read_referrers

SOURCE, REVISION = "org.opencontainers.image.source", "org.opencontainers.image.revision"
Markers = Sequence[tuple[str, str]]  # (what the secret is, its value)


@dataclass(frozen=True)
class Evidence:
    platform: str
    image: str  # the platform image's digest
    sboms: tuple[tuple[str, str, bytes], ...]  # (artifact, the subject it names, document)
    provenance: tuple[tuple[str, bytes], ...]  # (attestation manifest, in-toto statement)
    contents: Contents | None  # what its layers hold; None when they could not be read
    unreadable: str = ""  # why not


@dataclass(frozen=True)
class Checked:
    problems: tuple[str, ...]
    notes: tuple[str, ...]  # worth a line in the log, not a failure
    sbom: Mapping[str, str]  # image digest -> the SBOM artifact believed
    provenance: Mapping[str, str]  # image digest -> its attestation manifest


def gather_evidence(client: RegistryClient, repo: str, index: Manifest) -> list[Evidence]:
    """For each platform image of the index: its attached SBOMs, its provenance and what
    its layers hold."""
    found = []
    for entry in index.json.get("manifests", []) if index.is_index else []:
        if is_attestation(entry):
            continue
        digest = str(entry["digest"])
        sboms = tuple(
            (r.digest, r.subject, r.payload)
            for r in read_referrers(client, repo, digest, SBOM_TYPE)
        )
        statements = tuple(
            (a.digest, a.statement) for a in index_attestations(client, repo, index, digest)
        )
        contents, why = None, ""
        try:
            contents = read_contents(client, repo, client.get_manifest(repo, digest))
        except RegistryError as exc:
            why = exc.message
        found.append(Evidence(entry_platform(entry), digest, sboms, statements, contents, why))
    return found


def check_evidence(
    config: Config,
    evidence: Sequence[Evidence],
    labels: Mapping[str, Mapping[str, str]],
    secrets: Markers = (),
) -> Checked:
    """Every problem with the SBOMs and provenance of the images (labels: by image digest)."""
    problems: list[str] = []
    notes: list[str] = []
    sboms: dict[str, str] = {}
    provenances: dict[str, str] = {}
    for ev in evidence:
        read: list[Provenance] = []
        for digest, statement in ev.provenance:
            where = f"{ev.platform}: provenance {digest}"
            try:
                body = json.loads(statement)
                prov = read_provenance(body)
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{where} is not SLSA provenance ({type(exc).__name__}: {exc})")
                continue
            read.append(prov)
            said = _check_provenance(config, ev, prov, labels.get(ev.image) or {}, where)
            leaked = leaked_secrets(body, secrets)
            if leaked:
                said.append(
                    f"{where} holds the value of {', '.join(leaked)}: rotate it, and pass it "
                    "only as a BuildKit secret (never a build argument or label)"
                )
            problems += said
            if not is_remote(prov.vcs_source):
                notes.append(
                    f"{where}: built in a checkout without a remote URL "
                    f"({prov.vcs_source or 'no origin'}): the revision is all it names"
                )
            if not said:
                provenances[ev.image] = digest
        if not ev.provenance:
            problems.append(
                f"{ev.platform}: no SLSA provenance in the index for {ev.image}: build the cell "
                "with `./ai build --push` or `./ai build-all` (buildx --provenance mode=max)"
            )
        chosen, said = choose_sbom(ev.image, ev.sboms)
        problems += [f"{ev.platform}: {p}" for p in said]
        if chosen is None and not said:
            problems.append(
                f"{ev.platform}: no SBOM refers to {ev.image}: build the cell with `./ai build "
                "--push` or `./ai build-all` (each cell attaches its SBOM); an image without "
                "one is never promoted"
            )
        if chosen is not None:
            said = _check_sbom(ev, chosen[1], read)
            problems += [f"{ev.platform}: SBOM {chosen[0]} {p}" for p in said]
            if not said:
                sboms[ev.image] = chosen[0]
    return Checked(tuple(problems), tuple(notes), sboms, provenances)


def _check_sbom(ev: Evidence, facts: SbomFacts, provenance: Sequence[Provenance]) -> list[str]:
    if ev.contents is None:
        return [f"cannot be checked: the image's layers could not be read ({ev.unreadable})"]
    problems = compare_sbom(facts, ev.contents)
    if facts.platform != ev.platform:
        problems.append(f"says platform {facts.platform or 'none'}, not {ev.platform}")
    resolved = {m.digest for p in provenance for m in p.materials}
    if provenance and facts.base_digest not in resolved:
        problems.append(
            f"names the base {facts.base_digest or '(none)'}, which the provenance's "
            f"materials do not ({', '.join(sorted(resolved)) or 'none'})"
        )
    return problems


def _check_provenance(
    config: Config, ev: Evidence, prov: Provenance, labels: Mapping[str, str], where: str
) -> list[str]:
    """The statement describes the image, names the labels' revision and this repository."""
    problems = []
    if ev.image not in prov.subjects:
        described = ", ".join(prov.subjects) or "nothing"
        problems.append(f"{where} describes {described}, not {ev.image}")
    revision = labels.get(REVISION, "")
    if not prov.vcs_revision or prov.vcs_revision != revision:
        named = prov.vcs_revision or "(none)"
        problems.append(f"{where} names revision {named}, the labels {revision or '(none)'}")
    recorded = prov.args.get(f"label:{SOURCE}")
    if recorded is None:
        problems.append(
            f"{where} does not record the build's parameters (mode=min?): build with "
            "--provenance mode=max, as `./ai build` does"
        )
    elif recorded != config.source:
        problems.append(f"{where} records source {recorded}, not this repository {config.source}")
    if is_remote(prov.vcs_source) and not same_repository(prov.vcs_source, config.source):
        problems.append(f"{where}: built from {prov.vcs_source}, not {config.source}")
    return problems


def build_secrets(build: BuildContext, registry: str) -> list[tuple[str, str]]:
    """What must never appear in a provenance: the CA bundle, the index URL file and the
    target registry's credentials (as values to look for, each named by what it is)."""
    markers: list[tuple[str, str]] = []
    files = (("the CA bundle", build.ca_bundle), ("the index URL file", build.pip_index_url_file))
    for what, path in files:
        if path is not None and path.is_file():
            markers += secret_markers(what, path.read_text(errors="replace"))
    creds = load_credentials(registry)
    if creds is not None:
        pair = f"{creds.username}:{creds.password}"
        for value in (creds.password, pair, base64.b64encode(pair.encode()).decode()):
            markers += secret_markers("the registry credential", value)
    return markers
