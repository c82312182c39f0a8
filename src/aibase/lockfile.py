"""The lock file format: what `invoke lock` writes and every build checks. Pure text.

A lock is uv's hash-locked output, sorted, behind a header that names its inputs' digest
and its body's digest; the only option line it may hold is the platform's torch index.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from aibase.config import PlatformSpec
from aibase.names import normalize_name

# uv's names for the platforms it resolves and installs for (manylinux_2_28: glibc 2.28+)
UV_PLATFORMS = {
    "linux/amd64": "x86_64-manylinux_2_28",
    "linux/arm64": "aarch64-manylinux_2_28",
}
BODY_RE = re.compile(r"^# body-sha256: ([0-9a-f]{64})$", re.M)
_REQ_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s\\;]+)", re.M)
VIA_RE = re.compile(r"^\s+# via (.+)$")
# What uv writes and nothing else: `name[extras]==version[ ; marker] \` and `--hash=` lines.
_PIN_LINE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+( ; [^@\\]+)?( \\)?"
)
_HASH_LINE = re.compile(r"--hash=sha256:[0-9a-f]+( \\)?")


@dataclass(frozen=True)
class LockedPackage:
    name: str  # normalized (PEP 503)
    version: str
    via: tuple[str, ...]  # normalized names that require it


def parse_lock(text: str) -> dict[str, LockedPackage]:
    """name -> package, from uv's output (`name==version \\ --hash... # via a, b`)."""
    out: dict[str, LockedPackage] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _REQ_RE.match(line)
        if m:
            current = normalize_name(m.group(1))
            out[current] = LockedPackage(current, m.group(3), ())
            continue
        v = VIA_RE.match(line)
        if v and current:
            parents = tuple(
                normalize_name(p.strip())
                for p in v.group(1).split(",")
                if not p.strip().startswith("-")
            )
            out[current] = LockedPackage(current, out[current].version, parents)
    return out


def heavy_closure(packages: dict[str, LockedPackage], roots: tuple[str, ...]) -> set[str]:
    """The roots and everything they need, within the lock (fixpoint over `via`)."""
    closure = {normalize_name(r) for r in roots if normalize_name(r) in packages}
    changed = True
    while changed:
        changed = False
        for pkg in packages.values():
            if pkg.name not in closure and any(p in closure for p in pkg.via):
                closure.add(pkg.name)
                changed = True
    return closure


def split_blocks(text: str) -> dict[str, str]:
    """name -> the lock's text block for that requirement (line, hashes, via)."""
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _REQ_RE.match(line)
        if m:
            current = normalize_name(m.group(1))
            blocks[current] = []
        if current:
            blocks[current].append(line)
    return {k: "\n".join(v) + "\n" for k, v in blocks.items()}


def index_option(spec: PlatformSpec) -> str:
    """The one option line a lock may hold: the platform's configured torch index."""
    return f"--extra-index-url {spec.torch_index}\n" if spec.torch_index else ""


def split_header(text: str) -> tuple[str, str]:
    """(the leading `#` lines, the rest)."""
    lines = text.splitlines(keepends=True)
    n = next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
    return "".join(lines[:n]), "".join(lines[n:])


def body_digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def lock_problem(text: str, spec: PlatformSpec) -> str | None:
    """Why a lock's body must not be installed: edited after it was written (hashes,
    pins), or an option line pip would obey (another index, a trusted host, ...)."""
    head, body = split_header(text)
    m = BODY_RE.search(head)
    if not m or m.group(1) != body_digest(body):
        return "edited: its body does not match the body-sha256 written with it"
    allowed = index_option(spec).strip()
    for raw in body.splitlines():
        line = raw.strip()  # pip strips each line before it reads options
        if not line or line.startswith("#") or line == allowed or _HASH_LINE.fullmatch(line):
            continue
        if line.startswith("-"):
            return f"holds the option line {line!r} (only {allowed or 'none'} allowed)"
        if not _PIN_LINE.fullmatch(line):
            return f"holds {line!r}, which is not a `name==version` pin"
    return None
