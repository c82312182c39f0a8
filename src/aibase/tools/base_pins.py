"""Image digest pins in images.toml: resolve each base and installer tag, rewrite one line each."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

from aibase import log
from aibase.config.model import Config
from aibase.registry.client import RegistryClient
from aibase.registry.refs import parse_ref
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


def plan_pins(config: Config, mirror: str | None) -> dict[str, dict[str, str]]:
    """[variants.NAME] -> {key: pinned ref} for the base and the installer image: both
    decide what the image holds (the installer writes every group's files)."""
    pins: dict[str, dict[str, str]] = {}
    for name, variant in config.variants.items():
        pins[name] = {}
        for key, ref in (("base", variant.base), ("installer", variant.installer_ref)):
            tag_ref = ref.split("@", 1)[0]
            pins[name][key] = f"{tag_ref}@{resolve_digest(tag_ref, mirror)}"
    return pins


_KEY_LINE = re.compile(r'^(\s*([a-z_]+)\s*=\s*")([^"]*)(".*)$', re.S)


def rewrite_base_pins(text: str, pins: dict[str, dict[str, str]]) -> str:
    """Replace `base = "..."` and `installer = "..."` inside each named [variants.NAME]
    table (an installer line missing there goes right after its base); nothing else moves."""
    lines = text.splitlines(keepends=True)
    sections = _sections(lines)
    has = {(sections[i], m.group(2)) for i, ln in enumerate(lines) if (m := _KEY_LINE.match(ln))}
    out: list[str] = []
    for line, section in zip(lines, sections, strict=True):
        m = _KEY_LINE.match(line)
        wanted = pins.get(section or "", {})
        if m and m.group(2) in wanted:
            line = f"{m.group(1)}{wanted[m.group(2)]}{m.group(4)}"
        out.append(line)
        missing = "installer" in wanted and (section, "installer") not in has
        if m and m.group(2) == "base" and missing:
            out.append(f'installer = "{wanted["installer"]}"\n')
    return "".join(out)


def _sections(lines: list[str]) -> list[str | None]:
    """For each line, the [variants.NAME] table it sits in, if any."""
    out: list[str | None] = []
    section = None
    for line in lines:
        if line.startswith("["):
            header = re.match(r"^\[variants\.([A-Za-z0-9_-]+)\]\s*$", line)
            section = header.group(1) if header else None
        out.append(section)
    return out


def update_base_pins(config: Config, *, dry_run: bool) -> list[PinChange]:
    """Pin every base and installer image to its current digest in the config file;
    returns the changed lines."""
    text = config.path.read_text()
    updated = rewrite_base_pins(text, plan_pins(config, config.base_mirror))
    changes = [PinChange(a.strip(), b.strip()) for a, b in changed_lines(text, updated)]
    for change in changes:
        log.info(f"- {change.old}\n+ {change.new}" if change.old else f"+ {change.new}")
    if changes and not dry_run:
        write_atomic(config.path, updated)
        log.info(f"rewrote {len(changes)} line(s) in {config.path}")
    elif not changes:
        log.info("base pins are up to date")
    return changes


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) per changed line; an inserted line is ("", new)."""
    old, new = before.splitlines(), after.splitlines()
    changes: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new).get_opcodes():
        if op != "equal":
            olds = old[i1:i2] + [""] * (j2 - j1 - (i2 - i1))
            changes += list(zip(olds, new[j1:j2], strict=False))
    return changes
