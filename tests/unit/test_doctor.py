from __future__ import annotations

from aibase.config.loader import load_config
from aibase.host.doctor import evaluate, render
from aibase.host.engine import EngineFacts

from .conftest import WriteConfig

NO_ENGINE = EngineFacts(True, None, "Cannot connect to the Docker daemon", False, None, ())
READY = EngineFacts(
    True, "26.1.5", "", True, "buildx 0.13.1", ("linux/amd64", "linux/amd64/v2", "linux/arm64")
)


def test_host_without_engine_says_exactly_what_is_missing(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(), env={})
    checks = evaluate(NO_ENGINE, cfg, registry_ok=False, free_gb=50)
    failing = [c.name for c in checks if not c.ok]
    assert failing == [
        "engine reachable",
        "buildx",
        "containerd image store",
        "builder platform linux/amd64",
        "builder platform linux/arm64",
        "registry localhost:5000",
    ]
    text = render(checks)
    assert "[FAIL] engine reachable: not reachable: Cannot connect to the Docker daemon" in text
    assert "[FAIL] builder platform linux/arm64: not checked: the engine is not reachable" in text
    assert "invoke registry-up" in text


def test_missing_qemu_names_the_fix(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(), env={})
    no_arm = EngineFacts(True, "26.1.5", "", True, "buildx 0.13.1", ("linux/amd64",))
    checks = evaluate(no_arm, cfg, registry_ok=True, free_gb=50)
    assert [c.name for c in checks if not c.ok] == ["builder platform linux/arm64"]
    assert "update-binfmts --enable qemu-aarch64" in render(checks)


def test_ready_host_passes(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(), env={})
    checks = evaluate(READY, cfg, registry_ok=True, free_gb=50)
    assert [c.name for c in checks if c.ok] == [
        "docker CLI",
        "engine reachable",
        "buildx",
        "containerd image store",
        "builder platform linux/amd64",
        "builder platform linux/arm64",
        "registry localhost:5000",
        "free disk",
    ]
    assert all(c.ok for c in checks)
    low = evaluate(READY, cfg, registry_ok=True, free_gb=3)
    assert [c.name for c in low if not c.ok] == ["free disk"]
