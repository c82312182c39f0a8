"""Merging a variant's cells into one multi-platform index, under immutable tags only."""

from __future__ import annotations

from collections.abc import Mapping

from aibase import engine, log
from aibase.config import VariantConfig
from aibase.context import RunContext
from aibase.errors import BuildError
from aibase.plan import cell_tag, immutable_tags, plan_cells, plan_merge
from aibase.state import CellRecord, MergeRecord, read_cell


def read_cells(ctx: RunContext, variant: VariantConfig) -> dict[str, CellRecord]:
    """The cell records on disk (a CI merge job receives them as artifacts)."""
    found: dict[str, CellRecord] = {}
    for cell in plan_cells(ctx.config, [variant]):
        path = ctx.paths.cell_record(cell.slug)
        if path.exists():
            found[cell.platform] = read_cell(path)
    return found


def merge_variant(
    ctx: RunContext,
    variant: VariantConfig,
    cells: Mapping[str, CellRecord],
    *,
    dry_run: bool = False,
) -> MergeRecord | None:
    """One index of every platform, from these cells. Refuses when one is missing."""
    config = ctx.config
    missing = [p for p in config.platforms if p not in cells]
    if missing and not dry_run:
        raise BuildError(
            f"merge {variant.name}: no cell result for {', '.join(missing)}; refusing to "
            f"create an index without every required platform",
            f"build the missing cell(s): invoke build --variant {variant.name} "
            f"--platform {missing[0]} --push",
        )
    # A dry run before the builds has no digests: the cells' immutable tags name the same
    # images, so the printed command runs as it stands once they are pushed.
    sources = {
        c.platform: f"{config.image}@{cells[c.platform].digest}"
        if c.platform in cells
        else f"{config.image}:{cell_tag(c, ctx.build)}"
        for c in plan_cells(config, [variant])
    }
    engine.run_imagetools_create(plan_merge(config, variant, sources, ctx.build), dry_run=dry_run)
    if dry_run:
        return None
    tags = immutable_tags(variant, ctx.build)
    digest = ctx.registry.get_manifest(config.repository, tags[0]).digest
    log.info(f"merged {variant.name}: {config.image}@{digest}")
    return MergeRecord(
        registry=config.registry,
        repository=config.repository,
        revision=ctx.revision,
        config_digest=config.config_digest,
        index_digest=digest,
        tags=tags,
        cells={p: cells[p].digest for p in config.platforms},
    )
