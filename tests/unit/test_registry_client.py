from __future__ import annotations

import base64
import json

import pytest

from aibase.errors import RegistryError
from aibase.registry import _parse_challenge, is_loopback, load_credentials, split_ref


@pytest.mark.parametrize(
    ("ref", "expect"),
    [
        ("localhost:5000/cerebral/ai-base:cpu", ("localhost:5000", "cerebral/ai-base", "cpu")),
        ("127.0.0.1:5000/a/b@sha256:" + "a" * 64, ("127.0.0.1:5000", "a/b", "sha256:" + "a" * 64)),
        ("localhost:5000/a/b", ("localhost:5000", "a/b", "latest")),
    ],
)
def test_split_ref(ref, expect):
    assert split_ref(ref) == expect


def test_split_ref_needs_host():
    with pytest.raises(RegistryError):
        split_ref("python:3.11")


def test_loopback_detection():
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1:5001")
    assert not is_loopback("registry.example.com") and not is_loopback("128.0.0.1:5000")


def test_credentials_from_docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert load_credentials("127.0.0.1:5001") is None
    auth = base64.b64encode(b"ci:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5001": {"auth": auth}}}))
    creds = load_credentials("127.0.0.1:5001")
    assert creds is not None and (creds.username, creds.password) == ("ci", "s3cret")


def test_challenge_parsing():
    scheme, params = _parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry",
                      "scope": "repository:a:pull"}
    assert _parse_challenge('Basic realm="x"')[0] == "basic"
