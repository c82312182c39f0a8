"""The settings of one run, resolved: `Settings`, one typed attribute per setting declared in
`settings` (a declaration without its attribute, or the reverse, fails at import), and where
each value came from, for the block every run prints and the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_args

from aibase.config.settings import (
    CONFIG_NAME,
    FILE_TABLE,
    SETTINGS,
    Setting,
    SettingName,
    is_true,
)


@dataclass(frozen=True)
class Resolved:
    setting: Setting
    text: str  # "" when unset
    source: str  # flag | env | file | default


@dataclass(frozen=True)
class Settings:
    """The resolved values, one typed attribute per declared setting ("" given: None), and
    where each came from (`resolved`, for the block every run prints and the report)."""

    config: Path
    registry: str
    repository: str
    platforms: tuple[str, ...]
    base_mirror: str | None
    registry_ca: Path | None
    auth_hosts: tuple[str, ...]
    out: Path
    cache: Path
    revision: str | None
    ca_bundle: Path | None  # None: 'none', or no host trust store at the default path
    pip_index_url_file: Path | None
    compression: str
    build_cache: str | None
    builder: str | None
    jobs: int | None
    debug: bool
    require_gpu: bool
    refresh_os: bool
    notify_url: str | None
    notify_token: str | None
    runners: str
    gpu_runner: str  # "none": promote without a GPU smoke; "": not given
    audit_service: str | None
    audit_osv_url: str | None
    smoke_image: str | None
    smoke_variant: str
    smoke_platforms: tuple[str, ...]
    resolved: Mapping[str, Resolved] = field(default_factory=dict, repr=False)

    def source(self, name: SettingName) -> str:
        return self.resolved[name].source

    def origin(self, name: SettingName) -> str:
        """Where a value came from, as a user would write it: the flag, the variable..."""
        r = self.resolved[name]
        if r.source == "file":
            return f"{CONFIG_NAME} {r.setting.file_key}"
        return {"flag": r.setting.flag, "env": r.setting.env}.get(r.source, "the default")

    def render(self, names: Sequence[str], every: bool = True) -> str:
        """The block every run prints: value and source of each setting the task takes; not
        `every`: the config file and what a flag, the environment or the file set, and how
        many are at their defaults (a refusal is then a few lines, not a table of defaults)."""
        shown = [n for n in names if every or n == "config" or self.resolved[n].source != "default"]
        width = max((len(n) for n in shown), default=0)
        lines = ["settings (flag > env > file > default):"]
        for name in shown:
            r = self.resolved[name]
            origin = {"flag": r.setting.flag, "env": r.setting.env}.get(r.source, r.source)
            if r.source == "file":
                origin = f"file {r.setting.file_key}"
            lines.append(f"  {name:<{width}}  {_shown(r) or '-'}  ({origin})")
        if len(shown) < len(names):
            lines.append(
                f"  ({len(names) - len(shown)} more at their defaults: --debug lists them)"
            )
        return "\n".join(lines)

    def as_rows(self, names: Sequence[str] | None = None) -> tuple[tuple[str, str, str], ...]:
        """For the report (names; None: all): a secret shows only whether it was set."""
        rows = (self.resolved[n] for n in (self.resolved if names is None else names))
        return tuple((r.setting.name, _shown(r), r.source) for r in rows)


def _shown(r: Resolved) -> str:
    return "***" if r.setting.kind == "secret" and r.text else r.text


def _path(text: str) -> Path | None:
    return Path(text).expanduser().resolve() if text else None


# How a resolved text becomes its attribute's value, by the attribute's annotation.
PARSE: Mapping[str, Callable[[str], object]] = {
    "str": str,
    "str | None": lambda text: text or None,
    "bool": is_true,
    "int | None": lambda text: int(text) if text else None,
    "tuple[str, ...]": lambda text: tuple(p.strip() for p in text.split(",") if p.strip()),
    "Path": lambda text: Path(text).expanduser().resolve(),
    "Path | None": _path,
}
# The annotations that fit each kind.
FITS: Mapping[str, tuple[str, ...]] = {
    "str": ("str", "str | None"),
    "choice": ("str", "str | None"),
    "secret": ("str | None",),
    "bool": ("bool",),
    "int": ("int | None",),
    "list": ("tuple[str, ...]",),
    "path": ("Path", "Path | None"),
}


def declaration_problems(
    declared: Iterable[Setting], typed: type, names: Iterable[str]
) -> list[str]:
    """Where the declarations, the typed object's attributes and SettingName disagree: a
    setting without its attribute, an attribute nobody declared, a type that does not fit
    the kind, a file key outside images.toml's [project] table."""
    attrs = {f.name: str(f.type) for f in fields(typed) if f.name != "resolved"}
    settings = {s.name: s for s in declared}
    problems = [
        f"setting {n!r} has no attribute {typed.__name__}.{n}"
        for n in settings.keys() - attrs.keys()
    ]
    problems += [
        f"{typed.__name__}.{n} is not a declared setting" for n in attrs.keys() - settings.keys()
    ]
    problems += [f"SettingName lacks {n!r}" for n in settings.keys() - set(names)]
    problems += [
        f"SettingName names {n!r}, which is not a setting" for n in set(names) - settings.keys()
    ]
    for name, s in settings.items():
        if name in attrs and attrs[name] not in FITS.get(s.kind, ()):
            problems.append(f"{typed.__name__}.{name}: {attrs[name]} does not fit kind {s.kind!r}")
        if s.file_key and s.file_key.split(".")[:-1] != [FILE_TABLE]:
            problems.append(f"setting {name!r}: file_key {s.file_key!r} is not {FILE_TABLE}.KEY")
    return sorted(problems)


def check_declarations() -> None:
    """Refuse to run with a setting declared in one place and not the other."""
    problems = declaration_problems(SETTINGS.values(), Settings, get_args(SettingName))
    if problems:
        raise TypeError("config.settings: " + "; ".join(problems))


check_declarations()
