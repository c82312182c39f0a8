"""OCI distribution API client: the only module that talks HTTP to a registry.

Plain HTTP on loopback (as the engine does), HTTPS elsewhere. Credentials come from the
Docker credential store (`credentials`), answer Basic or Bearer (token) challenges, and are
never printed. One client per registry host and run: the pipeline makes it once.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from aibase import log
from aibase.credentials import Credentials, load_credentials
from aibase.errors import NotFound, RegistryError

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
RETRY_STATUSES = {500, 502, 503, 504, 429}


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, with or without a port; `127.evil.example` is a name."""
    name = host.split("]")[0][1:] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        scheme = "http" if is_loopback(host) else "https"
        self.base = f"{scheme}://{host}"
        self._credentials = credentials if credentials is not None else load_credentials(host)
        self._client = httpx.Client(timeout=timeout, follow_redirects=True, transport=transport)
        self._auth_header: str | None = None
        self._attempts = attempts
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        url = self.base + path
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            hdrs = dict(headers or {})
            if self._auth_header:
                hdrs["Authorization"] = self._auth_header
            try:
                resp = self._client.request(method, url, headers=hdrs, content=content)
            except httpx.TransportError as exc:
                if attempt == self._attempts:
                    raise RegistryError(
                        f"registry {self.host}: {what}: cannot connect ({type(exc).__name__}: "
                        f"{exc}) after {attempt} attempts",
                        f"is the registry running? For the local default: invoke registry-up; "
                        f"else check --registry / AIBASE_REGISTRY ({self.host})",
                    ) from None
                log.info(f"registry {self.host}: {what}: {type(exc).__name__}, retry in {delay} s")
                self._sleep(delay)
                delay *= 2
                continue
            if resp.status_code == 401 and self._authenticate(resp, what):
                continue  # retry at once with the new header; does not count as a failure
            if resp.status_code in RETRY_STATUSES and attempt < self._attempts:
                log.info(
                    f"registry {self.host}: {what}: HTTP {resp.status_code}, retry in {delay} s"
                )
                self._sleep(delay)
                delay *= 2
                continue
            if resp.status_code in ok:
                return resp
            raise self._error(resp, what)
        raise RegistryError(f"registry {self.host}: {what}: gave up", "retry later")

    def _authenticate(self, resp: httpx.Response, what: str) -> bool:
        """Answer a 401 challenge once; False when there is nothing (new) to try."""
        if self._auth_header is not None and not self._auth_header.startswith("Bearer"):
            return False
        scheme, params = _parse_challenge(resp.headers.get("www-authenticate", ""))
        creds = self._credentials
        if scheme == "basic":
            if creds is None or self._auth_header is not None:
                return False
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self._auth_header = f"Basic {token}"
            return True
        if scheme == "bearer" and "realm" in params:
            if self._auth_header is not None and "insufficient_scope" not in str(params):
                return False
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            auth = (creds.username, creds.password) if creds else None
            try:
                tok = self._client.get(params["realm"], params=query, auth=auth)
            except httpx.TransportError as exc:
                raise RegistryError(
                    f"registry {self.host}: {what}: token service {params['realm']} "
                    f"unreachable ({type(exc).__name__})",
                    "check the registry's auth configuration",
                ) from None
            if tok.status_code != 200:
                return False
            body = tok.json()
            self._auth_header = f"Bearer {body.get('token') or body.get('access_token')}"
            return True
        return False

    def _error(self, resp: httpx.Response, what: str) -> RegistryError:
        code = resp.status_code
        if code == 401:
            return RegistryError(
                f"registry {self.host}: {what}: unauthorized (HTTP 401)",
                f"log in first: docker login {self.host}",
            )
        if code == 403:
            return RegistryError(
                f"registry {self.host}: {what}: forbidden (HTTP 403)",
                "the credential lacks permission for this repository",
            )
        if code == 404:
            return NotFound(
                f"registry {self.host}: {what}: not found (HTTP 404)",
                "check the repository, tag or digest",
            )
        return RegistryError(
            f"registry {self.host}: {what}: HTTP {code}: {resp.text[:300]}",
            "the registry failed; retry later or check its logs",
        )

    # -- API -----------------------------------------------------------------------------
    def ping(self) -> None:
        self._request("GET", "/v2/", "ping /v2/")

    def answers(self) -> bool:
        """True when /v2/ answers at all: 200, or 401 (it wants credentials)."""
        try:
            resp = self._client.get(self.base + "/v2/")
        except httpx.TransportError:
            return False
        return resp.status_code in (200, 401)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        what = f"GET manifest {repo}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        resp = self._request(
            "GET", f"/v2/{repo}/manifests/{reference}", what, headers={"Accept": ACCEPT}
        )
        body = resp.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"registry {self.host}: {what}: content digest {digest} does not match",
                "the registry returned corrupt or altered content; do not promote",
            )
        media = resp.headers.get("content-type", "").split(";")[0] or json.loads(body).get(
            "mediaType", ""
        )
        return Manifest(digest, media, body)

    def head_manifest(self, repo: str, reference: str) -> str | None:
        """The digest a tag points to now (HEAD), or None when the tag does not exist."""
        try:
            resp = self._request(
                "HEAD",
                f"/v2/{repo}/manifests/{reference}",
                f"HEAD manifest {repo}{'@' if reference.startswith('sha256:') else ':'}{reference}",
                headers={"Accept": ACCEPT},
            )
        except NotFound:
            return None
        digest = resp.headers.get("docker-content-digest")
        if digest and re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return str(digest)
        return self.get_manifest(repo, reference).digest  # the header is optional in the spec

    def get_blob(self, repo: str, digest: str) -> bytes:
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", f"GET blob {repo}@{digest}")
        got = "sha256:" + hashlib.sha256(resp.content).hexdigest()
        if got != digest:
            raise RegistryError(f"registry {self.host}: blob {digest} content mismatch", "retry")
        return resp.content

    def put_manifest(self, repo: str, tag: str, manifest: Manifest) -> str:
        resp = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            f"PUT manifest {repo}:{tag}",
            headers={"Content-Type": manifest.media_type},
            content=manifest.body,
            ok=(201, 200),
        )
        return str(resp.headers.get("docker-content-digest", manifest.digest))

    def list_tags(self, repo: str) -> list[str]:
        try:
            resp = self._request("GET", f"/v2/{repo}/tags/list", f"GET tags {repo}")
        except NotFound:
            return []
        return sorted(resp.json().get("tags") or [])

    def catalog(self) -> list[str]:
        resp = self._request("GET", "/v2/_catalog?n=1000", "GET catalog")
        return sorted(resp.json().get("repositories") or [])
