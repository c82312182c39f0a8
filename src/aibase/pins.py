"""Base-image digest pins in images.toml: resolve each base tag, rewrite one line per base."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from aibase import log
from aibase.config import Config
from aibase.refs import parse_ref
from aibase.registry import RegistryClient
from aibase.state import write_atomic


@dataclass(frozen=True)
class PinChange:
    old: str  # the config line before
    new: str  # and after


def resolve_digest(ref: str, mirror: str | None) -> str:
    """The index digest a base tag points to now, at its registry or at the mirror."""
    where = replace(parse_ref(ref), digest=None).mirrored(mirror)
    with RegistryClient(where.api_host) as client:
        return client.get_manifest(where.repository, where.reference).digest


def plan_pins(config: Config, mirror: str | None) -> dict[str, str]:
    pins: dict[str, str] = {}
    for name, variant in config.variants.items():
        tag_ref = variant.base.split("@", 1)[0]
        pins[name] = f"{tag_ref}@{resolve_digest(tag_ref, mirror)}"
    return pins


def rewrite_base_pins(text: str, pins: dict[str, str]) -> str:
    """Replace `base = "..."` inside each named [variants.NAME] table; nothing else moves."""
    out: list[str] = []
    section = None
    for line in text.splitlines(keepends=True):
        header = re.match(r"^\[variants\.([A-Za-z0-9_-]+)\]\s*$", line)
        if header:
            section = header.group(1)
        elif line.startswith("["):
            section = None
        m = re.match(r'^(\s*base\s*=\s*")([^"]*)(".*)$', line, re.S)
        if m and section in pins:
            line = f"{m.group(1)}{pins[section]}{m.group(3)}"
        out.append(line)
    return "".join(out)


def update_base_pins(config: Config, *, dry_run: bool) -> list[PinChange]:
    """Pin every base to its current digest in the config file; returns the changed lines."""
    text = config.path.read_text()
    updated = rewrite_base_pins(text, plan_pins(config, config.base_mirror))
    changes = [
        PinChange(a.strip(), b.strip())
        for a, b in zip(text.splitlines(), updated.splitlines(), strict=True)
        if a != b
    ]
    for change in changes:
        log.info(f"- {change.old}\n+ {change.new}")
    if changes and not dry_run:
        write_atomic(config.path, updated)
        log.info(f"rewrote {len(changes)} line(s) in {config.path}")
    elif not changes:
        log.info("base pins are up to date")
    return changes
