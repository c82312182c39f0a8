"""Every setting, declared once: its flag, its AIBASE_* variable (derived from the name), its
key in images.toml where it has one, its type and its default.

Precedence, the same for all: flag > environment > images.toml > default. `resolve` records
where each value came from; every run prints that block and the report keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aibase.errors import ConfigError

CONFIG_NAME = "images.toml"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
COMPRESSIONS = ("gzip", "zstd")
AUDIT_SERVICES = ("osv", "pypi")
_REVISION_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    name: str  # python identifier; the flag is --name-with-dashes
    help: str
    default: str = ""  # as text; "" means unset
    file_key: str | None = None  # dotted path in images.toml
    kind: str = "str"  # str | bool | path | choice
    choices: tuple[str, ...] = ()
    scope: str = ""  # prefix of the variable: AIBASE_<SCOPE>_<NAME>

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        scope = f"{self.scope.upper()}_" if self.scope else ""
        return f"AIBASE_{scope}{self.name.upper()}"


_ALL: tuple[Setting, ...] = (
    Setting("config", f"the {CONFIG_NAME} to use (default: found walking up from here)"),
    Setting("registry", "target registry host[:port]", file_key="project.registry"),
    Setting("repository", "image repository, e.g. cerebral/ai-base", file_key="project.repository"),
    Setting(
        "platforms",
        "comma-separated platforms to build, e.g. linux/arm64",
        file_key="project.platforms",
    ),
    Setting("base_mirror", "registry prefix the base images are pulled from instead"),
    Setting(
        "out",
        f"output directory for run records and reports (default: build/ beside the {CONFIG_NAME})",
    ),
    Setting(
        "cache",
        "host cache: stand-in rootfs tarballs, local registry data",
        default=str(Path.home() / ".cache" / "aibase"),
        kind="path",
    ),
    Setting("revision", "the git commit the images are labelled with (default: HEAD)"),
    Setting(
        "ca_bundle",
        "CA bundle for TLS inside builds, passed as a BuildKit secret ('none' to skip)",
        default=str(HOST_CA_BUNDLE),
    ),
    Setting(
        "pip_index_url_file",
        "file holding a private index URL (with its token), passed as a BuildKit secret",
        kind="path",
    ),
    Setting(
        "compression",
        "layer compression of pushed images (zstd: faster, needs Docker "
        ">= 23 / containerd >= 1.5 where it is pulled)",
        default="gzip",
        kind="choice",
        choices=COMPRESSIONS,
    ),
    Setting(
        "build_cache",
        "BuildKit layer cache: 'registry' (<registry>/<repository>:"
        "cache-<cell>) or a directory (default: off)",
    ),
    Setting("debug", "print tracebacks and debug lines", kind="bool"),
    Setting(
        "service",
        "vulnerability service (public services are only contacted when named)",
        kind="choice",
        choices=AUDIT_SERVICES,
        scope="audit",
    ),
    Setting(
        "osv_url",
        "an OSV-compatible /v1/query URL (a mirror) instead of the public one",
        scope="audit",
    ),
    Setting("image", "image to smoke-test (default: the variant's floating tag)", scope="smoke"),
    Setting("variant", "variant to smoke-test", default="cpu", scope="smoke"),
    Setting(
        "platform",
        "comma-separated platforms to smoke-test (default: every one in the config)",
        scope="smoke",
    ),
    Setting(
        "require_gpu", "fail instead of skipping when no GPU runtime is available", kind="bool"
    ),
)
SETTINGS: Mapping[str, Setting] = {s.name: s for s in _ALL}
SOURCES = ("flag", "env", "file", "default")


@dataclass(frozen=True)
class Resolved:
    setting: Setting
    text: str  # "" when unset
    source: str  # flag | env | file | default


def setting(name: str) -> Setting:
    return SETTINGS[name]


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
    if s.kind == "bool" and text.lower() not in _TRUE + _FALSE:
        raise ConfigError(f"{where}={text!r} is not a boolean", f"use one of {', '.join(_TRUE)}")
    if s.kind == "choice" and text not in s.choices:
        raise ConfigError(
            f"{where}={text!r} is not one of {', '.join(s.choices)}", "pick one of those"
        )
    if s.name == "revision" and not _REVISION_RE.match(text):
        raise ConfigError(
            f"{where}={text!r} is not a full git commit hash (40 hex digits)",
            "pass `git rev-parse HEAD`, or leave it unset to use HEAD",
        )


def find_config(start: Path) -> Path | None:
    """images.toml in start or the nearest directory above it (as git and nox find theirs)."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Settings:
    """The resolved values, typed, with where each came from."""

    resolved: Mapping[str, Resolved] = field(default_factory=dict)

    def text(self, name: str) -> str:
        return self.resolved[name].text

    def source(self, name: str) -> str:
        return self.resolved[name].source

    def flag(self, name: str) -> bool:
        return self.text(name).lower() in _TRUE

    def path(self, name: str) -> Path | None:
        text = self.text(name)
        return Path(text).expanduser().resolve() if text else None

    @property
    def config(self) -> Path:
        return Path(self.text("config"))

    @property
    def out(self) -> Path:
        return Path(self.text("out")).resolve()

    @property
    def cache(self) -> Path:
        return Path(self.text("cache")).expanduser().resolve()

    @property
    def ca_bundle(self) -> Path | None:
        text = self.text("ca_bundle")
        if text == "none" or not text:
            return None
        path = Path(text)
        if not path.is_file():
            if self.source("ca_bundle") == "default":
                return None  # no host trust store: builds get no bundle
            raise ConfigError(f"CA bundle {path} not found", "pass an existing file or 'none'")
        return path

    def render(self, names: Sequence[str]) -> str:
        """The block every run prints: value and source of each setting the task takes."""
        width = max((len(n) for n in names), default=0)
        lines = ["settings (flag > env > file > default):"]
        for name in names:
            r = self.resolved[name]
            origin = {"flag": r.setting.flag, "env": r.setting.env}.get(r.source, r.source)
            if r.source == "file":
                origin = f"file {r.setting.file_key}"
            lines.append(f"  {name:<{width}}  {r.text or '-'}  ({origin})")
        return "\n".join(lines)

    def as_rows(self, names: Sequence[str]) -> tuple[tuple[str, str, str], ...]:
        return tuple((n, self.text(n), self.source(n)) for n in names)


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    read_file: Callable[[Path], Mapping[str, Any]],
    cwd: Path,
) -> Settings:
    """Resolve every setting. read_file(config path) returns the file's values by name."""
    config = resolve_one(SETTINGS["config"], flags, env, {})
    found = find_config(cwd) if not config.text else None
    if config.text:
        path = Path(config.text)
        path = path if path.is_absolute() else (cwd / path)
    elif found is not None:
        path = found
    else:
        raise ConfigError(
            f"no {CONFIG_NAME} in {cwd} or any directory above it",
            f"run inside the ai-base checkout, or pass --config / set {SETTINGS['config'].env}",
        )
    resolved = {"config": Resolved(config.setting, str(path), config.source)}
    file = read_file(path)
    defaults = {"out": str((path.parent if found else cwd) / "build")}
    for s in _ALL[1:]:
        resolved[s.name] = resolve_one(s, flags, env, file, defaults.get(s.name))
    return Settings(resolved)
