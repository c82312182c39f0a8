from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from aibase.errors import NotFound, RegistryError, RegistryUnreachable
from aibase.registry.client import RegistryClient
from aibase.registry.credentials import Credentials, load_credentials
from aibase.registry.referrers import has_referrers_api, list_referrers
from aibase.registry.trust import is_loopback, parse_challenge

from .conftest import FakeRegistry


def test_loopback_detection() -> None:
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1:5001")
    assert is_loopback("127.1.2.3") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com") and not is_loopback("128.0.0.1:5000")
    assert not is_loopback("127.evil.example:5000")  # a host name, not an address


def test_credentials_from_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert load_credentials("127.0.0.1:5001") is None
    auth = base64.b64encode(b"ci:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5001": {"auth": auth}}}))
    creds = load_credentials("127.0.0.1:5001")
    assert creds is not None and (creds.username, creds.password) == ("ci", "s3cret")
    assert "s3cret" not in repr(creds)


def test_docker_hub_credentials_are_found_under_the_index_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = base64.b64encode(b"hubuser:hubpw").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    )
    for host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        creds = load_credentials(host)
        assert creds is not None and creds.username == "hubuser", host
    assert load_credentials("localhost:5000") is None


def test_missing_manifest_is_a_typed_not_found(fake_registry: FakeRegistry) -> None:
    with fake_registry.client() as client:
        assert client.head_manifest("cerebral/x", "nope") is None
        with pytest.raises(NotFound):
            client.get_manifest("cerebral/x", "nope")


def test_head_manifest_uses_head(fake_registry: FakeRegistry) -> None:
    digest = fake_registry.add_image("cerebral/x", "amd64", {})
    fake_registry.manifests[("cerebral/x", "t")] = fake_registry.manifests[("cerebral/x", digest)]
    seen: list[tuple[str, str]] = []
    handle = fake_registry.handler

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return handle(request)

    fake_registry.handler = recording
    with fake_registry.client() as client:
        assert client.head_manifest("cerebral/x", "t") == digest
    # the loopback registry's scheme ping, then the HEAD alone (no GET of the manifest)
    assert seen == [("GET", "/v2/"), ("HEAD", "/v2/cerebral/x/manifests/t")]


def test_challenge_parsing() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry",
        "scope": "repository:a:pull",
    }
    assert parse_challenge('Basic realm="x"')[0] == "basic"


Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, sleeps: list[float]) -> RegistryClient:
    """A client of a registry elsewhere: https, no scheme ping to count."""
    return RegistryClient(
        "reg.example.com",
        credentials=Credentials("ci", "s3cr3t-Pw"),
        sleep=sleeps.append,
        transport=httpx.MockTransport(handler),
    )


def test_5xx_is_retried_with_backoff() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503 if len(calls) < 3 else 200, json={})

    sleeps: list[float] = []
    with _client(handler, sleeps) as client:
        client.ping()
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_connection_refused_names_registry_operation_and_fix() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    sleeps: list[float] = []
    with _client(handler, sleeps) as client, pytest.raises(RegistryError) as info:
        client.get_manifest("cerebral/ai-base", "cpu")
    text = info.value.render()
    assert "registry reg.example.com: GET manifest cerebral/ai-base:cpu: cannot connect" in text
    assert "invoke registry-up" in text and len(sleeps) == 3


def test_basic_challenge_is_answered_once_and_secret_never_in_errors() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with _client(handler, []) as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert seen[0] is None and (seen[1] or "").startswith("Basic ") and len(seen) == 2
    assert "docker login reg.example.com" in info.value.render()
    assert "s3cr3t-Pw" not in info.value.render()


def _tls_refused_by_plain_http(request: httpx.Request) -> httpx.Response:
    """What a plain-HTTP registry does to a TLS handshake, as httpx reports it."""
    if request.url.scheme == "https":
        raise httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    return httpx.Response(200, json={})


def test_loopback_registry_without_tls_gets_plain_http_after_a_tls_try() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return _tls_refused_by_plain_http(request)

    with RegistryClient(
        "127.0.0.1:5000",
        credentials=None,
        sleep=lambda _: None,
        transport=httpx.MockTransport(handler),
    ) as client:
        client.ping()
        client.ping()
    assert seen == [
        "https://127.0.0.1:5000/v2/",
        "http://127.0.0.1:5000/v2/",
        "http://127.0.0.1:5000/v2/",
    ]


@pytest.mark.parametrize("host", ["registry.example.com", "127.evil.example:5000"])
def test_a_remote_registry_never_gets_plain_http(host: str) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.scheme)
        return _tls_refused_by_plain_http(request)

    with (
        RegistryClient(
            host, credentials=None, sleep=lambda _: None, transport=httpx.MockTransport(handler)
        ) as client,
        pytest.raises(RegistryError, match="cannot connect"),
    ):
        client.ping()
    assert set(seen) == {"https"}


