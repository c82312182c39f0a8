"""Every setting, declared once: its flag, its AIBASE_* variable (derived from the name), its
key in images.toml where it has one, its kind and its default.

Precedence, the same for all: flag > environment > images.toml > default; `precedence`
resolves them once into `resolved.Settings`, the typed object a run reads (an attribute per
setting declared here), which keeps where each came from: every run prints that block and
the report keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CONFIG_NAME = "images.toml"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
COMPRESSIONS = ("gzip", "zstd")
AUDIT_SERVICES = ("osv", "pypi")
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
FILE_TABLE = "project"  # images.toml's table a setting's file_key names a key of


@dataclass(frozen=True)
class Setting:
    name: str  # unique; the variable is AIBASE_<NAME>, the attribute Settings.<name>
    help: str
    default: str = ""  # as text; "" means unset
    file_key: str | None = None  # "project.KEY" in images.toml: that key sets it
    kind: str = "str"  # str | bool | int | list | path | choice | secret (never printed)
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


_ALL: tuple[Setting, ...] = (
    Setting(
        "config", f"the {CONFIG_NAME} to use (default: found walking up from here)", kind="path"
    ),
    Setting("registry", "target registry host[:port]", file_key="project.registry"),
    Setting("repository", "image repository, e.g. cerebral/ai-base", file_key="project.repository"),
    Setting(
        "platforms",
        "comma-separated platforms to build, e.g. linux/arm64 (never narrows "
        "what an index must hold: that is images.toml's project.platforms)",
        file_key="project.platforms",
        kind="list",
    ),
    Setting("base_mirror", "registry prefix the base images are pulled from instead"),
    Setting(
        "registry_ca",
        "a CA (PEM) for the registry's TLS certificate, besides the system "
        "store, SSL_CERT_FILE and /etc/docker/certs.d/<host>/ca.crt",
        kind="path",
    ),
    Setting(
        "auth_hosts",
        "comma-separated hosts a registry's token service may live on, besides "
        "the registry itself (Docker Hub's auth.docker.io is known)",
        kind="list",
    ),
    Setting(
        "out",
        f"output directory for run records and reports (default: build/ beside the {CONFIG_NAME})",
        kind="path",
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
        kind="path",
    ),
    Setting(
        "pip_index_url_file",
        "file holding a private index URL (with its token), passed as a BuildKit secret",
        kind="path",
    ),
    Setting(
        "compression",
        "layer compression of pushed images (zstd: faster, needs Docker >= 23 "
        "/ containerd >= 1.5 where it is pulled)",
        default="gzip",
        kind="choice",
        choices=COMPRESSIONS,
    ),
    Setting(
        "build_cache",
        "BuildKit layer cache: 'registry' (<registry>/<repository>:cache-"
        "<cell>) or a directory (default: off)",
    ),
    Setting(
        "builder",
        "buildx builder to build on (a BuildKit cluster: docker-container, remote "
        "or kubernetes driver; cells then push by digest)",
    ),
    Setting(
        "jobs",
        "cells built at once (default: 1 on the docker driver, else one per platform)",
        kind="int",
    ),
    Setting("debug", "print tracebacks and debug lines", kind="bool"),
    Setting(
        "require_gpu", "fail instead of skipping when no GPU runtime is available", kind="bool"
    ),
    Setting(
        "refresh_os",
        "rebuild the image's own steps (OS packages: the bases' security "
        "updates), every Python group layer from the cache (build.yml's weekly schedule)",
        kind="bool",
    ),
    Setting(
        "notify_url",
        "after a promotion, POST a repository_dispatch-shaped event here (off by default)",
    ),
    Setting(
        "notify_token",
        "bearer token for --notify-url (GitHub: may dispatch to the repo)",
        kind="secret",
    ),
    Setting(
        "runners",
        "CI runner label per platform, comma-separated platform=label",
        default="linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm",
    ),
    Setting(
        "gpu_runner",
        "CI runner label with a GPU for the CUDA smoke tests ('none': promote without one)",
    ),
    Setting(
        "audit_service",
        "vulnerability service (public services are only contacted when named)",
        kind="choice",
        choices=AUDIT_SERVICES,
        short="service",
    ),
    Setting(
        "audit_osv_url",
        "an OSV-compatible /v1/query URL (a mirror) instead of the public one",
        short="osv_url",
    ),
    Setting(
        "smoke_image", "image to smoke-test (default: the variant's floating tag)", short="image"
    ),
    Setting("smoke_variant", "variant to smoke-test", default="cpu", short="variant"),
    Setting(
        "smoke_platforms",
        "comma-separated platforms to smoke-test (default: every one in the config)",
        kind="list",
        short="platform",
    ),
)
SETTINGS: Mapping[str, Setting] = {s.name: s for s in _ALL}
SOURCES = ("flag", "env", "file", "default")

# A setting's name where code names one (a task's list, a source asked for): mypy checks it.
SettingName = Literal[
    "config",
    "registry",
    "repository",
    "platforms",
    "base_mirror",
    "registry_ca",
    "auth_hosts",
    "out",
    "cache",
    "revision",
    "ca_bundle",
    "pip_index_url_file",
    "compression",
    "build_cache",
    "builder",
    "jobs",
    "debug",
    "require_gpu",
    "refresh_os",
    "notify_url",
    "notify_token",
    "runners",
    "gpu_runner",
    "audit_service",
    "audit_osv_url",
    "smoke_image",
    "smoke_variant",
    "smoke_platforms",
]


def environ() -> Mapping[str, str]:
    """The process environment: read here, and only here, for AIBASE_* settings."""
    return os.environ


def is_true(text: str) -> bool:
    return text.lower() in TRUE_WORDS
