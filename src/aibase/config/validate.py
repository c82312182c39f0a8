"""Field validators for images.toml and the settings over it: each failure names the file
(or flag, or variable), the key path, the problem and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

from aibase.config.model import KNOWN_PLATFORMS
from aibase.errors import ConfigError
from aibase.registry.refs import parse_ref
from aibase.registry.trust import is_loopback

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
VERSION_RE = re.compile(r"^\d+(\.\d+)*$")
PYTHON_RE = re.compile(r"^3\.\d+$")
_REPO_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?$")


@dataclass(frozen=True)
class Where:
    """Formats errors as `file: key.path: problem (allowed)`."""

    path: Path | None  # None: a flag or variable, named by the key
    key: str = ""

    def child(self, key: str) -> Where:
        sep = "" if key.startswith("[") else "."
        return Where(self.path, f"{self.key}{sep}{key}" if self.key else key)

    def fail(self, key: str | None, problem: str, fix: str) -> NoReturn:
        prefix = f"{self.path}: " if self.path else ""
        raise ConfigError(f"{prefix}{key or self.key}: {problem}", fix)


def resolve_path(root: Path, p: Path) -> Path:
    return p if p.is_absolute() else (root / p).resolve()


def check_keys(
    table: Mapping[str, Any], allowed: set[str], w: Where, required: set[str] | None = None
) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            w.child(key).fail(
                None, f"unknown key{hint}", f"allowed keys here: {', '.join(sorted(allowed))}"
            )
    for key in sorted(required or set()):
        if key not in table:
            w.child(key).fail(None, "missing required field", f"add `{key} = ...`")


def table(value: Any, w: Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        w.fail(
            None, f"must be a table, got {type(value).__name__}", "see images.toml for the shape"
        )
    return cast(dict[str, Any], value)


def string(value: Any, w: Where, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        w.fail(None, f"must be a non-empty string, got {value!r}", "quote the value")
    return value


def platform(value: str, w: Where) -> str:
    if value not in KNOWN_PLATFORMS:
        close = difflib.get_close_matches(value, KNOWN_PLATFORMS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        w.fail(
            None,
            f"{value!r} is not a platform buildx knows{hint}",
            f"use os/arch, one of: {', '.join(KNOWN_PLATFORMS)}",
        )
    return value


def platform_list(value: Any, w: Where) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        w.fail(None, "must be a non-empty list", 'e.g. ["linux/amd64", "linux/arm64"]')
    out: list[str] = []
    for i, item in enumerate(value):
        iw = w.child(f"[{i}]")
        platform(string(item, iw), iw)
        if item in out:
            iw.fail(None, f"{item!r} listed twice", "list each platform once")
        out.append(item)
    return tuple(out)


def repository(value: Any, w: Where) -> str:
    repo = string(value, w)
    if not _REPO_RE.fullmatch(repo):
        w.fail(None, f"{repo!r} is not a repository path", 'lower-case, e.g. "cerebral/ai-base"')
    return repo


def registry(value: Any, w: Where) -> str:
    reg = string(value, w)
    if not _REGISTRY_RE.fullmatch(reg):
        w.fail(None, f"{reg!r} is not a registry host[:port]", 'e.g. "localhost:5000"')
    return reg


def registry_path(value: str, w: Where) -> str:
    host, _, path = value.partition("/")
    registry(host, w)
    if path and not _REPO_RE.fullmatch(path.rstrip("/")):
        w.fail(None, f"{value!r} is not host[:port][/path]", 'e.g. "localhost:5000/mirror"')
    return value.rstrip("/")


def index_url(url: str, w: Where) -> str:
    """A package index: https (http only on loopback), nothing pip could read as a second
    line or option (it goes into the lock file verbatim)."""
    parts = urlsplit(url)
    plain_ok = parts.scheme == "http" and is_loopback(parts.hostname or "")
    if (
        any(c.isspace() for c in url)
        or not parts.hostname
        or "@" in parts.netloc  # `http://localhost:80@elsewhere/` goes elsewhere
        or not (parts.scheme == "https" or plain_ok)
    ):
        w.fail(
            None,
            f"{url!r} is not an https URL (http only on loopback, no whitespace)",
            'e.g. "https://download.pytorch.org/whl/cpu"',
        )
    return url


def image_ref(value: Any, w: Where) -> str:
    ref = string(value, w)
    try:
        parse_ref(ref)
    except ConfigError as exc:
        w.fail(None, exc.message, exc.fix)
    return ref
