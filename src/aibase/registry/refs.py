"""The one image-reference parser: `[registry/]repository[:tag][@digest]`, with Docker's rules.

The first path component is a registry when it has a `.` or a `:` or is `localhost`;
otherwise the image is on Docker Hub, whose names are normalised here once: `docker.io`,
`index.docker.io` and no registry at all are the same place, a one-component Hub name
lives under `library/`, and its API host is `registry-1.docker.io`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from aibase.errors import ConfigError

DOCKER_HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HUB_API_HOST = "registry-1.docker.io"
HUB_CREDENTIAL_KEY = "https://index.docker.io/v1/"  # where `docker login` stores Hub logins

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$")

EXAMPLE = "python:3.11-slim, localhost:5000/cerebral/ai-base:cpu or REPO@sha256:<64 hex>"


@dataclass(frozen=True)
class ImageRef:
    registry: str  # normalised: "docker.io" for every spelling of Docker Hub
    repository: str  # "library/python" on the Hub
    tag: str | None = None
    digest: str | None = None

    @property
    def is_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def api_host(self) -> str:
        """The host that answers the distribution API for this registry."""
        return HUB_API_HOST if self.is_hub else self.registry

    @property
    def reference(self) -> str:
        """What the manifest API takes: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"

    def mirrored(self, mirror: str | None) -> ImageRef:
        """The same image in a mirror (`localhost:5000/m`): Hub images keep their path
        (`library/python`) as a pull-through cache does; others keep their registry in it."""
        if not mirror:
            return self
        host, _, prefix = mirror.rstrip("/").partition("/")
        path = self.repository if self.is_hub else f"{self.registry}/{self.repository}"
        return replace(self, registry=host, repository=f"{prefix}/{path}" if prefix else path)


def is_registry_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_ref(text: str) -> ImageRef:
    """Parse and validate a reference; the error names what is wrong and shows examples."""
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST_RE.fullmatch(digest):
        raise _bad(text, f"{digest!r} is not a sha256 digest")
    first, _, remainder = rest.partition("/")
    if remainder and is_registry_host(first):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG_RE.fullmatch(tag):
            raise _bad(text, f"{tag!r} is not a valid tag")
    if registry in HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    elif not _HOST_RE.fullmatch(registry):
        raise _bad(text, f"{registry!r} is not a registry host[:port]")
    if not _REPOSITORY_RE.fullmatch(path):
        raise _bad(text, f"{path!r} is not a repository path (lower-case, '/'-separated)")
    return ImageRef(registry, path, tag, digest or None)


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_RE.fullmatch(tag))


def _bad(text: str, problem: str) -> ConfigError:
    return ConfigError(f"{text!r} is not an image reference: {problem}", f"e.g. {EXAMPLE}")