def _bearer(realm: str, token_response: Handler) -> tuple[Handler, list[tuple[str, str | None]]]:
    """A registry that wants a Bearer token from realm; token_response(request) answers."""
    calls: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.host, request.headers.get("authorization")))
        if request.url.path == "/token":
            return token_response(request)
        if request.headers.get("authorization") == "Bearer good":
            return httpx.Response(200, json={})
        return httpx.Response(
            401,
            headers={
                "WWW-Authenticate": f'Bearer realm="{realm}",service="reg",scope="repository:a:pull"'
            },
        )

    return handler, calls


def _client_for(host: str, handler: Handler, auth_hosts: tuple[str, ...] = ()) -> RegistryClient:
    return RegistryClient(
        host,
        credentials=Credentials("ci", "s3cr3t-Pw"),
        sleep=lambda _: None,
        transport=httpx.MockTransport(handler),
        auth_hosts=auth_hosts,
    )


def test_bearer_token_from_the_registrys_own_host() -> None:
    handler, calls = _bearer(
        "https://reg.example.com/token", lambda _: httpx.Response(200, json={"token": "good"})
    )
    with _client_for("reg.example.com", handler) as client:
        client.ping()
    assert [h for h, _ in calls] == ["reg.example.com"] * 3
    assert (calls[1][1] or "").startswith("Basic ")  # the credential went to the token service...
    assert calls[2][1] == "Bearer good"  # ...and the token to the registry


@pytest.mark.parametrize(
    ("realm", "problem"),
    [
        ("http://reg.example.com/token", "is not https"),
        ("https://collector.evil.example/token", "is on another host"),
    ],
)
def test_credentials_never_go_to_a_doubtful_realm(realm: str, problem: str) -> None:
    handler, calls = _bearer(realm, lambda _: httpx.Response(200, json={"token": "good"}))
    with _client_for("reg.example.com", handler) as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert problem in info.value.render()
    assert {h for h, _ in calls} == {"reg.example.com"}  # asked, and nothing sent to the realm
    assert "s3cr3t-Pw" not in info.value.render()


def test_a_configured_or_known_token_host_is_allowed() -> None:
    handler, _calls = _bearer(
        "https://auth.example.org/token", lambda _: httpx.Response(200, json={"token": "good"})
    )
    with _client_for("reg.example.com", handler, auth_hosts=("auth.example.org",)) as client:
        client.ping()
    hub, _ = _bearer(
        "https://auth.docker.io/token", lambda _: httpx.Response(200, json={"token": "good"})
    )
    with _client_for("registry-1.docker.io", hub) as client:
        client.ping()


def test_http_realm_is_allowed_for_a_loopback_registry() -> None:
    handler, _ = _bearer(
        "http://127.0.0.1:5000/token", lambda _: httpx.Response(200, json={"token": "good"})
    )
    with _client_for("127.0.0.1:5000", handler) as client:
        client.ping()


def test_a_token_answer_that_is_not_json_is_a_clear_error() -> None:
    handler, _ = _bearer(
        "https://reg.example.com/token", lambda _: httpx.Response(200, text="<html>login</html>")
    )
    with _client_for("reg.example.com", handler) as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert "answered without a token" in info.value.render()


def test_token_requests_are_retried_like_other_calls() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={"token": "good"})])
    handler, _ = _bearer("https://reg.example.com/token", lambda _: next(answers))
    with _client_for("reg.example.com", handler) as client:
        client.ping()


def test_an_expired_token_is_refreshed_once() -> None:
    tokens = iter(["old", "good", "good"])
    state = {"valid": "old"}

    def token(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token": next(tokens)})

    handler, calls = _bearer("https://reg.example.com/token", token)

    def accept(request: httpx.Request) -> httpx.Response:  # "old" is accepted once, then expires
        auth = request.headers.get("authorization")
        if request.url.path != "/token" and auth == "Bearer old" and state["valid"] == "old":
            state["valid"] = "expired"
            return httpx.Response(200, json={})
        return handler(request)

    with _client_for("reg.example.com", accept) as client:
        client.ping()  # gets "old"
        client.ping()  # 401 with "old": one refresh, "good"
    assert calls[-1][1] == "Bearer good"


def test_an_oversized_manifest_is_refused() -> None:
    big = b"{" + b" " * (4 * 1024 * 1024 + 10) + b"}"

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=big, headers={"Content-Type": "application/json"})

    with _client_for("localhost:5000", handler) as client, pytest.raises(RegistryError) as info:
        client.get_manifest("a", "t")
    assert "over the 4194304 byte limit" in info.value.render()


def test_a_registry_answering_a_digest_with_other_bytes_is_refused(
    fake_registry: FakeRegistry,
) -> None:
    digest = fake_registry.add_image("cerebral/x", "amd64", {})
    media, _ = fake_registry.manifests[("cerebral/x", digest)]
    fake_registry.manifests[("cerebral/x", digest)] = (media, b'{"tampered": true}')
    with fake_registry.client() as client, pytest.raises(RegistryError) as info:
        client.get_manifest("cerebral/x", digest)
    assert "does not match" in info.value.render()


