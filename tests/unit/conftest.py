"""Unit tests: pure logic, seconds. An autouse guard fails any real subprocess or network
call (as cibuildwheel's mock_protection does); the registry is an in-memory fake behind
httpx.MockTransport, so the real client code runs without a socket."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest
from aibase.registry.referrers import EMPTY, referrers_tag

from . import attested

REPO = Path(__file__).resolve().parents[2]

VALID = """
[project]
repository = "cerebral/ai-base"
registry = "localhost:5000"
platforms = ["linux/amd64", "linux/arm64"]
source = "https://example.invalid/ai-base"

[variants.cpu]
dockerfile = "docker/Dockerfile.ai-base.cpu"
base = "python:3.11-slim"
python = "3.11"
size_budget_mb = 2500
requirements = ["common.in"]
torch = { torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }

[variants.cpu.platforms."linux/amd64"]
torch_index = "https://download.pytorch.org/whl/cpu"
[variants.cpu.platforms."linux/arm64"]

[variants.cuda]
dockerfile = "docker/Dockerfile.ai-base.cuda"
base = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
python = "3.11"
size_budget_mb = 6000
requirements = ["common.in"]
torch = { torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }

[variants.cuda.platforms."linux/amd64"]
cuda = "12.1"
[variants.cuda.platforms."linux/arm64"]
"""

# What probe.py prints in a good cpu image on arm64 (a field less, or one more, is refused).
GOOD_PROBE: dict[str, Any] = {
    "version": 1,  # probe.REPORT_VERSION
    "python": {"version": "3.11.2", "executable": "/opt/venv/bin/python", "prefix": "/opt/venv"},
    "packages": {"torch": "2.4.1", "fastapi": "0.115.0", "pip": "23.0.1"},
    "imports": {"torch": {"torch": None}, "fastapi": {"fastapi": None}},
    "pip_check": {"ok": True, "output": "No broken requirements found."},
    "torch": {
        **{"version": "2.4.1", "cuda": None, "cuda_compiled": False, "cuda_available": False},
        **{"device_count": 0, "devices": [], "cudnn": None, "matmul": None},
    },
    "cuda_libraries": [],
    "nvidia_packages": [],
    "platform": {"machine": "aarch64", "system": "Linux"},
    "env": {},
}


class RealWorldCall(AssertionError):
    """A unit test tried to reach a process, a socket or the engine."""


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **_kwargs: Any) -> Any:
        raise RealWorldCall(f"unit tests must not {what}: {args[:2]!r}")

    return refuse


@pytest.fixture(autouse=True)
def no_real_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    monkeypatch.setattr(os, "system", _refuse("start a process"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("open a connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("open a connection"))
    monkeypatch.setattr(socket, "create_connection", _refuse("open a connection"))
    for name in list(os.environ):  # no setting leaks in from the shell running the tests
        if name.startswith("AIBASE_") or name in ("GITHUB_ACTIONS", "DOCKER_CONFIG"):
            monkeypatch.delenv(name)


class WriteConfig(Protocol):
    def __call__(self, text: str = VALID) -> Path: ...


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a config (VALID, optionally edited) into tmp_path and return its path."""

    def _write(text: str = VALID) -> Path:
        (tmp_path / "common.in").write_text("fastapi==0.115.0\n")
        path = tmp_path / "images.toml"
        path.write_text(text)
        return path

    return _write


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class FakeRegistry:
    """The distribution API's manifest and blob endpoints over dicts, for MockTransport."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}  # (repo, ref) -> body
        self.blobs: dict[str, bytes] = {}
        self.puts: list[tuple[str, str]] = []  # (repo, tag) of every PUT, in order
        self.images: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {}  # digest ->
        # (platform, labels, files) of each image add_image made
        # what the client's transport calls: a test wraps it to intercept or record requests
        self.handler: Callable[[httpx.Request], httpx.Response] = self.handle

    def add_blob(self, raw: bytes) -> str:
        digest = digest_of(raw)
        self.blobs[digest] = raw
        return digest

    def add_manifest(self, repo: str, body: dict[str, Any], *tags: str) -> str:
        raw = json.dumps(body).encode()
        digest = digest_of(raw)
        for ref in (digest, *tags):
            self.manifests[(repo, ref)] = (body["mediaType"], raw)
        return digest

    def add_image(
        self,
        repo: str,
        arch: str,
        labels: dict[str, str],
        size: int = 1000,
        files: dict[str, str] | None = None,
    ) -> str:
        """An image of one (real, tiny) layer holding `files` (default: attested.image_files)."""
        config = {"architecture": arch, "os": "linux", "config": {"Labels": labels}}
        cfg_raw = json.dumps(config).encode()
        cfg = self.add_blob(cfg_raw)
        held = files if files is not None else attested.image_files(arch)
        layer = self.add_blob(attested.layer_tar(held))
        digest = self.add_manifest(
            repo,
            {
                "mediaType": OCI_MANIFEST,
                "config": {"digest": cfg, "size": len(cfg_raw)},
                "layers": [{"mediaType": attested.LAYER_TYPE, "digest": layer, "size": size}],
            },
        )
        self.images[digest] = (f"linux/{arch}", labels, held)
        return digest

    def add_index(self, repo: str, images: dict[str, str], *tags: str, attest: bool = True) -> str:
        """An index of these images; attest: with the provenance BuildKit puts in it and
        the SBOM each cell attaches (as build-all leaves them)."""
        entries = [
            {
                "mediaType": OCI_MANIFEST,
                "digest": d,
                "platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]},
            }
            for p, d in images.items()
        ]
        for platform, digest in images.items() if attest else ():
            _, labels, files = self.images[digest]
            revision = labels.get("org.opencontainers.image.revision", "")
            entries.append(
                self.add_provenance(repo, digest, attested_statement(digest, platform, revision))
            )
            self.attach_sbom(
                repo, digest, attested.sbom_document(repo, files, digest, platform, revision)
            )
        return self.add_manifest(repo, {"mediaType": OCI_INDEX, "manifests": entries}, *tags)

    def add_provenance(self, repo: str, image: str, statement: dict[str, Any]) -> dict[str, Any]:
        """An attestation manifest holding `statement`; returns its index entry."""
        blob = self.add_blob(json.dumps(statement).encode())
        body = {
            "mediaType": OCI_MANIFEST,
            "config": {"digest": self.add_blob(b"{}"), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": blob,
                    "size": 1,
                    "annotations": {"in-toto.io/predicate-type": statement["predicateType"]},
                }
            ],
        }
        digest = self.add_manifest(repo, body)
        return attested.attestation_entry(image, digest, len(json.dumps(body)))

    def attach_sbom(self, repo: str, image: str, document: dict[str, Any]) -> str:
        """An SBOM artifact referring to `image`, listed under the fallback tag (as `attach`
        leaves it on a registry without the referrers API); returns its digest."""
        media, raw = self.manifests[(repo, image)]
        artifact, payload = attested.sbom_artifact(Manifest(image, media, raw), document)
        self.add_blob(payload)
        self.add_blob(EMPTY)
        self.manifests[(repo, artifact.digest)] = (artifact.media_type, artifact.body)
        tag = referrers_tag(image)
        empty: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        known = (repo, tag) in self.manifests
        listed = json.loads(self.manifests[(repo, tag)][1]) if known else empty
        listed["manifests"].append(attested.fallback_entry(artifact))
        self.add_manifest(repo, listed, tag)
        return artifact.digest

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if path.endswith("/tags/list"):
            repo = path.removeprefix("/v2/").removesuffix("/tags/list")
            tags = sorted(r for (name, r) in self.manifests if name == repo and ":" not in r)
            return httpx.Response(200, json={"name": repo, "tags": tags})
        if "/referrers/" in path:
            return httpx.Response(404)  # distribution 2.8: no referrers API
        repo, kind, ref = _split_api_path(path)
        if kind == "uploads":
            if request.method == "POST":
                return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/1"})
            self.blobs[request.url.params["digest"]] = request.content
            return httpx.Response(201)
        if kind == "blobs":
            raw = self.blobs.get(ref)
            return httpx.Response(200, content=raw) if raw else httpx.Response(404)
        if request.method == "PUT":
            raw = request.content
            media = request.headers["content-type"]
            for key in (ref, digest_of(raw)):
                self.manifests[(repo, key)] = (media, raw)
            self.puts.append((repo, ref))
            return httpx.Response(201, headers={"Docker-Content-Digest": digest_of(raw)})
        found = self.manifests.get((repo, ref))
        if found is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        media, raw = found
        headers = {"Content-Type": media, "Docker-Content-Digest": digest_of(raw)}
        return httpx.Response(
            200, content=b"" if request.method == "HEAD" else raw, headers=headers
        )

    def client(self, host: str = "localhost:5000") -> RegistryClient:
        # through self.handler at each request: a test may wrap it after the client exists
        transport = httpx.MockTransport(lambda request: self.handler(request))
        return RegistryClient(host, credentials=None, sleep=lambda _: None, transport=transport)


def attested_statement(image: str, platform: str, revision: str) -> dict[str, Any]:
    return attested.provenance(image, platform, revision=revision)


def _split_api_path(path: str) -> tuple[str, str, str]:
    rest = path.removeprefix("/v2/")
    for kind in ("manifests", "blobs/uploads", "blobs"):
        marker = f"/{kind}/"
        if marker in rest:
            repo, _, ref = rest.partition(marker)
            return repo, kind.split("/")[-1], ref
    raise AssertionError(f"unexpected registry path {path}")


@pytest.fixture
def fake_registry() -> FakeRegistry:
    return FakeRegistry()
