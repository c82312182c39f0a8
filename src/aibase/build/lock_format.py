"""The lock file format: what `./ai lock` writes and every build checks. Pure text.

A lock is uv's hash-locked output, sorted, behind a header that names its inputs' digest
and its body's digest; the only option line it may hold is the platform's torch index.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aibase.config.model import PlatformSpec, VariantConfig
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


def parse_lock(text: str) -> dict[str, LockedPackage]:
    """name -> package, from uv's output (`name==version \\ --hash... # via a, b`)."""
    return {
        normalize_name(m.group(1)): LockedPackage(normalize_name(m.group(1)), m.group(3))
        for m in _REQ_RE.finditer(text)
    }


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


def torch_family(variant: VariantConfig) -> tuple[str, ...]:
    """What a configured torch index may serve: the torch pins' names, nothing else."""
    pins = variant.torch.requirements() if variant.torch else ()
    return tuple(normalize_name(r.split("==", 1)[0]) for r in pins)


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


LOCK_PROJECT = "ai-base-lock-input"
_FROM_RE = re.compile(r"^\s+# from (\S+)$")
_PROJECT_VIA = re.compile(rf",? ?{LOCK_PROJECT} \([^)]*\)")


def render_project(requirements: Sequence[str], index: str, served: Sequence[str]) -> str:
    """The resolver's input when a torch index is configured: a pyproject whose explicit
    index serves the named distributions and nothing else. (`--extra-index-url` with the
    first-index strategy let that index serve numpy, pillow, jinja2, ... it mirrors.)"""
    deps = "".join(f"  {json.dumps(r)},\n" for r in requirements)
    sources = "".join(f'{json.dumps(n)} = {{ index = "torch" }}\n' for n in served)
    return (
        f'[project]\nname = "{LOCK_PROJECT}"\nversion = "0"\ndependencies = [\n{deps}]\n\n'
        f'[[tool.uv.index]]\nname = "torch"\nurl = {json.dumps(index)}\nexplicit = true\n\n'
        f"[tool.uv.sources]\n{sources}"
    )


def wrong_sources(text: str, index: str, served: Sequence[str]) -> list[str]:
    """`name from URL` for each pin uv's `# from` notes say came from the wrong index:
    one of `served` not from the torch index, or anything else from it."""
    bad: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        m = _REQ_RE.match(line)
        if m:
            current = normalize_name(m.group(1))
        f = _FROM_RE.match(line)
        if f and current:
            from_torch = f.group(1).rstrip("/") == index.rstrip("/")
            if from_torch != (current in served):
                bad.append(f"{current} from {f.group(1)}")
    return bad


def strip_resolver_notes(text: str) -> str:
    """uv's output as a stdin resolve writes it: no `# from` lines, and the generated
    project not named among a pin's parents (a lock must not change with how it was fed)."""
    out: list[str] = []
    for line in text.splitlines():
        if _FROM_RE.match(line):
            continue
        if VIA_RE.match(line):
            line = _PROJECT_VIA.sub("", line).replace("# via , ", "# via ")
            if line.strip() == "# via":
                continue
        out.append(line)
    return "\n".join(out) + "\n"