def test_a_loopback_registry_is_pinged_once_before_its_first_request() -> None:
    """The scheme is decided by one GET /v2/ over TLS, before the request it serves, and
    kept: the request itself is never sent twice."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        return _tls_refused_by_plain_http(request)

    transport = httpx.MockTransport(handler)
    with RegistryClient("127.0.0.1:5000", credentials=None, transport=transport) as client:
        assert client.origin is None
        assert client.list_tags("cerebral/x") == []
        assert client.origin == "http://127.0.0.1:5000"
        client.catalog()
    assert seen == [
        "GET https://127.0.0.1:5000/v2/",
        "GET http://127.0.0.1:5000/v2/cerebral/x/tags/list",
        "GET http://127.0.0.1:5000/v2/_catalog?n=1000",
    ]


def test_a_registry_that_spoke_tls_is_never_asked_in_plain_http() -> None:
    """Decided once: after the loopback registry answered over TLS, a later connection that
    answers the handshake in plain HTTP (another program on the port) is an error, not a
    quiet downgrade of every request after it."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.scheme)
        if len(seen) <= 2:  # the ping and the first call: TLS
            return httpx.Response(200, json={"repositories": []})
        return _tls_refused_by_plain_http(request)

    transport = httpx.MockTransport(handler)
    with RegistryClient(
        "127.0.0.1:5000", credentials=None, sleep=lambda _: None, transport=transport
    ) as client:
        client.catalog()
        assert client.origin == "https://127.0.0.1:5000"
        with pytest.raises(RegistryUnreachable, match="cannot connect"):
            client.catalog()
    assert set(seen) == {"https"}


def test_a_loopback_registry_that_is_not_up_yet_is_asked_again() -> None:
    """No answer to the ping decides nothing: the registry may be starting (ensure_registry
    starts it after a first `answers()`), and may come up without TLS."""
    up = False

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("Connection refused")
        return _tls_refused_by_plain_http(request)

    transport = httpx.MockTransport(handler)
    with RegistryClient("127.0.0.1:5000", credentials=None, attempts=1, transport=transport) as c:
        assert not c.answers() and c.origin is None
        up = True
        assert c.answers() and c.origin == "http://127.0.0.1:5000"


def test_the_plain_http_fallback_is_not_a_failed_attempt() -> None:
    transport = httpx.MockTransport(_tls_refused_by_plain_http)
    with RegistryClient("127.0.0.1:5000", credentials=None, attempts=1, transport=transport) as c:
        assert c.answers()


def test_an_oversized_body_without_a_length_is_cut_off_while_streaming() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        chunks = (b" " * 65536 for _ in range(70))  # 4.4 MiB, no Content-Length
        return httpx.Response(200, content=chunks, headers={"Content-Type": "application/json"})

    with _client_for("localhost:5000", handler) as client, pytest.raises(RegistryError) as info:
        client.get_manifest("a", "t")
    assert "more than 4194304 bytes, over the limit" in info.value.render()


def test_a_realm_on_another_port_of_the_registry_host_is_another_host() -> None:
    handler, _calls = _bearer(
        "https://reg.example.com:8443/token", lambda _: httpx.Response(200, json={"token": "x"})
    )
    with _client_for("reg.example.com", handler) as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert "is on another host (reg.example.com:8443)" in info.value.render()


def test_a_blob_is_uploaded_through_the_client_and_only_to_this_registry(
    fake_registry: FakeRegistry,
) -> None:
    """upload_blob: the POST that opens the upload, the PUT with the digest; an upload
    location on another host is refused before any byte goes there. The client hands out no
    transport: registry.referrers (and any other module) goes through its methods."""
    with fake_registry.client() as client:
        digest = client.upload_blob("cerebral/x", b"payload")
        assert not hasattr(client, "session")
    assert fake_registry.blobs[digest] == b"payload"
    assert digest == "sha256:" + hashlib.sha256(b"payload").hexdigest()
    sent: list[str] = []

    def elsewhere(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.host}")
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "https://evil.example/v2/x/u/1"})
        return httpx.Response(201)

    fake_registry.handler = elsewhere
    with fake_registry.client() as client, pytest.raises(RegistryError, match="not this regis"):
        client.upload_blob("cerebral/x", b"payload")
    assert sent[-1] == "POST localhost" and not [s for s in sent if s.startswith("PUT")]


def test_a_referrers_answer_that_is_no_image_index_is_no_referrers_api(
    fake_registry: FakeRegistry,
) -> None:
    """A proxy answering 200 with an HTML page for a path it does not know: attaching an SBOM
    took that for the API and crashed on the page's JSON; it is the registry without one."""

    def html(request: httpx.Request) -> httpx.Response:
        if "/referrers/" in request.url.path:
            return httpx.Response(200, text="<html>welcome</html>")
        return httpx.Response(404)

    fake_registry.handler = html
    digest = "sha256:" + "a" * 64
    with fake_registry.client() as client:
        assert has_referrers_api(client, "cerebral/x", digest) is False
        assert list_referrers(client, "cerebral/x", digest) == []
