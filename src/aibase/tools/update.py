"""`invoke update NAME==VERSION`: the old guide's update procedure (steps 1-6) as one command.
Edit the pin where it lives (a requirements .in, or the torch family in images.toml), re-lock
every cell it touches, and show what changed in each lock."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.build.lock_format import parse_lock
from aibase.build.locks import write_lock
from aibase.config.loader import apply_settings, read_config
from aibase.config.model import Config, VariantConfig
from aibase.config.settings import Settings
from aibase.errors import ConfigError
from aibase.names import normalize_name
from aibase.state import write_atomic

_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)")
_LINE = re.compile(r"^(\s*)([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s#;]+)(.*)$")
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


@dataclass(frozen=True)
class Pin:
    name: str  # normalised
    version: str


def parse_pins(text: str) -> list[Pin]:
    pins = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        m = _PIN.fullmatch(item)
        if not m:
            raise ConfigError(
                f"{item!r} is not NAME==VERSION", "e.g. invoke update structlog==24.1.0"
            )
        pins.append(Pin(normalize_name(m.group(1)), m.group(2)))
    if not pins:
        raise ConfigError("update needs at least one NAME==VERSION", "e.g. structlog==24.1.0")
    return pins


def edit_pins(config: Config, pins: Sequence[Pin]) -> list[VariantConfig]:
    """Rewrite each pin where it is declared; the variants whose locks it touches."""
    touched: dict[str, VariantConfig] = {}
    for pin in pins:
        if pin.name in TORCH_FAMILY:
            _edit_torch(config.path, pin)
            touched |= {v.name: v for v in config.variants.values() if v.torch}
            continue
        files = {p for v in config.variants.values() for p in v.requirements}
        edited = [f for f in sorted(files) if _edit_in(f, pin)]
        if not edited:
            raise ConfigError(
                f"{pin.name} is not pinned in {', '.join(str(f) for f in sorted(files))}",
                f"add `{pin.name}=={pin.version}` to one of them first (a new dependency is "
                "a reviewed change of its own)",
            )
        touched |= {
            v.name: v for v in config.variants.values() if set(v.requirements) & set(edited)
        }
    return list(touched.values())


def _edit_in(path: Path, pin: Pin) -> bool:
    lines, hit = path.read_text().splitlines(keepends=True), False
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if m and normalize_name(m.group(2)) == pin.name:
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3) or ''}=={pin.version}{m.group(5)}\n"
            hit = True
    if hit:
        write_atomic(path, "".join(lines))
        log.info(f"{path}: {pin.name}=={pin.version}")
    return hit


def _edit_torch(path: Path, pin: Pin) -> None:
    text = path.read_text()
    new = re.sub(rf'(\b{pin.name}\s*=\s*")[^"]*(")', rf"\g<1>{pin.version}\g<2>", text)
    if new == text:
        raise ConfigError(f'{path}: no `{pin.name} = "..."` pin to move', "see [variants.*].torch")
    write_atomic(path, new)
    log.info(f"{path}: {pin.name} = {pin.version!r} in every [torch] table")


def relock(variants: Sequence[VariantConfig], platforms: Sequence[str]) -> list[str]:
    """Re-resolve each cell that has a lock (a missing one is a known gap, said, not made);
    one line per package that changed."""
    changes = []
    for variant in variants:
        for platform in platforms:
            lock = variant.lock_file(platform)
            if not lock.exists():
                log.warn(
                    f"{variant.name}/{platform}: no lock to update (see the README's known gap)"
                )
                continue
            before = parse_lock(lock.read_text())
            write_lock(variant, variant.platform(platform))
            after = parse_lock(lock.read_text())
            for name in sorted(before.keys() | after.keys()):
                old = before[name].version if name in before else "-"
                new = after[name].version if name in after else "-"
                if old != new:
                    changes.append(f"{variant.name}/{platform}: {name} {old} -> {new}")
    print("\n".join(changes) or "the locks did not change")
    return changes


def apply(settings: Settings, config: Config, pins: str) -> list[VariantConfig]:
    """Edit, then re-lock against the edited config; the variants touched, as now configured."""
    touched = edit_pins(config, parse_pins(pins))
    fresh = apply_settings(read_config(config.path), settings)  # torch pins may have moved
    variants = [fresh.variant(v.name) for v in touched]
    relock(variants, fresh.platforms)
    return variants
