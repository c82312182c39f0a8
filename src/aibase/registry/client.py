"""OCI distribution API client: the only module that talks HTTP to a registry.

HTTPS, trusting the CAs `trust` names; plain HTTP only on loopback and only when the
registry does not speak TLS (as the engine does). Credentials come from the Docker
credential store (`credentials`), answer Basic or Bearer challenges (`trust` decides which
token services may have them), and are never printed. Bodies are capped
at 4 MiB. One client per registry host and run: the pipeline makes it once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from aibase import log
from aibase.errors import NotFound, RegistryError, RegistryUnreachable
from aibase.registry.credentials import Credentials, load_credentials
from aibase.registry.oci import ACCEPT, Manifest
from aibase.registry.trust import (
    check_realm,
    is_loopback,
    parse_challenge,
    speaks_plain_http,
    ssl_context,
    untrusted,
)

RETRY_STATUSES = {500, 502, 503, 504, 429}
MAX_BODY = 4 * 1024 * 1024  # manifests, configs and tokens are small; more is an attack


def _read_capped(resp: httpx.Response, limit: int, what: str) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RegistryError(f"{what}: {declared} bytes, over the {limit} byte limit", "refused")
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise RegistryError(f"{what}: more than {limit} bytes, over the limit", "refused")
        chunks.append(chunk)
    return b"".join(chunks)


class RegistryClient:
    """One registry host, one connection pool, one credential lookup (made once per run)."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        ca: Path | None = None,
        auth_hosts: tuple[str, ...] = (),
        timeout: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        self._loopback = is_loopback(host)
        # https first, always; on loopback a registry that answers TLS with plain HTTP gets
        # plain HTTP, as the engine does for its default insecure range 127.0.0.0/8
        self.base = f"https://{host}"
        self._credentials = credentials if credentials is not None else load_credentials(host)
        verify = ssl_context(host, ca) if transport is None else True
        self._client = httpx.Client(timeout=timeout, transport=transport, verify=verify)
        self._auth_header: str | None = None
        self._auth_hosts = auth_hosts
        self._attempts = attempts
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------
    def _send(
        self, method: str, url: str, what: str, *, limit: int = MAX_BODY, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP exchange with retries for transport errors and 5xx/429; reads at most
        `limit` bytes of body. Falls back to plain HTTP once on a loopback registry that
        does not speak TLS."""
        delay = 0.5
        auth = kwargs.pop("auth", None)
        attempt = 0
        while attempt < self._attempts:
            attempt += 1
            try:
                request = self._client.build_request(method, url, **kwargs)
                # redirects: blob stores (Docker Hub's CDN); httpx drops the credential
                # when a redirect leaves the origin
                resp = self._client.send(request, stream=True, auth=auth, follow_redirects=True)
                try:
                    body = _read_capped(resp, limit, f"registry {self.host}: {what}")
                finally:
                    resp.close()
            except httpx.TransportError as exc:
                ours = url.startswith(f"https://{self.host}/")
                if ours and self._loopback and speaks_plain_http(exc):
                    self.base = f"http://{self.host}"  # not a failed attempt: the other scheme
                    url = self.base + url.removeprefix(f"https://{self.host}")
                    attempt -= 1
                    log.debug(f"registry {self.host}: no TLS on loopback, plain HTTP")
                    continue
                if untrusted(exc):
                    raise RegistryError(
                        f"registry {self.host}: {what}: TLS certificate not trusted ({exc})",
                        f"trust its CA: --registry-ca FILE, SSL_CERT_FILE, or "
                        f"/etc/docker/certs.d/{self.host}/ca.crt (the engine reads it too)",
                    ) from None
                if attempt == self._attempts:
                    raise RegistryUnreachable(
                        f"registry {self.host}: {what}: cannot connect ({type(exc).__name__}: "
                        f"{exc}) after {attempt} attempts",
                        f"is the registry running? For the local default: invoke registry-up; "
                        f"else check --registry / AIBASE_REGISTRY ({self.host})",
                    ) from None
                log.debug(f"registry {self.host}: {what}: {type(exc).__name__}, retry in {delay} s")
                self._sleep(delay)
                delay *= 2
                continue
            log.debug(f"{method} {url} -> HTTP {resp.status_code} ({len(body)} bytes)")
            if resp.status_code in RETRY_STATUSES and attempt < self._attempts:
                log.debug(
                    f"registry {self.host}: {what}: HTTP {resp.status_code}, retry in {delay} s"
                )
                self._sleep(delay)
                delay *= 2
                continue
            return httpx.Response(
                resp.status_code, headers=resp.headers, content=body, request=request
            )
        raise RegistryError(f"registry {self.host}: {what}: gave up", "retry later")

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200,),
        limit: int = MAX_BODY,
    ) -> httpx.Response:
        refreshed = False
        while True:
            hdrs = dict(headers or {})
            if self._auth_header:
                hdrs["Authorization"] = self._auth_header
            url = self.base + path
            resp = self._send(method, url, what, headers=hdrs, content=content, limit=limit)
            if resp.status_code == 401 and not refreshed and self._authenticate(resp, what):
                refreshed = True  # one new credential per request: a new or expired token
                continue
            if resp.status_code in ok:
                return resp
            raise self._error(resp, what)

    def _authenticate(self, resp: httpx.Response, what: str) -> bool:
        """Answer a 401 challenge; False when there is nothing (new) to try."""
        scheme, params = parse_challenge(resp.headers.get("www-authenticate", ""))
        creds = self._credentials
        if scheme == "basic":
            if creds is None or (self._auth_header or "").startswith("Basic "):
                return False
            basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self._auth_header = f"Basic {basic}"
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        realm = params["realm"]
        check_realm(realm, self.host, self._loopback, self._auth_hosts)
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        auth = (creds.username, creds.password) if creds else None
        tok = self._send("GET", realm, f"{what}: token from {realm}", params=query, auth=auth)
        if tok.status_code != 200:
            return False
        token: object = None
        try:
            body = tok.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            pass
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"registry {self.host}: {what}: token service {realm} answered without a token "
                f"(HTTP {tok.status_code}, {tok.headers.get('content-type', 'no content type')})",
                "check the registry's auth configuration",
            )
        self._auth_header = f"Bearer {token}"
        return True

    def _error(self, resp: httpx.Response, what: str) -> RegistryError:
        code, where = resp.status_code, f"registry {self.host}: {what}"
        known = {
            401: ("unauthorized", f"log in first: docker login {self.host}"),
            403: ("forbidden", "the credential lacks permission for this repository"),
            404: ("not found", "check the repository, tag or digest"),
        }
        if code in known:
            problem, fix = known[code]
            return (NotFound if code == 404 else RegistryError)(
                f"{where}: {problem} (HTTP {code})", fix
            )
        return RegistryError(
            f"{where}: HTTP {code}: {resp.text[:300]}",
            "the registry failed; retry later or check its logs",
        )

    # -- API -----------------------------------------------------------------------------
    def ping(self) -> None:
        self._request("GET", "/v2/", "ping /v2/")

    def answers(self) -> bool:
        """True when /v2/ answers at all: 200, or 401 (it wants credentials). A registry that
        answers but cannot be trusted (its certificate) is an error, not "down"."""
        try:
            resp = self._send("GET", self.base + "/v2/", "ping /v2/")
        except RegistryUnreachable:
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

    def get_blob(self, repo: str, digest: str, limit: int = MAX_BODY) -> bytes:
        """A blob, read whole: configs by default; a caller reading layers raises `limit`."""
        what = f"GET blob {repo}@{digest}"
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", what, limit=limit)
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
