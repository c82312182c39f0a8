"""examples/service, built as a team would: FROM the base (here the fixture's, pinned by
digest), its own requirement compiled from source, served by uvicorn; on both platforms."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from .conftest import IT_REPO, REGISTRY, REPO, Built

pytestmark = pytest.mark.engine
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


@pytest.mark.parametrize("platform", sorted(MACHINES))
def test_the_example_service_builds_on_the_base_and_serves(built: Built, platform: str) -> None:
    tag = f"aibase-example-service:{platform.split('/')[1]}"
    base = f"{REGISTRY}/{IT_REPO}@{built.index_digest}"  # a base pinned by digest
    subprocess.run(
        ["docker", "buildx", "build", "--platform", platform, "--load", "--tag", tag,
         "--build-arg", f"BASE_IMAGE={base}",
         "--secret", "id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt",
         str(REPO / "examples" / "service")],
        check=True,
    )  # fmt: skip
    container = subprocess.run(
        ["docker", "run", "-d", "--platform", platform, "-p", "127.0.0.1::8000", tag],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        port = subprocess.run(["docker", "port", container, "8000"], capture_output=True,
                              text=True, check=True).stdout.split(":")[-1].strip()  # fmt: skip
        health = None
        for _ in range(120):  # uvicorn under QEMU takes a while to start
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(1)
        assert health is not None, subprocess.run(["docker", "logs", container],
                                                  capture_output=True, text=True).stdout  # fmt: skip
        assert health["status"] == "ok" and health["machine"] == MACHINES[platform]
        assert health["ujson"] == "5.10.0" and health["ujson_built_from"].endswith(".so")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
