"""The SBOM of one platform image, in CycloneDX 1.5 JSON (pure): made from what the image's
layers hold (audit.contents), read back, and compared with them again.

It lists every Python distribution installed (name, version, its metadata directory, the
licence its metadata names, the installed wheel's tag, and the lock's hashes for that pin:
uv installed the file matching one of them), every OS package dpkg holds as installed, and
the base image (its digest as the build resolved it, from the provenance). The document is
deterministic: the same image gives the same bytes, so attaching it twice adds nothing.

Which attached SBOM to believe: only one whose artifact refers to the image (its manifest's
subject) and whose document describes that image (its digest); when several do, they must
agree. Anything else is a problem, never a choice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aibase.audit.contents import Contents, OsPackage, PythonDist
from aibase.names import normalize_name

SBOM_TYPE = "application/vnd.cyclonedx+json"  # the artifact type and its layer's media type
SPEC = "1.5"
TOOL = "ai-base"
P = "aibase:"  # our property names
IMAGE_REF, BASE_REF = "image", "base-image"
SHOWN = 5  # differences named per problem


@dataclass(frozen=True)
class ImageId:
    name: str  # `localhost:5000/cerebral/ai-base`
    digest: str  # the platform image's manifest digest
    platform: str
    revision: str
    created: str  # the image's created label (the document's timestamp)


@dataclass(frozen=True)
class BaseImage:
    name: str  # its repository: `localhost:5000/mirror/library/python`
    reference: str  # as images.toml names it: `python:3.11-slim` (or its mirror)
    digest: str  # what it resolved to (an index, for a multi-platform base)
    platform: str


Locked = Mapping[str, tuple[str, tuple[str, ...]]]  # normalized name -> (version, sha256s)


def _prop(name: str, value: str | None) -> list[dict[str, str]]:
    return [{"name": P + name, "value": value}] if value else []


def _python(dist: PythonDist, locked: Locked) -> dict[str, Any]:
    name = normalize_name(dist.name)
    version, hashes = locked.get(name, ("", ()))
    hashes = hashes if version == dist.version else ()
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": f"pypi:{dist.path}",
        "name": dist.name,
        "version": dist.version,
        "purl": f"pkg:pypi/{name}@{quote(dist.version)}",
    }
    if dist.licence:
        component["licenses"] = [{"expression": dist.licence}]
    elif dist.licence_name:
        component["licenses"] = [{"license": {"name": dist.licence_name}}]
    if len(hashes) == 1:
        component["hashes"] = [{"alg": "SHA-256", "content": hashes[0]}]
    component["properties"] = [
        *_prop("path", dist.path),
        *_prop("wheel-tag", dist.wheel_tag),
        *_prop("lock-sha256", ",".join(hashes)),
    ]
    return component


def _deb(package: OsPackage, os_id: str) -> dict[str, Any]:
    distro, _, release = os_id.partition(" ")
    qualifiers = f"arch={package.arch}" + (f"&distro={distro}-{release}" if release else "")
    purl = f"pkg:deb/{distro or 'unknown'}/{package.name}@{quote(package.version)}?{qualifiers}"
    return {
        "type": "library",
        "bom-ref": f"deb:{package.name}:{package.arch}",
        "name": package.name,
        "version": package.version,
        "purl": purl,
        "properties": _prop("arch", package.arch),
    }


def _oci_purl(name: str, digest: str, platform: str) -> str:
    arch = platform.split("/")[1] if "/" in platform else ""
    last = name.rsplit("/", 1)[-1].lower()
    return f"pkg:oci/{last}@{quote(digest)}?arch={arch}&repository_url={quote(name, safe='/:')}"


def make_sbom(
    contents: Contents, image: ImageId, locked: Locked, base: BaseImage | None
) -> dict[str, Any]:
    """The CycloneDX document of one platform image."""
    components: list[dict[str, Any]] = []
    if base is not None:
        components.append(
            {
                "type": "container",
                "bom-ref": BASE_REF,
                "name": base.name,
                "version": base.digest,
                "purl": _oci_purl(base.name, base.digest, base.platform),
                "hashes": [{"alg": "SHA-256", "content": base.digest.removeprefix("sha256:")}],
                "properties": [
                    *_prop("role", "base"),
                    *_prop("reference", base.reference),
                    *_prop("platform", base.platform),
                ],
            }
        )
    components += [_python(d, locked) for d in contents.dists]
    components += [_deb(p, contents.os_id) for p in contents.os_packages]
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, image.digest)}",
        "version": 1,
        "metadata": {
            "timestamp": image.created,
            "tools": {"components": [{"type": "application", "name": TOOL}]},
            "component": {
                "type": "container",
                "bom-ref": IMAGE_REF,
                "name": image.name,
                "version": image.digest,
                "purl": _oci_purl(image.name, image.digest, image.platform),
                "hashes": [{"alg": "SHA-256", "content": image.digest.removeprefix("sha256:")}],
                "properties": [
                    *_prop("platform", image.platform),
                    *_prop("revision", image.revision),
                    *_prop("os", contents.os_id),
                ],
            },
        },
        "components": components,
        "dependencies": [{"ref": IMAGE_REF, "dependsOn": [c["bom-ref"] for c in components]}],
    }


def sbom_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class SbomFacts:
    """What an SBOM says, in the shape the checks compare."""

    image_digest: str
    platform: str
    python: frozenset[tuple[str, str, str]]  # (normalized name, version, metadata path)
    os_packages: frozenset[tuple[str, str, str]]  # (name, version, arch)
    base_digest: str  # "" when it names no base


def _props(component: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(p.get("name", "")).removeprefix(P): str(p.get("value", ""))
        for p in component.get("properties") or []
    }


def _spec_version(doc: Any) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(doc.get("specVersion", "0")).split("."))
    except (AttributeError, ValueError):
        return (0,)


def read_sbom(payload: bytes) -> SbomFacts:
    """The facts of an SBOM this tool made; ValueError when it is not one."""
    try:
        doc = json.loads(payload)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise ValueError("not a CycloneDX document")
    if _spec_version(doc) < (1, 5):
        raise ValueError(f"not CycloneDX {SPEC} or newer")
    try:
        image = doc["metadata"]["component"]
        python, debs, base = set(), set(), ""
        for c in doc.get("components") or []:
            purl, props = str(c.get("purl", "")), _props(c)
            if purl.startswith("pkg:pypi/"):
                python.add((normalize_name(c["name"]), str(c["version"]), props.get("path", "")))
            elif purl.startswith("pkg:deb/"):
                debs.add((str(c["name"]), str(c["version"]), props.get("arch", "")))
            elif c.get("bom-ref") == BASE_REF:
                base = str(c.get("version", ""))
        return SbomFacts(
            str(image["version"]),
            _props(image).get("platform", ""),
            frozenset(python),
            frozenset(debs),
            base,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not of this tool's shape ({type(exc).__name__}: {exc})") from None


def _named(items: Sequence[tuple[str, str, str]]) -> str:
    shown = ", ".join(f"{n} {v} ({x})" for n, v, x in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def compare_sbom(facts: SbomFacts, contents: Contents) -> list[str]:
    """How an SBOM differs from what the image's layers hold (nothing: [])."""
    held_python = {d.key for d in contents.dists}
    held_os = {(p.name, p.version, p.arch) for p in contents.os_packages}
    problems = []
    for kind, listed, held in (
        ("Python distribution", facts.python, held_python),
        ("OS package", facts.os_packages, held_os),
    ):
        unlisted = sorted(held - listed)
        if unlisted:
            problems.append(f"does not list the {kind}(s) the image holds: {_named(unlisted)}")
        absent = sorted(listed - held)
        if absent:
            problems.append(f"lists {kind}(s) the image does not hold: {_named(absent)}")
    return problems


