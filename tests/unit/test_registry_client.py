from __future__ import annotations

import base64
import json

import pytest

from aibase.credentials import load_credentials
from aibase.errors import NotFound, RegistryError
from aibase.registry import _parse_challenge, is_loopback


def test_loopback_detection():
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1:5001")
    assert is_loopback("127.1.2.3") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com") and not is_loopback("128.0.0.1:5000")
    assert not is_loopback("127.evil.example:5000")  # a host name, not an address


def test_credentials_from_docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert load_credentials("127.0.0.1:5001") is None
    auth = base64.b64encode(b"ci:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5001": {"auth": auth}}}))
    creds = load_credentials("127.0.0.1:5001")
    assert creds is not None and (creds.username, creds.password) == ("ci", "s3cret")
    assert "s3cret" not in repr(creds)


def test_docker_hub_credentials_are_found_under_the_index_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = base64.b64encode(b"hubuser:hubpw").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    )
    for host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        creds = load_credentials(host)
        assert creds is not None and creds.username == "hubuser", host
    assert load_credentials("localhost:5000") is None


def test_missing_manifest_is_a_typed_not_found(fake_registry):
    with fake_registry.client() as client:
        assert client.head_manifest("cerebral/x", "nope") is None
        with pytest.raises(NotFound):
            client.get_manifest("cerebral/x", "nope")


def test_head_manifest_uses_head(fake_registry):
    digest = fake_registry.add_image("cerebral/x", "amd64", {})
    fake_registry.manifests[("cerebral/x", "t")] = fake_registry.manifests[("cerebral/x", digest)]
    methods = []
    handle = fake_registry.handle
    fake_registry.handle = lambda req: (methods.append(req.method), handle(req))[1]
    with fake_registry.client() as client:
        assert client.head_manifest("cerebral/x", "t") == digest
    assert methods == ["HEAD"]


def test_challenge_parsing():
    scheme, params = _parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry",
        "scope": "repository:a:pull",
    }
    assert _parse_challenge('Basic realm="x"')[0] == "basic"


def _client(handler, sleeps):
    import httpx

    from aibase.registry import Credentials, RegistryClient

    return RegistryClient(
        "localhost:5000",
        credentials=Credentials("ci", "s3cr3t-Pw"),
        sleep=sleeps.append,
        transport=httpx.MockTransport(handler),
    )


def test_5xx_is_retried_with_backoff():
    import httpx

    calls = []

    def handler(request):
        calls.append(request.url.path)
        return httpx.Response(503 if len(calls) < 3 else 200, json={})

    sleeps: list[float] = []
    with _client(handler, sleeps) as client:
        client.ping()
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_connection_refused_names_registry_operation_and_fix():
    import httpx

    def handler(request):
        raise httpx.ConnectError("Connection refused")

    sleeps: list[float] = []
    with _client(handler, sleeps) as client, pytest.raises(RegistryError) as info:
        client.get_manifest("cerebral/ai-base", "cpu")
    text = info.value.render()
    assert "registry localhost:5000: GET manifest cerebral/ai-base:cpu: cannot connect" in text
    assert "invoke registry-up" in text and len(sleeps) == 3


def test_basic_challenge_is_answered_once_and_secret_never_in_errors():
    import httpx

    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with _client(handler, []) as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert seen[0] is None and seen[1].startswith("Basic ") and len(seen) == 2
    assert "docker login localhost:5000" in info.value.render()
    assert "s3cr3t-Pw" not in info.value.render()
