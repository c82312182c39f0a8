"""Building cells: the preflight a run does once, and one cell's build and push."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from aibase import engine, localregistry, log
from aibase.config import VariantConfig
from aibase.context import RunContext, registry_client
from aibase.errors import BuildError, LockError
from aibase.lock import check_lock
from aibase.oci import compressed_size, entry_platform, is_attestation
from aibase.plan import LOCK_LABEL, Cell, plan_build
from aibase.refs import parse_ref
from aibase.registry import RegistryClient
from aibase.state import CellRecord, write_cell


def preflight(
    ctx: RunContext, variants: Sequence[VariantConfig], platforms: Sequence[str], *, push: bool
) -> None:
    """Everything that can be known to fail before a build starts, checked once per run."""
    for variant in variants:
        require_locks(variant, platforms)
    engine.require_engine(platforms)
    if push:
        managed = ctx.config.registry == ctx.config.file_registry
        localregistry.ensure_registry(ctx.registry, ctx.paths if managed else None)
    for variant in variants:
        require_base(ctx, variant)


def require_locks(variant: VariantConfig, platforms: Sequence[str]) -> None:
    bad = [s for s in (check_lock(variant, variant.platform(p)) for p in platforms) if not s.ok]
    if bad:
        raise LockError(
            "lock files not usable: "
            + "; ".join(
                f"{s.variant}/{s.platform}: {s.state} ({s.path}{': ' + s.why if s.why else ''})"
                for s in bad
            ),
            "run `invoke lock` (where every index the config names is reachable) and commit "
            "the result",
        )


def require_base(ctx: RunContext, variant: VariantConfig) -> None:
    """With a mirror, check the base is there before building (its absence otherwise shows up
    as a buildx error deep in the log). Without one the engine pulls from the base's own
    registry, which we do not contact ahead of it."""
    mirror = ctx.config.base_mirror
    if not mirror:
        return
    ref = parse_ref(ctx.config.base_for(variant))
    if ref.api_host == ctx.config.registry:
        found = ctx.registry.head_manifest(ref.repository, ref.reference)
    else:
        with registry_client(ctx.settings, ref.api_host) as client:
            found = client.head_manifest(ref.repository, ref.reference)
    if found is None:
        raise BuildError(
            f"base image {ref} (for {variant.base}) is not in the mirror {mirror}",
            "copy the real base there, or for tests and offline hosts push stand-ins: "
            f"invoke bases-bootstrap --base-mirror {mirror}",
        )


def pushed_size(client: RegistryClient, repo: str, digest: str, platform: str) -> int:
    """Compressed size of the platform image behind a pushed digest (index or manifest)."""
    top = client.get_manifest(repo, digest)
    if not top.is_index:
        return compressed_size(top)
    for entry in top.json.get("manifests", []):
        if not is_attestation(entry) and entry_platform(entry) == platform:
            return compressed_size(client.get_manifest(repo, entry["digest"]))
    raise BuildError(f"pushed {digest} holds no {platform} image", "rebuild the cell")


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
    lock_sha = hashlib.sha256(lock_file.read_bytes()).hexdigest() if lock_file.exists() else ""
    by_digest = (
        push and not dry_run and engine.builder_driver(ctx.build.builder) in engine.DIGEST_DRIVERS
    )
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
        extra_labels={LOCK_LABEL: lock_sha} if lock_sha else None,
    )
    start = time.monotonic()
    metadata = engine.run_build(plan, dry_run=dry_run)
    if dry_run or not push:
        return None
    seconds = time.monotonic() - start
    digest = str(metadata.get("containerimage.digest", ""))
    if not digest.startswith("sha256:"):
        raise BuildError(f"cell {cell.slug}: buildx reported no pushed digest", "rerun the build")
    size = pushed_size(ctx.registry, config.repository, digest, cell.platform)
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
