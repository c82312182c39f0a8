"""Image digest pins in images.toml: resolve each base and installer tag, rewrite one line each.

A stand-in (`bases-bootstrap`: Debian 12 labelled io.cerebral.ai-base.stand-in) is never
pinned unless asked for by name: a pinned stand-in looks exactly like a reviewed real base."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from aibase import log
from aibase.config.model import Config
from aibase.errors import ConfigError, NotFound, RegistryUnreachable
from aibase.host.standins import STANDIN_LABEL
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, is_attestation
from aibase.registry.refs import ImageRef, parse_ref
from aibase.state import write_atomic

OpenClient = Callable[[str], RegistryClient]  # registry host -> client (tests: a fake)
STANDIN_NOTE = "  # STAND-IN"


@dataclass(frozen=True)
class PinChange:
    old: str  # the config line before
    new: str  # and after


@dataclass(frozen=True)
class ResolvedBase:
    ref: str  # the tag as images.toml names it, e.g. python:3.11-slim
    where: str  # where it was read: the mirror's copy, or ref itself
    digest: str  # what the tag points to now (an index for a multi-arch base)
    stand_in_of: str  # "" for a real image; else what its stand-in label says it replaces

    @property
    def pinned(self) -> str:
        return f"{self.ref}@{self.digest}"


def image_labels(client: RegistryClient, repo: str, top: Manifest) -> dict[str, str]:
    """The labels of an image, or of an index's first image (a stand-in labels them all)."""
    manifest = top
    if top.is_index:
        entries = [e for e in top.json.get("manifests", []) if not is_attestation(e)]
        if not entries:
            return {}
        manifest = client.get_manifest(repo, entries[0]["digest"])
    config_digest = (manifest.json.get("config") or {}).get("digest")
    if not config_digest:
        return {}
    config = json.loads(client.get_blob(repo, config_digest))
    return dict((config.get("config") or {}).get("Labels") or {})


def resolve_bases(
    config: Config, mirror: str | None, open_client: OpenClient = RegistryClient
) -> dict[str, ResolvedBase]:
    """Every base and installer tag the config names -> what it points to now, at its
    registry or in the mirror; all of them, or an error naming each one missing."""
    users: dict[str, list[str]] = {}
    for name, variant in config.variants.items():
        for ref in (variant.base, variant.installer_ref):
            users.setdefault(ref.split("@", 1)[0], []).append(name)
    found: dict[str, ResolvedBase] = {}
    missing: list[tuple[str, ImageRef]] = []
    for ref, variants in users.items():
        where = replace(parse_ref(ref), digest=None).mirrored(mirror)
        try:
            with open_client(where.api_host) as client:
                top = client.get_manifest(where.repository, where.reference)
                labels = image_labels(client, where.repository, top)
        except NotFound:
            missing.append((ref, where))
            continue
        except RegistryUnreachable as exc:
            raise _unreachable(ref, where, config, mirror, exc) from None
        stand_in = ""
        if labels.get(STANDIN_LABEL) == "true":
            stand_in = labels.get(f"{STANDIN_LABEL}.of") or ref
        found[ref] = ResolvedBase(ref, str(where), top.digest, stand_in)
        log.debug(f"{ref}: {where} -> {top.digest} (variants {', '.join(sorted(set(variants)))})")
    if missing:
        raise _missing(missing, users, mirror)
    return found


def _unreachable(
    ref: str, where: ImageRef, config: Config, mirror: str | None, exc: RegistryUnreachable
) -> RegistryUnreachable:
    details = (exc.message,)
    if not mirror:
        return RegistryUnreachable(
            f"base {ref}: {where.api_host} cannot be reached and no base mirror is set; "
            "nothing was pinned",
            "pin from a mirror that holds the bases: --base-mirror HOST/PREFIX (or "
            f"AIBASE_BASE_MIRROR; docs/offline.md), or run where {where.api_host} answers",
            details=details,
        )
    start = "./ai registry-up, " if where.api_host == config.file_registry else ""
    return RegistryUnreachable(
        f"the base mirror {mirror} does not answer (reading {where}); nothing was pinned",
        f"start it ({start}the registry that holds the mirror) or correct --base-mirror / "
        "AIBASE_BASE_MIRROR",
        details=details,
    )