Chosen = tuple[str, SbomFacts] | None  # (artifact digest, what it says)


def choose_sbom(
    image_digest: str, candidates: Sequence[tuple[str, str, bytes]]
) -> tuple[Chosen, list[str]]:
    """From the attached SBOMs (artifact digest, the subject its manifest names, payload):
    the one to believe, and a problem for each that cannot be believed. Several that agree
    are one (the first); several that disagree are all refused."""
    good: list[tuple[str, SbomFacts]] = []
    problems = []
    for digest, subject, payload in candidates:
        try:
            facts = read_sbom(payload)
        except ValueError as exc:
            problems.append(f"SBOM {digest} cannot be read: {exc}")
            continue
        if subject != image_digest:
            problems.append(f"SBOM {digest} refers to {subject or 'no image'}, not {image_digest}")
        elif facts.image_digest != image_digest:
            problems.append(
                f"SBOM {digest} describes another image ({facts.image_digest}), not {image_digest}"
            )
        else:
            good.append((digest, facts))
    contents = {(f.python, f.os_packages, f.base_digest) for _, f in good}
    if len(contents) > 1:
        problems.append(
            f"{len(good)} SBOMs refer to {image_digest} and disagree "
            f"({', '.join(d for d, _ in good)}): refusing all of them"
        )
        return None, problems
    return (good[0] if good else None), problems


def requirements_of(facts: SbomFacts) -> str:
    """`name==version` lines of the Python distributions an SBOM lists (for pip-audit)."""
    return "".join(f"{n}=={v}\n" for n, v in sorted({(n, v) for n, v, _ in facts.python}))
