"""`./ai update NAME==VERSION`: the old guide's update procedure (steps 1-6) as one command.
Edit the pin where it lives (a requirements .in, or the torch family in images.toml), re-lock
every cell it touches, and show what changed in each lock."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.build.lock_format import parse_lock
from aibase.build.locks import write_lock
from aibase.config.loader import apply_settings, read_config
from aibase.config.model import Config, VariantConfig
from aibase.config.resolved import Settings
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


def files_an_update_writes(config: Config) -> list[Path]:
    """The config, every requirements file and every cell's lock (present or not)."""
    paths = {config.path}
    for v in config.variants.values():
        paths |= set(v.requirements)
        paths |= {v.lock_file(p) for p in {*v.platforms, *config.platforms}}
    return sorted(paths)


@contextmanager
def all_or_nothing(paths: Sequence[Path]) -> Iterator[None]:
    """Put every path back as it was if the block fails: an update that cannot re-lock (a
    version the index lacks, an unreachable index, Ctrl-C) must not leave a moved pin that
    `lock --check` then calls stale, or some cells re-locked and others not."""
    saved = {p: p.read_bytes() if p.exists() else None for p in paths}
    try:
        yield
    except BaseException:
        restored = 0
        for path, data in saved.items():
            now = path.read_bytes() if path.exists() else None
            if now != data:
                restored += 1
                if data is None:
                    path.unlink()
                else:
                    path.write_bytes(data)
        log.warn(f"update failed: nothing changed ({restored} file(s) put back as they were)")
        raise


def apply(settings: Settings, config: Config, pins: str) -> list[VariantConfig]:
    """Edit, then re-lock against the edited config; the variants touched, as now configured.
    All or nothing: on any failure every file is left as it was."""
    wanted = parse_pins(pins)
    with all_or_nothing(files_an_update_writes(config)):
        touched = edit_pins(config, wanted)
        fresh = apply_settings(read_config(config.path), settings)  # torch pins may have moved
        variants = [fresh.variant(v.name) for v in touched]
        relock(variants, fresh.platforms)
    return variants
