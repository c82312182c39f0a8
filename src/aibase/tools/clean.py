"""`./ai clean`: give back the disk builds took. This repository's local images (loads,
smoke pulls), the builder's cache, the rendered Dockerfiles, and with --registry-gc the
local registry's unreferenced blobs. Each step says what it freed."""

from __future__ import annotations

import shutil
from pathlib import Path

from aibase import log
from aibase.config.model import Config
from aibase.config.paths import Paths
from aibase.config.resolved import Settings
from aibase.host import engine, local_registry


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9


def clean(settings: Settings, config: Config, *, registry_gc: bool, dry_run: bool) -> float:
    """Reclaim; the GB the disk under /var/lib gained."""
    paths, builder = Paths(settings.out, settings.cache), settings.builder
    images = engine.local_images(config.repository)
    log.info(f"{len(images)} local image(s) of {config.repository}; the builder's cache")
    if dry_run:
        log.info(
            "dry run: would remove them, prune the build cache"
            + (", collect the registry's garbage" if registry_gc else "")
            + f" and delete {paths.out / 'dockerfiles'}"
        )
        return 0.0
    before = free_gb(Path("/var/lib"))
    for result in engine.reclaim(images, builder):
        summary = (result.stdout.strip().splitlines() or [""])[-1]
        log.info(f"{' '.join(result.argv[:3])}: {'ok' if result.ok else 'FAILED'} {summary}")
    shutil.rmtree(paths.out / "dockerfiles", ignore_errors=True)
    if registry_gc:
        freed = local_registry.collect_garbage(config.registry, paths)
        log.info(
            f"registry {config.registry}: {freed / 1e9:.2f} GB of unreferenced blobs swept "
            "(every pushed manifest keeps its layers: only orphaned uploads go)"
        )
    gained = free_gb(Path("/var/lib")) - before
    log.info(f"clean: {gained:.2f} GB freed under /var/lib")
    return gained
