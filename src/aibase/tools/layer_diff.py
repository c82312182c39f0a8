"""What differs between two layer blobs: their tar entries (name, type, size, mode, owner,
mtime, link target, content hash) side by side, in order, and the first one that differs,
in words (rebuild-check names it). Pure: blobs in, a sentence out.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from aibase.audit.contents import layer_stream


@dataclass(frozen=True)
class TarEntry:
    name: str
    kind: str  # file, dir, symlink, hardlink, other
    size: int
    mode: str  # octal, as ls -l's numbers
    owner: str  # uid:gid
    mtime: int  # seconds since the epoch
    link: str  # a link's target; "" otherwise
    sha256: str  # a regular file's content; "" otherwise


_KINDS = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}


def tar_entries(blob: bytes) -> tuple[TarEntry, ...]:
    """A layer's entries in the order the tar holds them (gzip, zstd or plain)."""
    return tuple(_entries(blob))


def _entries(blob: bytes) -> Iterator[TarEntry]:
    with tarfile.open(fileobj=layer_stream(blob), mode="r|*") as tar:
        for m in tar:
            content = tar.extractfile(m) if m.isreg() else None
            digest = hashlib.sha256(content.read()).hexdigest() if content else ""
            kind = "hardlink" if m.islnk() else _KINDS.get(m.type, "other")
            yield TarEntry(
                name=m.name,
                kind=kind,
                size=m.size,
                mode=f"{m.mode:o}",
                owner=f"{m.uid}:{m.gid}",
                mtime=int(m.mtime),
                link=m.linkname,
                sha256=digest,
            )


def first_difference(published: Sequence[TarEntry], rebuilt: Sequence[TarEntry]) -> str:
    """The first entry that differs and how, e.g. `opt/venv/x.py: mtime 1970-01-01T00:00:00Z
    -> 2026-12-03T17:00:00Z`; "" when every entry is the same (then only the compression
    differs)."""
    for old, new in zip(published, rebuilt, strict=False):
        if old.name != new.name:
            return f"{old.name}: in its place the rebuild has {new.name}"
        changed = [f.name for f in fields(TarEntry) if getattr(old, f.name) != getattr(new, f.name)]
        if changed:
            return f"{old.name}: " + ", ".join(_change(name, old, new) for name in changed)
    if len(published) > len(rebuilt):
        return f"{published[len(rebuilt)].name}: missing from the rebuild"
    if len(rebuilt) > len(published):
        return f"{rebuilt[len(published)].name}: only in the rebuild"
    return ""


def _change(name: str, old: TarEntry, new: TarEntry) -> str:
    if name == "sha256":
        return "content"
    a, b = getattr(old, name), getattr(new, name)
    if name == "mtime":
        a, b = _when(a), _when(b)
    return f"{name} {a} -> {b}"


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
