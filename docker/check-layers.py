#!/usr/bin/env python3
"""check-layers GROUPS_DIR [CACHE_DIR]: no two installed distributions may write the same file
with different content, whether they share a layer group (the later install would win) or not
(the later COPY would). Each group is mounted at GROUPS_DIR/<group>; the distributions'
RECORD files say what each wrote, with its hash. Identical copies (the `nvidia/__init__.py`
every nvidia-* wheel ships) are harmless. Prints what each layer holds: the image keeps it
as /opt/ai-base/layers.txt. Runs natively in the installer stage; the standard library only.

CACHE_DIR (a BuildKit cache mount) keeps each group's reading (its RECORDs, file count and
bytes) under the digest of its RECORD files: after a bump only the changed group is walked
again, the other groups' readings come from there (a few seconds of a cuda bump)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TypedDict

FORMAT = "check-layers 1"  # part of every cache key: a changed reading never meets an old one


def records(group: Path) -> dict[str, dict[str, str]]:
    """distribution -> {path under the venv: its RECORD hash} for one group."""
    out: dict[str, dict[str, str]] = {}
    for record in sorted(group.glob("lib/*/site-packages/*.dist-info/RECORD")):
        site = record.parent.parent
        with record.open(newline="") as f:
            rows = [row for row in csv.reader(f) if row and row[1:2] != [""]]
        out[record.parent.name.removesuffix(".dist-info")] = {
            os.path.normpath(site.relative_to(group) / row[0]): row[1] for row in rows
        }
    return out


class Reading(TypedDict):
    records: dict[str, dict[str, str]]  # distribution -> {path: its RECORD hash}
    files: int
    bytes: int


def reading(group: Path, cache: Path | None) -> Reading:
    """A group's RECORDs and the files and bytes it holds; from the cache when its RECORD
    files (every file the group installed, with its hash) are the ones read before."""
    key = hashlib.sha256(f"{FORMAT} {sys.version}".encode())
    for record in sorted(group.glob("lib/*/site-packages/*.dist-info/RECORD")):
        key.update(str(record.relative_to(group)).encode() + b"\0" + record.read_bytes())
    hit = cache / f"{key.hexdigest()}.json" if cache else None
    if hit and hit.is_file():
        cached: Reading = json.loads(hit.read_text())
        return cached
    on_disk = [p for p in group.rglob("*") if p.is_file() or p.is_symlink()]
    out: Reading = {
        "records": records(group),
        "files": len(on_disk),
        "bytes": sum(p.lstat().st_size for p in on_disk),
    }
    if hit:  # written whole, then renamed: a build beside this one never reads half of it
        tmp = hit.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out))
        tmp.replace(hit)
    return out


def main(root: Path, cache: Path | None = None) -> int:
    writers: dict[str, dict[str, list[str]]] = {}  # path -> hash -> "group/distribution"
    lines: list[str] = []
    for group in sorted(p for p in root.iterdir() if p.is_dir()):
        read = reading(group, cache)
        dists = read["records"]
        for dist, files in dists.items():
            for path, digest in files.items():
                writers.setdefault(path, {}).setdefault(digest, []).append(f"{group.name}/{dist}")
        lines.append(
            f"{group.name}: {read['files']} files, {read['bytes']} bytes: {' '.join(dists)}"
        )
    clashes = [
        f"{path}: {' vs '.join(', '.join(w) for w in by_hash.values())}"
        for path, by_hash in sorted(writers.items())
        if len(by_hash) > 1
    ]
    if clashes:
        print(
            f"error: {len(clashes)} file(s) written by more than one distribution with"
            " different content (whichever is installed or copied last would win):",
            file=sys.stderr,
        )
        print("\n".join(f"  {c}" for c in clashes[:20]), file=sys.stderr)
        print(
            "  fix: drop or replace one of the distributions named (requirements/*.in)",
            file=sys.stderr,
        )
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None))
