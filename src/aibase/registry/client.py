"""OCI distribution API client: manifests, blobs, tags, the catalog, digests checked.
With `registry.session` (its HTTP: scheme, retries, auth), the only code that talks HTTP to
a registry. One client per registry host and run: the pipeline makes it once.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Unpack
from urllib.parse import urlsplit

from aibase.errors import NotFound, RegistryError, RegistryUnreachable
from aibase.registry.credentials import Credentials, load_credentials
from aibase.registry.oci import ACCEPT, Manifest
from aibase.registry.session import MAX_BODY, RegistrySession, SessionOptions


class RegistryClient:
    """One registry host, one connection pool, one credential lookup (made once per run)."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        """credentials: None looks them up where `docker login` left them; options: the
        session's (a CA, token hosts, timeout, attempts, a transport for tests)."""
        self.host = host
        found = credentials if credentials is not None else load_credentials(host)
        self._session = RegistrySession(host, credentials=found, **options)

    @property
    def origin(self) -> str | None:
        """Where the requests go (`https://HOST`, or `http://HOST` on loopback without TLS)."""
        return self._session.origin

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> None:
        self._session.request("GET", "/v2/", "ping /v2/")

    def answers(self) -> bool:
        """True when /v2/ answers at all: 200, or 401 (it wants credentials). A registry that
        answers but cannot be trusted (its certificate) is an error, not "down"."""
        try:
            resp = self._session.send("GET", self._session.url("/v2/"), "ping /v2/")
        except RegistryUnreachable:
            return False
        return resp.status_code in (200, 401)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        what = f"GET manifest {repo}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        resp = self._session.request(
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
            resp = self._session.request(
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
        resp = self._session.request("GET", f"/v2/{repo}/blobs/{digest}", what, limit=limit)
        got = "sha256:" + hashlib.sha256(resp.content).hexdigest()
        if got != digest:
            raise RegistryError(f"registry {self.host}: blob {digest} content mismatch", "retry")
        return resp.content

    def upload_blob(self, repo: str, data: bytes) -> str:
        """One blob, uploaded in one PUT after the POST that opens the session; its digest.
        The upload goes only where this registry says, on this registry."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        what = f"upload blob {repo}@{digest}"
        opened = self._session.request("POST", f"/v2/{repo}/blobs/uploads/", what, ok=(202,))
        location = urlsplit(opened.headers.get("location", ""))
        if not location.path.startswith("/v2/") or location.netloc not in ("", self.host):
            raise RegistryError(
                f"registry {self.host}: {what}: upload location {location.geturl()!r} is not "
                "this registry's",
                "check the registry's configured host name",
            )
        query = f"{location.query}&" if location.query else ""
        self._session.request(
            "PUT",
            f"{location.path}?{query}digest={digest}",
            what,
            headers={"Content-Type": "application/octet-stream"},
            content=data,
            ok=(201,),
        )
        return digest

    def get_referrers(self, repo: str, digest: str) -> Any:
        """The referrers API's answer for `digest` (an image index); NotFound where the
        registry has no such API (distribution 2.8: the fallback tag stands in)."""
        what = f"GET referrers {repo}@{digest}"
        resp = self._session.request("GET", f"/v2/{repo}/referrers/{digest}", what)
        try:
            listed = resp.json()
        except ValueError:
            listed = None
        if not isinstance(listed, dict) or not isinstance(listed.get("manifests"), list):
            # a proxy's or an old registry's page for a path it does not know: no API
            raise NotFound(
                f"registry {self.host}: {what} answered {resp.status_code} without an image "
                "index: taken as no referrers API",
                "nothing to do: the referrers tag (sha256-<hex>) stands in",
            )
        return listed

    def put_manifest(self, repo: str, tag: str, manifest: Manifest) -> str:
        resp = self._session.request(
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
            resp = self._session.request("GET", f"/v2/{repo}/tags/list", f"GET tags {repo}")
        except NotFound:
            return []
        return sorted(resp.json().get("tags") or [])

    def catalog(self) -> list[str]:
        resp = self._session.request("GET", "/v2/_catalog?n=1000", "GET catalog")
        return sorted(resp.json().get("repositories") or [])
