"""Registry credentials, read where `docker login` leaves them (never printed).

`$DOCKER_CONFIG/config.json` (default ~/.docker): `credHelpers` per host, a `credsStore`,
or base64 `auths`. Docker Hub logins are stored under `https://index.docker.io/v1/`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.registry.refs import HUB_ALIASES, HUB_CREDENTIAL_KEY


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # keeps the secret out of tracebacks and debug output
        return f"Credentials(username={self.username!r}, password='***')"


def docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))


def credential_keys(host: str) -> tuple[str, ...]:
    """The keys a login for host may be stored under, most specific first."""
    if host in HUB_ALIASES:
        return (HUB_CREDENTIAL_KEY, "index.docker.io", "docker.io", "registry-1.docker.io")
    return (host, f"https://{host}", f"http://{host}")


def _from_helper(helper: str, key: str) -> Credentials | None:
    try:
        out = subprocess.run(  # not echoed: its output is a secret
            [f"docker-credential-{helper}", "get"],
            input=key,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except FileNotFoundError:
        log.warn(f"credential helper docker-credential-{helper} not found: no login for {key}")
        return None
    except subprocess.TimeoutExpired:
        log.warn(f"credential helper docker-credential-{helper} hung for 20 s: no login for {key}")
        return None
    if out.returncode != 0:
        return None
    try:
        data = json.loads(out.stdout)
        return Credentials(data["Username"], data["Secret"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def load_credentials(host: str) -> Credentials | None:
    """The stored login for a registry host, or None."""
    try:
        cfg = json.loads((docker_config_dir() / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    auths = cfg.get("auths") or {}
    for key in credential_keys(host):
        helper = (cfg.get("credHelpers") or {}).get(key) or cfg.get("credsStore")
        if helper:
            found = _from_helper(helper, key)
            if found:
                return found
        entry = auths.get(key)
        if entry and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(user, password)
    return None
