from __future__ import annotations

import pytest

from aibase.errors import ConfigError
from aibase.registry.refs import ImageRef, parse_ref

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "api_host", "repo", "reference"),
    [
        ("python:3.11-slim", "registry-1.docker.io", "library/python", "3.11-slim"),
        ("python", "registry-1.docker.io", "library/python", "latest"),
        ("docker.io/python:3.11", "registry-1.docker.io", "library/python", "3.11"),
        ("index.docker.io/library/python:3.11", "registry-1.docker.io", "library/python", "3.11"),
        (
            "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
            "registry-1.docker.io",
            "nvidia/cuda",
            "12.4.1-runtime-ubuntu22.04",
        ),
        ("localhost:5000/cerebral/ai-base:cpu", "localhost:5000", "cerebral/ai-base", "cpu"),
        ("localhost:5000/a/b", "localhost:5000", "a/b", "latest"),
        (f"127.0.0.1:5000/a/b@{D}", "127.0.0.1:5000", "a/b", D),
        (
            f"localhost:5000/m/python:3.11-slim@{D}",
            "localhost:5000",
            "m/python",
            D,
        ),  # digest decides
        ("ghcr.io/org/img:1", "ghcr.io", "org/img", "1"),
        ("localhost/x:1", "localhost", "x", "1"),
    ],
)
def test_parse(text: str, api_host: str, repo: str, reference: str) -> None:
    ref = parse_ref(text)
    assert (ref.api_host, ref.repository, ref.reference) == (api_host, repo, reference)


def test_hub_spellings_are_one_registry() -> None:
    a, b, c = (
        parse_ref(t)
        for t in ("python:3.11", "docker.io/library/python:3.11", "index.docker.io/python:3.11")
    )
    assert a == b == c and a.registry == "docker.io" and a.is_hub
    assert str(a) == "docker.io/library/python:3.11"


def test_round_trip_and_digest() -> None:
    text = f"localhost:5000/cerebral/ai-base:cpu@{D}"
    assert str(parse_ref(text)) == text
    assert parse_ref(f"localhost:5000/x@{D}").name == "localhost:5000/x"


@pytest.mark.parametrize(
    ("text", "mirror", "expect"),
    [
        (
            "python:3.11-slim",
            "localhost:5000/mirror",
            "localhost:5000/mirror/library/python:3.11-slim",
        ),
        (
            f"python:3.11-slim@{D}",
            "localhost:5000/m/",
            f"localhost:5000/m/library/python:3.11-slim@{D}",
        ),
        ("nvidia/cuda:12.4.1", "localhost:5000/m", "localhost:5000/m/nvidia/cuda:12.4.1"),
        ("ghcr.io/org/img:1", "localhost:5000/mirror", "localhost:5000/mirror/ghcr.io/org/img:1"),
        ("python:3.11", "localhost:5000", "localhost:5000/library/python:3.11"),
    ],
)
def test_mirrored(text: str, mirror: str, expect: str) -> None:
    assert str(parse_ref(text).mirrored(mirror)) == expect
    assert parse_ref(text).mirrored(None) == parse_ref(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("python:3.11-slim@sha256:12", "is not a sha256 digest"),
        ("Python:3.11", "is not a repository path"),
        ("python:", "is not a valid tag"),
        ("localhost:5000/a/b:" + "t" * 200, "is not a valid tag"),
        ("bad host:1/x", "is not a registry host"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ref(text)
    assert problem in info.value.render() and "e.g." in info.value.render()


def test_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ImageRef("docker.io", "library/python").tag = "x"  # type: ignore[misc]
