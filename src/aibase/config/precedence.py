"""flag > AIBASE_* > images.toml > default, the same for every setting: each one resolved
once, checked against its kind, and turned into its typed attribute of `Settings`.

What images.toml holds of the settings comes from their declarations (file_key), not from
a second map: a declaration naming a key of [project] is all it takes for the file to set it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from aibase.config import settings as declared
from aibase.config.resolved import PARSE, Resolved, Settings
from aibase.config.settings import (
    CONFIG_NAME,
    FALSE_WORDS,
    TRUE_WORDS,
    Setting,
    environ,
    is_true,
)
from aibase.errors import ConfigError

_REVISION_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def debug_wanted(flags: Mapping[str, Any]) -> bool:
    """--debug / AIBASE_DEBUG, known before anything else is (so a failing load shows it)."""
    return is_true(resolve_one(declared.SETTINGS["debug"], flags, environ(), {}).text)


def file_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings images.toml (as parsed TOML) holds, by setting name: each declared
    file_key that is there."""
    found: dict[str, Any] = {}
    for s in declared.SETTINGS.values():
        if s.file_key is None:
            continue
        value: Any = data
        for part in s.file_key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            found[s.name] = value
    return found


def file_keys() -> set[str]:
    """The keys of images.toml's [project] table that a setting's declaration names."""
    return {s.file_key.split(".", 1)[1] for s in declared.SETTINGS.values() if s.file_key}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else ""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def resolve_one(
    s: Setting,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file: Mapping[str, Any],
    default: str | None = None,
) -> Resolved:
    """flag > env > file > default; an empty flag or variable counts as not given."""
    for source, value in (
        ("flag", flags.get(s.name)),
        ("env", env.get(s.env)),
        ("file", file.get(s.name) if s.file_key else None),
    ):
        text = _as_text(value)
        if text:
            _check(s, text, source)
            return Resolved(s, text, source)
    return Resolved(s, s.default if default is None else default, "default")


def _check(s: Setting, text: str, source: str) -> None:
    where = {"flag": s.flag, "env": s.env, "file": f"{CONFIG_NAME} {s.file_key}"}[source]
    if s.kind == "bool" and text.lower() not in TRUE_WORDS + FALSE_WORDS:
        raise ConfigError(
            f"{where}={text!r} is not a boolean", f"use one of {', '.join(TRUE_WORDS)}"
        )
    if s.kind == "choice" and text not in s.choices:
        raise ConfigError(
            f"{where}={text!r} is not one of {', '.join(s.choices)}", "pick one of those"
        )
    if s.kind == "int" and not (text.isdigit() and int(text) >= 1):
        raise ConfigError(f"{where}={text!r} is not a positive number", f"e.g. {s.flag} 2")
    if s.name == "revision" and not _REVISION_RE.fullmatch(text):
        raise ConfigError(
            f"{where}={text!r} is not a full git commit hash (40 hex digits)",
            "pass `git rev-parse HEAD`, or leave it unset to use HEAD",
        )
    if s.name == "ca_bundle" and text != "none" and not Path(text).expanduser().is_file():
        raise ConfigError(f"{where}: CA bundle {text} not found", "pass an existing file or 'none'")


def typed(r: Resolved, annotation: str) -> object:
    """The attribute's value: the text parsed as its annotation says."""
    bundle = r.setting.name == "ca_bundle"
    if bundle and (r.text == "none" or not Path(r.text).expanduser().is_file()):
        return None  # 'none', or no host trust store at the default: builds get no bundle
    return PARSE[annotation](r.text)


def find_config(start: Path) -> Path | None:
    """images.toml in start or the nearest directory above it (as git and nox find theirs)."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    read_file: Callable[[Path], Mapping[str, Any]],
    cwd: Path,
    names: Sequence[str] | None = None,
) -> Settings:
    """Resolve the settings a task takes (names; None: all) from flag, env, file and default.
    read_file(config path) returns the file's values by setting name.

    The others get their file value or default only: a variable meant for another task
    (a stale AIBASE_REVISION, say) neither changes nor breaks this one.
    """
    config = resolve_one(declared.SETTINGS["config"], flags, env, {})
    found = find_config(cwd) if not config.text else None
    if config.text:
        path = Path(config.text)
        path = path if path.is_absolute() else (cwd / path)
    elif found is not None:
        path = found
    else:
        raise ConfigError(
            f"no {CONFIG_NAME} in {cwd} or any directory above it",
            f"run inside the ai-base checkout, or pass --config / set "
            f"{declared.SETTINGS['config'].env}",
        )
    resolved = {"config": Resolved(config.setting, str(path), config.source)}
    file = read_file(path)
    defaults = {"out": str((path.parent if found else cwd) / "build")}
    for s in declared.SETTINGS.values():
        if s.name == "config":
            continue
        taken = names is None or s.name in names
        resolved[s.name] = resolve_one(
            s, flags if taken else {}, env if taken else {}, file, defaults.get(s.name)
        )
    typed_values: dict[str, Any] = {
        f.name: typed(resolved[f.name], str(f.type))
        for f in fields(Settings)
        if f.name != "resolved"
    }
    return Settings(**typed_values, resolved=resolved)
