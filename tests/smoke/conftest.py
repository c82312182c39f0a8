"""Smoke tests run against a built image ref: `pytest tests/smoke --variant cuda --image REF`.

Options and their variables come from aibase.config.settings (declared once): --config
(AIBASE_CONFIG), --variant (AIBASE_SMOKE_VARIANT), --image (AIBASE_SMOKE_IMAGE; default: the
variant's floating tag on the configured registry), --platform (AIBASE_SMOKE_PLATFORMS; default:
every platform of the config), --require-gpu (AIBASE_REQUIRE_GPU).
One container start per platform gathers every fact (the probe); the serving test starts
one more per platform through docker compose."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from aibase.config.loader import load_config
from aibase.config.model import Config, VariantConfig
from aibase.config.precedence import resolve_one
from aibase.config.settings import SETTINGS, is_true
from aibase.errors import EngineError, RegistryError
from aibase.host import engine
from aibase.registry.client import RegistryClient
from aibase.registry.refs import parse_ref

REPO = Path(__file__).resolve().parents[2]


def _default(name: str) -> str:
    return resolve_one(SETTINGS[name], {}, os.environ, {}).text


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aibase smoke")
    for name in ("config", "smoke_variant", "smoke_image", "smoke_platforms"):
        s = SETTINGS[name]
        default = _default(name) or (str(REPO / "images.toml") if name == "config" else "")
        group.addoption(s.flag, default=default, help=f"{s.help} [{s.env}]")
    s = SETTINGS["require_gpu"]
    group.addoption(
        s.flag, action="store_true", help=f"{s.help} [{s.env}]", default=is_true(_default(s.name))
    )


@dataclass(frozen=True)
class Target:
    config: Config
    variant: VariantConfig
    image: str
    platforms: tuple[str, ...]
    require_gpu: bool


def _engine_or_skip() -> None:
    problem = engine.engine_problem(engine.gather_engine_facts())
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the engine, but: {problem}")
        pytest.skip(f"smoke tests need a Docker Engine: {problem}")


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    _engine_or_skip()
    opt = request.config.getoption
    cfg = load_config(opt("--config"))
    variant = cfg.variant(opt("--variant"))
    image = opt("--image") or f"{cfg.image}:{variant.name}"
    plats = tuple(p for p in opt("--platform").split(",") if p) or cfg.platforms
    for p in plats:
        variant.platform(p)
    _exists_or_exit(image, variant.name, opt("--config"))
    print(f"\nsmoke target: {image} ({variant.name}) on {', '.join(plats)}")
    return Target(cfg, variant, image, plats, opt("--require-gpu"))


def _exists_or_exit(image: str, variant: str, config: str) -> None:
    """Before anything was built, say so in one line (not six errors and tracebacks)."""
    ref = parse_ref(image)
    try:
        with RegistryClient(ref.api_host) as client:
            found = client.head_manifest(ref.repository, ref.reference)
    except RegistryError as exc:
        found, why = None, exc.message
    else:
        why = "it does not exist"
    if found is None:
        pytest.exit(
            f"nothing to smoke-test: {image}: {why}. Build it first (invoke build-all "
            f"--variant {variant} --config {config}) or pass --image REF",
            returncode=4,
        )


@pytest.fixture(scope="session")
def probes(target: Target) -> dict[str, engine.ProbeRun]:
    """One container start per platform: every fact the tests below check."""
    runs: dict[str, engine.ProbeRun] = {}
    for platform in target.platforms:
        try:
            runs[platform] = engine.run_probe(target.image, platform)
        except EngineError as exc:
            pytest.fail(f"cannot probe {target.image} on {platform}: {exc.render()}")
    print(f"container starts for the probe: {len(runs)}")
    return runs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "platform" in metafunc.fixturenames:
        cfg = load_config(metafunc.config.getoption("--config"))
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
