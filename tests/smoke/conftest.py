"""Smoke tests run against a built image ref: `pytest tests/smoke --variant cuda --image REF`.

Options (and AIBASE_* equivalents): --config (AIBASE_CONFIG), --variant (AIBASE_SMOKE_VARIANT),
--image (AIBASE_SMOKE_IMAGE; default: the variant's floating tag on the configured registry),
--platform (AIBASE_SMOKE_PLATFORMS; default: every platform of the config), --require-gpu.
One container start per platform gathers every fact (the probe); the serving test starts
one more per platform through docker compose."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from aibase import containers
from aibase.config import Config, Overrides, VariantConfig, load_config
from aibase.errors import EngineError

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aibase smoke")
    group.addoption("--config", default=os.environ.get("AIBASE_CONFIG", str(REPO / "images.toml")))
    group.addoption("--variant", default=os.environ.get("AIBASE_SMOKE_VARIANT", "cpu"))
    group.addoption("--image", default=os.environ.get("AIBASE_SMOKE_IMAGE", ""))
    group.addoption(
        "--platform",
        default=os.environ.get("AIBASE_SMOKE_PLATFORMS", ""),
        help="comma-separated, default: every platform in the config",
    )
    group.addoption(
        "--require-gpu",
        action="store_true",
        default=bool(os.environ.get("AIBASE_REQUIRE_GPU")),
        help="fail (not skip) when no GPU runtime is available",
    )


@dataclass(frozen=True)
class Target:
    config: Config
    variant: VariantConfig
    image: str
    platforms: tuple[str, ...]
    require_gpu: bool


def _engine_or_skip() -> None:
    problem = None
    if not shutil.which("docker"):
        problem = "docker CLI not found"
    elif subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        problem = "Docker Engine not reachable"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the engine, but: {problem}")
        pytest.skip(f"smoke tests need a Docker Engine: {problem}")


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    _engine_or_skip()
    opt = request.config.getoption
    cfg = load_config(opt("--config"), Overrides())
    variant = cfg.variant(opt("--variant"))
    image = opt("--image") or f"{cfg.image}:{variant.name}"
    plats = tuple(p for p in opt("--platform").split(",") if p) or cfg.platforms
    for p in plats:
        variant.platform(p)
    print(f"\nsmoke target: {image} ({variant.name}) on {', '.join(plats)}")
    return Target(cfg, variant, image, plats, opt("--require-gpu"))


@pytest.fixture(scope="session")
def probes(target: Target) -> dict[str, containers.ProbeRun]:
    """One container start per platform: every fact the tests below check."""
    runs: dict[str, containers.ProbeRun] = {}
    for platform in target.platforms:
        try:
            runs[platform] = containers.run_probe(target.image, platform)
        except EngineError as exc:
            pytest.fail(f"cannot probe {target.image} on {platform}: {exc.render()}")
    print(f"container starts for the probe: {len(runs)}")
    return runs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "platform" in metafunc.fixturenames:
        cfg = load_config(metafunc.config.getoption("--config"), Overrides())
        chosen = metafunc.config.getoption("--platform")
        plats = [p for p in chosen.split(",") if p] or list(cfg.platforms)
        metafunc.parametrize("platform", plats)


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(Path(__file__).with_name("docker-compose.yml"))


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"aibase-smoke-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup(target: Target) -> list[str]:
    os.environ["AIBASE_SMOKE_IMAGE"] = target.image
    services = [f"app-{p.split('/')[1]}" for p in target.platforms]
    return [f"up --build --wait {' '.join(services)}"]
