"""Whom a registry client trusts: which CAs sign a registry's certificate, and which token
services may receive its credentials. Pure policy; client.py makes the calls."""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aibase.errors import RegistryError
from aibase.registry.refs import HUB_ALIASES

DOCKER_CERTS = Path("/etc/docker/certs.d")  # where the engine looks: <host:port>/ca.crt
HUB_AUTH = "auth.docker.io"  # Docker Hub's token service, a host of its own


def ssl_context(
    host: str, extra_ca: Path | None = None, certs_dir: Path = DOCKER_CERTS
) -> ssl.SSLContext:
    """The system store (OpenSSL honours SSL_CERT_FILE / SSL_CERT_DIR), plus the CA the
    engine trusts for this registry (certs.d), plus one given by flag."""
    context = ssl.create_default_context()
    for ca in (certs_dir / host / "ca.crt", extra_ca):
        if ca is not None and ca.is_file():
            context.load_verify_locations(cafile=str(ca))
    if extra_ca is not None and not extra_ca.is_file():
        raise RegistryError(f"registry CA {extra_ca} not found", "pass an existing PEM file")
    return context


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, with or without a port; `127.evil.example` is a name."""
    name = host.split("]")[0][1:] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def check_realm(realm: str, registry: str, loopback: bool, allowed: Iterable[str] = ()) -> None:
    """A token realm may receive credentials only over https (http only when the registry
    itself is on loopback), on the registry's own host, Docker Hub's known token host, or
    a host configured explicitly (--auth-hosts)."""
    parts = urlsplit(realm)
    plain_ok = parts.scheme == "http" and loopback and is_loopback(parts.netloc)
    if parts.scheme != "https" and not plain_ok:
        raise RegistryError(
            f"registry {registry}: token realm {realm!r} is not https: credentials are not sent",
            "fix the registry's auth configuration (realm must be https)",
        )
    host = parts.netloc.rsplit("@", 1)[-1]
    if parts.port in (None, 443 if parts.scheme == "https" else 80):
        host = parts.hostname or host  # the default port is the same origin
    known = {registry, *allowed}
    if registry in HUB_ALIASES:
        known.add(HUB_AUTH)
    if host not in known:
        raise RegistryError(
            f"registry {registry}: token realm {realm!r} is on another host ({host}): "
            "credentials are not sent there",
            f"if that host is the registry's token service, allow it: --auth-hosts {host} "
            f"(AIBASE_AUTH_HOSTS)",
        )


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < 10:
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


def untrusted(exc: BaseException) -> bool:
    return any(isinstance(c, ssl.SSLCertVerificationError) for c in _causes(exc))


def speaks_plain_http(exc: BaseException) -> bool:
    """A TLS handshake answered by a plain-HTTP server (not a certificate problem)."""
    text = " ".join(str(c) for c in _causes(exc))
    return not untrusted(exc) and any(
        s in text for s in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "packet length")
    )