def _missing(
    missing: list[tuple[str, ImageRef]], users: Mapping[str, list[str]], mirror: str | None
) -> NotFound:
    def names(ref: str) -> str:
        variants = sorted(set(users[ref]))
        return f"{ref} (variant{'s' if len(variants) > 1 else ''} {', '.join(variants)})"

    if not mirror:
        bases = "; ".join(f"{names(ref)} at {where}" for ref, where in missing)
        return NotFound(
            f"base not found: {bases}; nothing was pinned",
            "check the base's name and tag in images.toml",
        )
    bases = "; ".join(f"{names(ref)}: {where} does not exist" for ref, where in missing)
    copies = "; ".join(
        f"docker buildx imagetools create --tag {where} {ref}" for ref, where in missing
    )
    return NotFound(
        f"not in the base mirror {mirror}: {bases}; nothing was pinned",
        f"copy each real base (every platform) into the mirror from a host that reaches both, "
        f"then rerun: {copies}. Tests and air-gapped dev only: ./ai bases-bootstrap "
        f"--base-mirror {mirror} pushes STAND-INs, which bases-update pins only with "
        "--allow-stand-in",
    )


def refuse_stand_ins(resolved: Mapping[str, ResolvedBase], mirror: str | None) -> None:
    standins = [r for r in resolved.values() if r.stand_in_of]
    if not standins:
        return
    where = f"the base mirror {mirror}" if mirror else "the bases' registry"
    named = "; ".join(f"{r.where} is a stand-in for {r.stand_in_of}" for r in standins)
    raise ConfigError(
        f"{where} holds STAND-INs (Debian 12 from bases-bootstrap, labelled "
        f"{STANDIN_LABEL}=true), not the real bases: {named}; nothing was pinned",
        "copy the real bases into the mirror (docs/offline.md) and rerun; to pin the "
        "stand-ins on purpose (tests, air-gapped dev) add --allow-stand-in",
    )


def plan_pins(resolved: Mapping[str, ResolvedBase], config: Config) -> dict[str, dict[str, str]]:
    """[variants.NAME] -> {key: pinned ref} for the base and the installer image: both
    decide what the image holds (the installer writes every group's files)."""
    pins: dict[str, dict[str, str]] = {}
    for name, variant in config.variants.items():
        pins[name] = {}
        for key, ref in (("base", variant.base), ("installer", variant.installer_ref)):
            pins[name][key] = resolved[ref.split("@", 1)[0]].pinned
    return pins


_KEY_LINE = re.compile(r'^(\s*([a-z_]+)\s*=\s*")([^"]*)(".*)$', re.S)


def rewrite_base_pins(
    text: str, pins: dict[str, dict[str, str]], notes: Mapping[str, str] | None = None
) -> str:
    """Replace `base = "..."` and `installer = "..."` inside each named [variants.NAME]
    table (an installer line missing there goes right after its base); nothing else moves.
    notes: pinned ref -> a comment for its line (a stand-in says so); an old note goes."""
    notes = notes or {}
    lines = text.splitlines(keepends=True)
    sections = _sections(lines)
    has = {(sections[i], m.group(2)) for i, ln in enumerate(lines) if (m := _KEY_LINE.match(ln))}
    out: list[str] = []
    for line, section in zip(lines, sections, strict=True):
        m = _KEY_LINE.match(line)
        wanted = pins.get(section or "", {})
        if m and m.group(2) in wanted:
            ref = wanted[m.group(2)]
            line = f"{m.group(1)}{ref}{_with_note(m.group(4), notes.get(ref, ''))}"
        out.append(line)
        missing = "installer" in wanted and (section, "installer") not in has
        if m and m.group(2) == "base" and missing:
            ref = wanted["installer"]
            out.append(f'installer = "{ref}"{_with_note("", notes.get(ref, ""))}\n')
    return "".join(out)


def _with_note(tail: str, note: str) -> str:
    """The rest of a pinned line (closing quote, comment, newline) with note as its comment."""
    newline = "\n" if tail.endswith("\n") else ""
    rest = tail.rstrip("\n")
    if STANDIN_NOTE in rest:
        rest = rest[: rest.index(STANDIN_NOTE)]
    return f"{rest}  # {note}{newline}" if note else f"{rest}{newline}"


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


def update_base_pins(
    config: Config,
    *,
    dry_run: bool,
    allow_stand_in: bool = False,
    open_client: OpenClient = RegistryClient,
) -> list[PinChange]:
    """Pin every base and installer image to its current digest in the config file;
    returns the changed lines. A stand-in is refused unless allow_stand_in."""
    mirror = config.base_mirror
    resolved = resolve_bases(config, mirror, open_client)
    if not allow_stand_in:
        refuse_stand_ins(resolved, mirror)
    notes = {
        r.pinned: f"STAND-IN: Debian 12 from bases-bootstrap, NOT {r.stand_in_of}"
        for r in resolved.values()
        if r.stand_in_of
    }
    for r in resolved.values():
        if r.stand_in_of:
            log.warn(
                f"STAND-IN pinned on request (--allow-stand-in): {r.where} is Debian 12 "
                f"from bases-bootstrap, NOT {r.stand_in_of}; for tests only"
            )
    text = config.path.read_text()
    updated = rewrite_base_pins(text, plan_pins(resolved, config), notes)
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
