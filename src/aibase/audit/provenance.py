"""BuildKit's SLSA provenance, read (pure): what it says about the source, the revision and
the images the build used, and whether a build secret shows up anywhere in it.

BuildKit writes an in-toto statement per image (SLSA v0.2 by default, v1 on request); with
`mode=max` it records the build's parameters (labels and build args among them) but of the
secrets only their ids. The vcs facts come from buildx: the checkout's revision and its
`origin` remote (a URL on CI; a path, or nothing, in a local clone).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

PROVENANCE_TYPES = ("https://slsa.dev/provenance/v0.2", "https://slsa.dev/provenance/v1")
IN_TOTO = "application/vnd.in-toto+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
BUILDKIT_METADATA = "https://mobyproject.org/buildkit@v1#metadata"
SCP = r"[\w.-]+@([\w.-]+):(.+)"  # git's scp-style address: git@github.com:o/r.git
PEM = r"-----BEGIN[^-]*-----[^-]+"  # one certificate of a bundle, up to its END line
MIN_SECRET = 8  # shorter values would match by chance; no real token is this short


@dataclass(frozen=True)
class Material:
    name: str  # `localhost:5000/mirror/library/python` (as the purl names it)
    reference: str  # the tag (or digest) the build asked for
    platform: str  # `linux/amd64`; "" when the purl names none
    digest: str  # what it resolved to: `sha256:...`


@dataclass(frozen=True)
class Provenance:
    predicate_type: str
    subjects: tuple[str, ...]  # `sha256:...` of each subject
    vcs_source: str  # "" when the build recorded none
    vcs_revision: str
    args: Mapping[str, str]  # the frontend's parameters (mode=max: labels, build args)
    materials: tuple[Material, ...]
    statement: Mapping[str, Any]


def read_provenance(statement: Mapping[str, Any]) -> Provenance:
    """The facts of an in-toto provenance statement (v0.2 or v1); KeyError/TypeError/
    ValueError when it is not one."""
    kind = str(statement["predicateType"])
    if kind not in PROVENANCE_TYPES:
        raise ValueError(f"predicate type {kind!r} is not SLSA provenance")
    predicate = statement["predicate"]
    subjects = tuple(f"sha256:{s['digest']['sha256']}" for s in statement.get("subject") or [])
    if kind.endswith("v0.2"):
        metadata = predicate.get("metadata") or {}
        args = (predicate.get("invocation") or {}).get("parameters", {}).get("args") or {}
        deps = [(m.get("uri", ""), m.get("digest") or {}) for m in predicate.get("materials") or []]
    else:
        metadata = (predicate.get("runDetails") or {}).get("metadata") or {}
        external = (predicate.get("buildDefinition") or {}).get("externalParameters") or {}
        args = (external.get("request") or {}).get("args") or {}
        resolved = (predicate.get("buildDefinition") or {}).get("resolvedDependencies") or []
        deps = [(m.get("uri", ""), m.get("digest") or {}) for m in resolved]
    vcs = (metadata.get(BUILDKIT_METADATA) or {}).get("vcs") or {}
    materials = tuple(m for m in (_material(uri, digest) for uri, digest in deps) if m)
    return Provenance(
        kind,
        subjects,
        str(vcs.get("source") or ""),
        str(vcs.get("revision") or ""),
        {str(k): str(v) for k, v in args.items()},
        materials,
        statement,
    )


def _material(uri: str, digest: Mapping[str, str]) -> Material | None:
    """An image the build used, from its purl (`pkg:docker/NAME@REF?platform=P`)."""
    if not uri.startswith("pkg:docker/") or "sha256" not in digest:
        return None
    path, _, query = uri.removeprefix("pkg:docker/").partition("?")
    name, _, reference = unquote(path).rpartition("@")
    qualifiers = dict(q.partition("=")[::2] for q in query.split("&") if q)
    platform = unquote(qualifiers.get("platform", ""))
    return Material(
        name or reference, reference if name else "", platform, f"sha256:{digest['sha256']}"
    )


def same_repository(source: str, expected: str) -> bool:
    """Whether a vcs source names the expected repository: `git@github.com:o/r.git`,
    `https://github.com/o/r` and `https://token@github.com/o/r.git` are one repository."""
    return _repository_id(source) == _repository_id(expected)


def _repository_id(url: str) -> str:
    url = url.strip()
    scp = re.fullmatch(SCP, url)
    if scp:
        host, path = scp.groups()
    else:
        parts = urlsplit(url)
        host, path = (parts.hostname or ""), parts.path
    return f"{host.lower()}/{path.strip('/').removesuffix('.git').lower()}"


def is_remote(source: str) -> bool:
    """A URL (or scp-style address) of a remote repository, not a local path: a `file://`
    URL is a path too (a clone of a clone on the same machine, as the workflow replay
    makes; on GitHub the checkout's origin is the repository's https URL)."""
    if source.startswith("file://"):
        return False
    return bool(
        re.match(r"^[a-z][a-z0-9+.-]*://", source) or re.fullmatch(r"[\w.-]+@[\w.-]+:.+", source)
    )


def secret_markers(name: str, text: str) -> list[tuple[str, str]]:
    """(what, value) pairs to look for: the secret as a whole, each PEM block of a bundle,
    and the user-info of a URL (an index URL's token)."""
    text = text.strip()
    found = [(name, text)]
    found += [
        (f"{name} (a certificate)", b) for b in re.findall(r"-----BEGIN[^-]*-----[^-]+", text)
    ]
    for line in text.splitlines():
        userinfo = urlsplit(line.strip()).netloc.rpartition("@")[0]
        if userinfo:
            found += [(f"{name} (its credential)", userinfo)]
            found += [(f"{name} (its token)", p) for p in userinfo.split(":")[1:2]]
    return [(what, value) for what, value in found if len(value) >= MIN_SECRET]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, Sequence):
        for item in node:
            yield from _strings(item)


def leaked_secrets(statement: Mapping[str, Any], markers: Sequence[tuple[str, str]]) -> list[str]:
    """What each secret is (never its value), for every one that appears in the statement."""
    texts = list(_strings(statement))
    return sorted({what for what, value in markers if any(value in t for t in texts)})
