"""What an image holds, from its layers' tars (pure; `audit.attached` reads the layers from
the registry): every Python distribution (its `.dist-info` or `.egg-info` metadata), every
OS package (dpkg's status) and the OS release. Later layers win; whiteouts remove what lower
layers put there, as the runtime's overlay would. The SBOM is made from this, and verify
reads it again to check an SBOM against the image it claims to describe.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import BinaryIO

import zstandard

from aibase.names import normalize_name

DPKG_STATUS = "var/lib/dpkg/status"
OS_RELEASE = ("usr/lib/os-release", "etc/os-release")
SITE_DIRS = ("site-packages", "dist-packages")
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_LICENCE = 200  # a licence field holding the whole licence text is not an identifier


@dataclass(frozen=True)
class PythonDist:
    name: str  # as its metadata spells it
    version: str
    path: str  # its metadata, absolute: /opt/venv/lib/python3.11/site-packages/x.dist-info
    licence: str | None = None  # the metadata's SPDX expression (License-Expression)
    licence_name: str | None = None  # else its short License field, or its classifiers
    wheel_tag: str | None = None  # the installed wheel's first tag (its WHEEL file)

    @property
    def key(self) -> tuple[str, str, str]:
        return normalize_name(self.name), self.version, self.path


@dataclass(frozen=True)
class OsPackage:
    name: str
    version: str
    arch: str


@dataclass(frozen=True)
class LayerFacts:
    """What one layer adds or removes."""

    dists: tuple[PythonDist, ...] = ()
    dpkg_status: str | None = None
    os_release: str | None = None
    removed: tuple[str, ...] = ()  # whiteouts: absolute paths
    opaque: tuple[str, ...] = ()  # directories whose lower content is hidden


@dataclass(frozen=True)
class Contents:
    dists: tuple[PythonDist, ...]  # sorted by path
    os_packages: tuple[OsPackage, ...]  # sorted by name, arch
    os_id: str  # `debian 12`, from os-release; "" when there is none


def _metadata_dir(name: str) -> tuple[str, str] | None:
    """(directory, file) when `name` is a distribution's metadata file in a site directory."""
    parent, base = posixpath.split(name)
    if posixpath.basename(posixpath.dirname(parent)) not in SITE_DIRS:
        if not (base.endswith(".egg-info") and posixpath.basename(parent) in SITE_DIRS):
            return None
        return name, "PKG-INFO"  # an egg-info file, not a directory
    if parent.endswith(".dist-info") and base in ("METADATA", "WHEEL"):
        return parent, base
    if parent.endswith(".egg-info") and base == "PKG-INFO":
        return parent, base
    return None


def parse_metadata(text: str) -> tuple[str, str, str | None, str | None]:
    """(name, version, licence expression, licence name) from METADATA / PKG-INFO headers."""
    headers = HeaderParser().parsestr(text, headersonly=True)
    expression = str(headers.get("License-Expression") or "").strip() or None
    name = str(headers.get("License") or "").strip()
    if "\n" in name or len(name) > MAX_LICENCE or name == "UNKNOWN":
        name = ""  # the licence's whole text, or nothing said: the classifiers may say more
    if not name:
        named = [c for c in headers.get_all("Classifier") or [] if c.startswith("License ::")]
        name = ", ".join(sorted({c.split("::")[-1].strip() for c in named}))
    return (
        str(headers.get("Name") or "").strip(),
        str(headers.get("Version") or "").strip(),
        expression,
        None if expression else (name or None),
    )


def _member_path(raw: str) -> str:
    """A tar member's path without `./` or `/` in front, normalised."""
    name = raw[2:] if raw.startswith("./") else raw
    return posixpath.normpath(name.lstrip("/")) if name.strip("/") else ""


def layer_stream(blob: bytes) -> BinaryIO:
    """A layer blob as a stream `tarfile.open(mode="r|*")` reads: gzip and plain as they
    are, zstd (--compression zstd) decompressed, since tarfile does not know it."""
    raw: BinaryIO = io.BytesIO(blob)
    return zstandard.ZstdDecompressor().stream_reader(raw) if blob.startswith(ZSTD_MAGIC) else raw


