"""Base-image digest pins in images.toml: resolve each base tag, rewrite one line per base."""

from __future__ import annotations

import re

from aibase.config import Config, mirror_reference
from aibase.registry import RegistryClient

DOCKER_HUB = "registry-1.docker.io"


def registry_location(ref: str) -> tuple[str, str, str]:
    """`python:3.11-slim` -> (registry-1.docker.io, library/python, 3.11-slim)."""
    name, _, tag = ref.split("@", 1)[0].rpartition(":")
    if "/" in tag:  # no tag: the colon was a port
        name, tag = ref.split("@", 1)[0], "latest"
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag
    return DOCKER_HUB, name if rest else f"library/{name}", tag


def resolve_digest(ref: str, mirror: str | None) -> str:
    """The index digest a base tag points to now, at its registry or at the mirror."""
    host, repo, tag = registry_location(mirror_reference(ref.split("@", 1)[0], mirror))
    with RegistryClient(host) as client:
        return client.get_manifest(repo, tag).digest


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


def plan_pins(config: Config, mirror: str | None) -> dict[str, str]:
    pins: dict[str, str] = {}
    for name, variant in config.variants.items():
        tag_ref = variant.base.split("@", 1)[0]
        pins[name] = f"{tag_ref}@{resolve_digest(tag_ref, mirror)}"
    return pins
