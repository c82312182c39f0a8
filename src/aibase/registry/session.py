"""One registry host's HTTP: where requests go (the scheme, decided once), retries, the body
cap, the answer to an auth challenge, and an HTTP status as an error: the only module that
imports httpx. `registry.client` speaks the distribution API over it.

HTTPS, trusting the CAs `trust` names; plain HTTP only on loopback and only when the
registry does not speak TLS (as the engine does). Credentials come from the Docker
credential store (`credentials`), answer Basic or Bearer challenges (`trust` decides which
token services may have them), and are never printed. Bodies are capped at 4 MiB.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import httpx

from aibase import log
from aibase.errors import NotFound, RegistryError, RegistryUnreachable
from aibase.registry.credentials import Credentials
from aibase.registry.trust import (
    check_realm,
    is_loopback,
    parse_challenge,
    speaks_plain_http,
    ssl_context,
    untrusted,
)

RETRY_STATUSES = frozenset({500, 502, 503, 504, 429})
MAX_BODY = 4 * 1024 * 1024  # manifests, configs and tokens are small; more is an attack


def read_capped(resp: httpx.Response, limit: int, what: str) -> bytes:
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


class SessionOptions(TypedDict, total=False):
    """What a caller may set on a session besides its host and credential."""

    ca: Path | None  # a CA to trust besides the system's (--registry-ca)
    auth_hosts: tuple[str, ...]  # token services credentials may go to (--auth-hosts)
    timeout: float
    attempts: int
    sleep: Callable[[float], None]
    transport: httpx.BaseTransport | None  # tests: httpx.MockTransport, no socket


class RegistrySession:
    """One registry host, one connection pool, one credential (looked up by the caller)."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None,
        ca: Path | None = None,
        auth_hosts: tuple[str, ...] = (),
        timeout: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        self._loopback = is_loopback(host)
        # a registry elsewhere is always https; one on loopback is asked (see `origin`)
        self._origin: str | None = None if self._loopback else f"https://{host}"
        self._credentials = credentials
        verify = ssl_context(host, ca) if transport is None else True
        self._client = httpx.Client(timeout=timeout, transport=transport, verify=verify)
        self._auth_header: str | None = None
        self._auth_hosts = auth_hosts
        self._attempts = attempts
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    @property
    def origin(self) -> str | None:
        """`https://HOST` or `http://HOST`: where this session's requests go, once decided
        (None before the first ping of a loopback registry that answered)."""
        return self._origin

    def url(self, path: str) -> str:
        """The full URL of an API path. The scheme is decided once, by the first request's
        ping, and kept for the session: a registry that spoke TLS is never asked in plain
        HTTP later, whatever a later connection answers."""
        if self._origin is None:
            scheme = self._ping_scheme()
            if scheme is None:  # nothing answered: undecided, the request's retries say so
                return f"https://{self.host}{path}"
            self._origin = f"{scheme}://{self.host}"
        return self._origin + path

    def _ping_scheme(self) -> str | None:
        """One GET /v2/ over TLS to a loopback registry: "https" when it answers at all,
        "http" when it answers the handshake in plain HTTP (as the engine accepts for its
        insecure range 127.0.0.0/8), None when nothing answers (it may be starting)."""
        try:
            with self._client.stream("GET", f"https://{self.host}/v2/"):
                return "https"
        except httpx.TransportError as exc:
            if speaks_plain_http(exc):
                log.debug(f"registry {self.host}: no TLS on loopback, plain HTTP")
                return "http"
            return None

    def send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        limit: int = MAX_BODY,
        auth: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP exchange with retries for transport errors and 5xx/429; reads at most
        `limit` bytes of body."""
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            request = self._client.build_request(method, url, **kwargs)
            try:
                resp = self._exchange(request, auth, limit, what)
            except httpx.TransportError as exc:
                self._raise_unless_transient(exc, what, attempt)
                problem = type(exc).__name__
            else:
                log.debug(f"{method} {url} -> HTTP {resp.status_code} ({len(resp.content)} bytes)")
                if resp.status_code not in RETRY_STATUSES or attempt == self._attempts:
                    return resp
                problem = f"HTTP {resp.status_code}"
            log.debug(f"registry {self.host}: {what}: {problem}, retry in {delay} s")
            self._sleep(delay)
            delay *= 2
        raise RegistryError(f"registry {self.host}: {what}: no attempt made", "retry later")

    def _exchange(
        self, request: httpx.Request, auth: tuple[str, str] | None, limit: int, what: str
    ) -> httpx.Response:
        """One request, its body read whole (at most `limit` bytes)."""
        # redirects: blob stores (Docker Hub's CDN); httpx drops the credential when a
        # redirect leaves the origin
        resp = self._client.send(request, stream=True, auth=auth, follow_redirects=True)
        try:
            body = read_capped(resp, limit, f"registry {self.host}: {what}")
        finally:
            resp.close()
        return httpx.Response(resp.status_code, headers=resp.headers, content=body, request=request)

    def _raise_unless_transient(self, exc: httpx.TransportError, what: str, attempt: int) -> None:
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

    def request(
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
        """An API call with the session's credential; a status outside `ok` raises."""
        refreshed = False
        while True:
            hdrs = dict(headers or {})
            if self._auth_header:
                hdrs["Authorization"] = self._auth_header
            url = self.url(path)
            resp = self.send(method, url, what, headers=hdrs, content=content, limit=limit)
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
        tok = self.send("GET", realm, f"{what}: token from {realm}", params=query, auth=auth)
        if tok.status_code != 200:
            return False
        self._auth_header = f"Bearer {self._token(tok, realm, what)}"
        return True

    def _token(self, tok: httpx.Response, realm: str, what: str) -> str:
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
        return token

    def _error(self, resp: httpx.Response, what: str) -> RegistryError:
        code, where = resp.status_code, f"registry {self.host}: {what}"
        known = {
            401: ("unauthorized", f"log in first: docker login {self.host}"),
            403: ("forbidden", "the credential lacks permission for this repository"),
            404: ("not found", "check the repository, tag or digest"),
        }
        if code in known:
            problem, fix = known[code]
            error = NotFound if code == 404 else RegistryError
            return error(f"{where}: {problem} (HTTP {code})", fix)
        return RegistryError(
            f"{where}: HTTP {code}: {resp.text[:300]}",
            "the registry failed; retry later or check its logs",
        )