def read_layer(blob: bytes) -> LayerFacts:
    """One layer's tar (gzip, zstd or plain): the metadata files, dpkg status, os-release and
    whiteouts in it."""
    files: dict[str, dict[str, str]] = {}
    dpkg = release = None
    removed: list[str] = []
    opaque: list[str] = []
    with tarfile.open(fileobj=layer_stream(blob), mode="r|*") as tar:
        for member in tar:
            name = _member_path(member.name)
            parent, base = posixpath.split(name)
            if base == OPAQUE:
                opaque.append("/" + parent)
                continue
            if base.startswith(WHITEOUT):
                removed.append("/" + posixpath.join(parent, base[len(WHITEOUT) :]))
                continue
            if not member.isfile():
                continue
            wanted = _metadata_dir(name)
            if wanted is None and name != DPKG_STATUS and name not in OS_RELEASE:
                continue
            handle = tar.extractfile(member)
            text = handle.read().decode("utf-8", "replace") if handle else ""
            if name == DPKG_STATUS:
                dpkg = text
            elif name in OS_RELEASE:
                release = release if name == OS_RELEASE[1] and release else text
            elif wanted is not None:
                files.setdefault("/" + wanted[0], {})[wanted[1]] = text
    dists = []
    for path, found in sorted(files.items()):
        if "METADATA" not in found and "PKG-INFO" not in found:
            continue  # a WHEEL file alone: not an installed distribution
        name, version, spdx, named = parse_metadata(found.get("METADATA") or found["PKG-INFO"])
        tags = HeaderParser().parsestr(found.get("WHEEL", "")).get_all("Tag") or []
        dists.append(PythonDist(name, version, path, spdx, named, tags[0] if tags else None))
    return LayerFacts(tuple(dists), dpkg, release, tuple(removed), tuple(opaque))


def _gone(path: str, layer: LayerFacts) -> bool:
    """Whether this layer's whiteouts hide `path` (a file or directory of a lower layer)."""
    return any(path == w or path.startswith(w + "/") for w in layer.removed) or any(
        path.startswith(o + "/") for o in layer.opaque
    )


def stack_layers(layers: Iterable[LayerFacts]) -> Contents:
    """The image's view: layers applied base first, each one's whiteouts before its files."""
    dists: dict[str, PythonDist] = {}
    status: str | None = None
    release: str | None = None
    for layer in layers:
        for path in [p for p in dists if _gone(p, layer) or _gone(p + "/METADATA", layer)]:
            del dists[path]
        if _gone("/" + DPKG_STATUS, layer):
            status = None
        dists.update({d.path: d for d in layer.dists})
        status = layer.dpkg_status if layer.dpkg_status is not None else status
        release = layer.os_release if layer.os_release is not None else release
    return Contents(
        tuple(dists[p] for p in sorted(dists)), parse_dpkg_status(status or ""), os_id(release)
    )


def parse_dpkg_status(text: str) -> tuple[OsPackage, ...]:
    """The packages dpkg holds as installed ("install ok installed"), sorted."""
    out = set()
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line[:1].isspace():
                fields[key.strip()] = value.strip()
        if fields.get("Status", "").endswith(" installed") and fields.get("Package"):
            arch = fields.get("Architecture", "")
            out.add(OsPackage(fields["Package"], fields.get("Version", ""), arch))
    return tuple(sorted(out, key=lambda p: (p.name, p.arch)))


def os_id(release: str | None) -> str:
    """`debian 12` from os-release's ID and VERSION_ID; "" when unknown."""
    fields: Mapping[str, str] = {
        k: v.strip().strip('"')
        for k, _, v in (line.partition("=") for line in (release or "").splitlines())
    }
    return " ".join(x for x in (fields.get("ID", ""), fields.get("VERSION_ID", "")) if x)
