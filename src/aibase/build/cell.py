"""Building one cell and pushing it (after the preflight, `preflight.py`)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from aibase import log
from aibase.audit.allowlist import DEFAULT_ALLOWLIST, load_allowlist
from aibase.build import layers
from aibase.build.plan import Cell, lock_labels, plan_build
from aibase.build.run_context import RunContext
from aibase.build.sbom import attach_sbom
from aibase.config.model import Config, VariantConfig
from aibase.errors import BuildError, LockError
from aibase.host import engine_build
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, compressed_size, entry_platform, is_attestation
from aibase.state import CellRecord, write_atomic, write_cell


def write_rendered(folder: Path, files: Mapping[str, str]) -> None:
    """The cell's Dockerfile and group files, replacing an earlier run's (a group that is
    gone must not linger)."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / name, text)


def platform_manifest(client: RegistryClient, repo: str, digest: str, platform: str) -> Manifest:
    """The platform image's manifest behind a pushed digest (index or manifest)."""
    top = client.get_manifest(repo, digest)
    if not top.is_index:
        return top
    for entry in top.json.get("manifests", []):
        if not is_attestation(entry) and entry_platform(entry) == platform:
            return client.get_manifest(repo, entry["digest"])
    raise BuildError(f"pushed {digest} holds no {platform} image", "rebuild the cell")


def pushed_size(client: RegistryClient, repo: str, digest: str, platform: str) -> int:
    """Compressed size of the platform image behind a pushed digest."""
    return compressed_size(platform_manifest(client, repo, digest, platform))


def cell_lock_labels(config: Config, variant: VariantConfig, platform: str) -> dict[str, str]:
    """The labels the cell's lock gives its image, with the allowlist beside images.toml
    (none without a lock: build_cell refuses that cell)."""
    lock_file = variant.lock_file(platform)
    if not lock_file.exists():
        return {}
    return lock_labels(lock_file.read_bytes(), load_allowlist(config.root / DEFAULT_ALLOWLIST))


def build_cell(
    ctx: RunContext,
    variant: VariantConfig,
    cell: Cell,
    *,
    push: bool = True,
    load: bool = False,
    dry_run: bool = False,
) -> CellRecord | None:
    """Build one cell (after `preflight`). With push: write and return its record."""
    config = ctx.config
    lock_file = variant.lock_file(cell.platform)
    if not lock_file.exists():  # a dry run too: without its lock there is no Dockerfile to show
        raise LockError(
            f"cell {cell.variant}/{cell.platform} cannot be planned: its lock is missing "
            f"({lock_file})",
            "run `./ai lock` where every index the config names is reachable, and commit it",
        )
    rendered = ctx.paths.rendered(cell.slug)
    files = layers.render_cell(
        variant.dockerfile.read_text(), lock_file.read_text(), variant, cell.platform
    )
    log.info(f"cell {cell.variant}/{cell.platform}: {len(files) - 1} layer groups")
    if not dry_run:
        write_rendered(rendered, files)
    driver = None if dry_run or not push else engine_build.builder_driver(ctx.build.builder)
    by_digest = driver in engine_build.DIGEST_DRIVERS
    plan = plan_build(
        config,
        variant,
        cell,
        ctx.build,
        push=push,
        load=load,
        by_digest=by_digest,
        tags=[f"{config.repository}:{cell.slug}-dev"] if load else [],
        metadata_file=ctx.paths.build_metadata(cell.slug),
        rendered=rendered,
        extra_labels=cell_lock_labels(config, variant, cell.platform),
    )
    start = time.monotonic()
    metadata = engine_build.run_build(
        plan.argv,
        plan.metadata_file,
        f"{cell.variant}/{cell.platform}",
        registry=config.registry,
        dry_run=dry_run,
    )
    if dry_run and push:
        log.info(f"[dry-run] would attach the SBOM of {cell.variant}/{cell.platform}'s image to it")
    if dry_run or not push:
        return None
    seconds = time.monotonic() - start
    digest = str(metadata.get("containerimage.digest", ""))
    if not digest.startswith("sha256:"):
        raise BuildError(f"cell {cell.slug}: buildx reported no pushed digest", "rerun the build")
    size = pushed_size(ctx.registry, config.repository, digest, cell.platform)
    attach_sbom(ctx, variant, cell, digest)  # before the record: no record, no merge
    record = CellRecord(
        variant=variant.name,
        platform=cell.platform,
        registry=config.registry,
        repository=config.repository,
        revision=ctx.revision,
        config_digest=config.config_digest,
        digest=digest,
        compressed_bytes=size,
        seconds=round(seconds, 1),
    )
    write_cell(ctx.paths.cell_record(cell.slug), record)
    log.info(f"cell {cell.variant}/{cell.platform}: {digest} ({size / 1e6:.1f} MB compressed)")
    return record
