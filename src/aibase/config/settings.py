"""Every setting, declared once: its flag, its AIBASE_* variable (derived from the name), its
key in images.toml where it has one, its type and its default.

Precedence, the same for all: flag > environment > images.toml > default. `resolve` records
where each value came from; every run prints that block and the report keeps it.
"""

from __future__ import annotations

import os
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
    name: str  # unique; the variable is AIBASE_<NAME>
    help: str
    default: str = ""  # as text; "" means unset
    file_key: str | None = None  # dotted path in images.toml
    kind: str = "str"  # str | bool | path | choice | secret (never printed)
    choices: tuple[str, ...] = ()
    short: str = ""  # the flag's name where it is shorter than the setting's (audit_service)

    @property
    def param(self) -> str:
        """The task parameter (and so the flag) that carries it."""
        return self.short or self.name

    @property
    def flag(self) -> str:
        return "--" + self.param.replace("_", "-")

    @property
    def env(self) -> str:
        return f"AIBASE_{self.name.upper()}"


# fmt: off
_ALL: tuple[Setting, ...] = (
    Setting("config", f"the {CONFIG_NAME} to use (default: found walking up from here)"),
    Setting("registry", "target registry host[:port]", file_key="project.registry"),
    Setting("repository", "image repository, e.g. cerebral/ai-base", file_key="project.repository"),
    Setting("platforms", "comma-separated platforms to build, e.g. linux/arm64 (never narrows "
            "what an index must hold: that is images.toml's project.platforms)",
            file_key="project.platforms"),
    Setting("base_mirror", "registry prefix the base images are pulled from instead"),
    Setting("registry_ca", "a CA (PEM) for the registry's TLS certificate, besides the system "
            "store, SSL_CERT_FILE and /etc/docker/certs.d/<host>/ca.crt", kind="path"),
    Setting("auth_hosts", "comma-separated hosts a registry's token service may live on, besides "
            "the registry itself (Docker Hub's auth.docker.io is known)"),
    Setting("out", f"output directory for run records and reports (default: build/ beside the "
            f"{CONFIG_NAME})"),
    Setting("cache", "host cache: stand-in rootfs tarballs, local registry data",
            default=str(Path.home() / ".cache" / "aibase"), kind="path"),
    Setting("revision", "the git commit the images are labelled with (default: HEAD)"),
    Setting("ca_bundle", "CA bundle for TLS inside builds, passed as a BuildKit secret ('none' "
            "to skip)", default=str(HOST_CA_BUNDLE)),
    Setting("pip_index_url_file", "file holding a private index URL (with its token), passed as "
            "a BuildKit secret", kind="path"),
    Setting("compression", "layer compression of pushed images (zstd: faster, needs Docker >= 23 "
            "/ containerd >= 1.5 where it is pulled)", default="gzip", kind="choice",
            choices=COMPRESSIONS),
    Setting("build_cache", "BuildKit layer cache: 'registry' (<registry>/<repository>:cache-"
            "<cell>) or a directory (default: off)"),
    Setting("builder", "buildx builder to build on (a BuildKit cluster: docker-container, remote "
            "or kubernetes driver; cells then push by digest)"),
    Setting("jobs", "cells built at once (default: 1 on the docker driver, else one per "
            "platform)"),
    Setting("debug", "print tracebacks and debug lines", kind="bool"),
    Setting("require_gpu", "fail instead of skipping when no GPU runtime is available",
            kind="bool"),
    Setting("refresh_os", "rebuild the image's own steps (OS packages: the bases' security "
            "updates), every Python group layer from the cache (build.yml's weekly schedule)",
            kind="bool"),
    Setting("notify_url", "after a promotion, POST a repository_dispatch-shaped event here (off "
            "by default)"),
    Setting("notify_token", "bearer token for --notify-url (GitHub: may dispatch to the repo)",
            kind="secret"),
    Setting("runners", "CI runner label per platform, comma-separated platform=label",
            default="linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm"),
    Setting("gpu_runner", "CI runner label with a GPU for the CUDA smoke tests ('none': promote "
            "without one)"),
    Setting("audit_service", "vulnerability service (public services are only contacted when "
            "named)", kind="choice", choices=AUDIT_SERVICES, short="service"),
    Setting("audit_osv_url", "an OSV-compatible /v1/query URL (a mirror) instead of the public "
            "one", short="osv_url"),
    Setting("smoke_image", "image to smoke-test (default: the variant's floating tag)",
            short="image"),
    Setting("smoke_variant", "variant to smoke-test", default="cpu", short="variant"),
    Setting("smoke_platforms", "comma-separated platforms to smoke-test (default: every one in "
            "the config)", short="platform"),
)
# fmt: on
SETTINGS: Mapping[str, Setting] = {s.name: s for s in _ALL}
SOURCES = ("flag", "env", "file", "default")


@dataclass(frozen=True)
class Resolved:
    setting: Setting
    text: str  # "" when unset
    source: str  # flag | env | file | default


def environ() -> Mapping[str, str]:
    """The process environment: read here, and only here, for AIBASE_* settings."""
    return os.environ


def debug_wanted(flags: Mapping[str, Any]) -> bool:
    """--debug / AIBASE_DEBUG, known before anything else is (so a failing load shows it)."""
    return is_true(resolve_one(SETTINGS["debug"], flags, environ(), {}).text)


def is_true(text: str) -> bool:
    return text.lower() in _TRUE


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
    if s.name == "revision" and not _REVISION_RE.fullmatch(text):
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
        return is_true(self.text(name))

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

    def origin(self, name: str) -> str:
        """Where a value came from, as a user would write it: the flag, the variable..."""
        r = self.resolved[name]
        if r.source == "file":
            return f"images.toml {r.setting.file_key}"
        return {"flag": r.setting.flag, "env": r.setting.env}.get(r.source, "the default")

    def render(self, names: Sequence[str], every: bool = True) -> str:
        """The block every run prints: value and source of each setting the task takes; not
        `every`: the config file and what a flag, the environment or the file set, and how
        many are at their defaults (a refusal is then a few lines, not a table of defaults)."""
        shown = [n for n in names if every or n == "config" or self.source(n) != "default"]
        width = max((len(n) for n in shown), default=0)
        lines = ["settings (flag > env > file > default):"]
        for name in shown:
            r = self.resolved[name]
            origin = {"flag": r.setting.flag, "env": r.setting.env}.get(r.source, r.source)
            if r.source == "file":
                origin = f"file {r.setting.file_key}"
            value = "***" if r.setting.kind == "secret" and r.text else (r.text or "-")
            lines.append(f"  {name:<{width}}  {value}  ({origin})")
        if len(shown) < len(names):
            lines.append(
                f"  ({len(names) - len(shown)} more at their defaults: --debug lists them)"
            )
        return "\n".join(lines)

    def as_rows(self, names: Sequence[str]) -> tuple[tuple[str, str, str], ...]:
        """For the report: a secret shows only whether it was set."""
        return tuple(
            (
                n,
                "***" if SETTINGS[n].kind == "secret" and self.text(n) else self.text(n),
                self.source(n),
            )
            for n in names
        )


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
        taken = names is None or s.name in names
        resolved[s.name] = resolve_one(
            s, flags if taken else {}, env if taken else {}, file, defaults.get(s.name)
        )
    return Settings(resolved)
