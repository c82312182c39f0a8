"""`invoke update` is all or nothing: a re-lock that fails (a version the index lacks, an
unreachable index) leaves the pin edit, and any cell already re-locked, exactly as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibase.config.loader import load
from aibase.config.model import Config, PlatformSpec, VariantConfig
from aibase.config.resolved import Settings
from aibase.errors import LockError
from aibase.tools import update

from .conftest import WriteConfig

LOCK = "fastapi==0.115.0 \\\n    --hash=sha256:{h}\n"


def _tree(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def project(write_config: WriteConfig, tmp_path: Path) -> tuple[Settings, Config]:
    cfg = write_config()
    for variant in ("cpu", "cuda"):
        for arch in ("amd64", "arm64"):
            lock = tmp_path / "requirements" / "locks" / f"{variant}-linux-{arch}.txt"
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.write_text(LOCK.format(h="0" * 64))
    return load({"config": str(cfg)}, env={})


def test_a_failed_relock_leaves_every_file_as_it_was(
    project: tuple[Settings, Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, config = project
    calls: list[str] = []

    # the first cell re-locks, the second one fails
    def write_lock(variant: VariantConfig, spec: PlatformSpec) -> Path:
        calls.append(f"{variant.name}/{spec.platform}")
        if len(calls) == 2:
            raise LockError("lock cpu/linux/arm64: no version of fastapi==0.999.0", "fix it")
        variant.lock_file(spec.platform).write_text(LOCK.format(h="1" * 64).replace("115", "999"))
        return variant.lock_file(spec.platform)

    monkeypatch.setattr(update, "write_lock", write_lock)
    before = _tree(tmp_path)
    with pytest.raises(LockError):
        update.apply(settings, config, "fastapi==0.999.0")
    assert len(calls) == 2  # the failure came after a lock and the .in were rewritten
    assert _tree(tmp_path) == before


def test_a_torch_pin_is_put_back_in_images_toml(
    project: tuple[Settings, Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, config = project

    def write_lock(_variant: VariantConfig, _spec: PlatformSpec) -> Path:
        raise KeyboardInterrupt  # Ctrl-C while uv resolves

    monkeypatch.setattr(update, "write_lock", write_lock)
    before = _tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        update.apply(settings, config, "torch==2.5.1")
    assert _tree(tmp_path) == before


def test_a_successful_update_keeps_its_edits(
    project: tuple[Settings, Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, config = project
    monkeypatch.setattr(update, "write_lock", lambda v, s: v.lock_file(s.platform))
    update.apply(settings, config, "fastapi==0.116.0")
    assert (tmp_path / "common.in").read_text() == "fastapi==0.116.0\n"
