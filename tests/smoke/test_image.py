"""What each image promises, checked inside it (probe) and in the registry (labels, size)."""

from __future__ import annotations

import re

import httpx
import pytest
from pytest_docker.plugin import Services

from aibase.host import engine
from aibase.registry.client import RegistryClient
from aibase.registry.refs import parse_ref
from aibase.release.smoke import NO_GPU, check_probe, locked_packages
from aibase.release.verify import check_index, fetch_index

from .conftest import Target

pytestmark = pytest.mark.engine


def test_image_keeps_every_promise(
    target: Target, probes: dict[str, engine.ProbeRun], platform: str
) -> None:
    """Python minor, every locked package at its version and importable, pip check, torch
    build and CUDA per the config, no CUDA libraries in a non-CUDA image: all problems at once."""
    report = probes[platform].report
    locked = locked_packages(target.variant, platform)
    problems = check_probe(report, target.variant, platform, locked)
    assert not problems, f"{target.image} on {platform}:\n  - " + "\n  - ".join(problems)


def test_python_is_the_venv_first_on_path(
    target: Target, probes: dict[str, engine.ProbeRun], platform: str
) -> None:
    py = probes[platform].report.python
    assert py.executable.startswith("/opt/venv/bin/python")
    assert py.minor == target.variant.python


def test_labels_and_size_in_the_registry(target: Target) -> None:
    ref = parse_ref(target.image)
    with RegistryClient(ref.api_host) as client:
        fetched = fetch_index(client, ref)
    result = check_index(target.config, target.variant, fetched)
    print(result.table())
    assert result.ok, "\n".join(result.problems)


def test_gpu(target: Target, platform: str) -> None:
    spec = target.variant.platform(platform)
    if not spec.cuda:
        pytest.skip(f"{target.variant.name} promises no CUDA on {platform}")
    access = engine.gpu_access()
    if access is None:
        if target.require_gpu:
            pytest.fail(f"--require-gpu: {NO_GPU}")
        pytest.skip(f"{NO_GPU}; pass --require-gpu on a GPU runner to make this fail")
    report = engine.run_probe(target.image, platform, gpu=access).report
    locked = locked_packages(target.variant, platform)
    problems = check_probe(report, target.variant, platform, locked, gpu_required=True)
    assert not problems, f"{target.image} on {platform} with a GPU ({access}):\n  - " + (
        "\n  - ".join(problems)
    )


def _counter(metrics: str) -> float:
    m = re.search(r"^aibase_smoke_health_checks_total (\S+)$", metrics, re.M)
    assert m, "the prometheus-client counter is not exposed on /metrics"
    return float(m.group(1))


def test_image_serves_fastapi_with_metrics(
    target: Target, docker_services: Services, platform: str
) -> None:
    service = f"app-{platform.split('/')[1]}"
    port = docker_services.port_for(service, 8000)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    docker_services.wait_until_responsive(check=up, timeout=180.0, pause=1.0)
    first = _counter(httpx.get(f"{base}/metrics/", timeout=10).text)
    health = httpx.get(f"{base}/health", timeout=10).json()
    assert health["status"] == "ok"
    assert health["python"].rsplit(".", 1)[0] == target.variant.python
    assert health["machine"] == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
    assert _counter(httpx.get(f"{base}/metrics/", timeout=10).text) == first + 1
