"""Merging a variant's cells into one multi-platform index, under an immutable tag only.

Only this run's cells go in: each record must name this repository, this commit and this
configuration, and there must be one for every platform images.toml requires (an override
narrows what one invocation builds, never what an index holds).
"""

from __future__ import annotations

from collections.abc import Mapping

from aibase import engine, log
from aibase.config import VariantConfig
from aibase.context import RunContext
from aibase.errors import BuildError, StateError
from aibase.plan import Cell, cell_tag, immutable_tag, plan_merge
from aibase.state import CellRecord, MergeRecord, read_cell


def read_cells(ctx: RunContext, variant: VariantConfig) -> dict[str, CellRecord]:
    """The cell records on disk (a CI merge job receives them as artifacts), each checked."""
    found: dict[str, CellRecord] = {}
    for platform in ctx.config.required_platforms:
        path = ctx.paths.cell_record(Cell(variant.name, platform).slug)
        if path.exists():
            record = read_cell(path)
            problem = foreign(ctx, variant, platform, record)
            if problem:
                raise StateError(
                    f"{path}: {problem}: not a cell of this run",
                    f"rebuild it (invoke build --variant {variant.name} --platform {platform} "
                    "--push), or delete the file",
                )
            found[platform] = record
    return found


def foreign(ctx: RunContext, variant: VariantConfig, platform: str, cell: CellRecord) -> str:
    """Why a cell record is not one this run may merge ("" when it is)."""
    config = ctx.config
    expected = {
        "variant": variant.name,
        "platform": platform,
        "registry": config.registry,
        "repository": config.repository,
        "revision": ctx.revision,
        "config_digest": config.config_digest,
    }
    return "; ".join(
        f"{key} {getattr(cell, key)!r}, not {want!r}"
        for key, want in expected.items()
        if getattr(cell, key) != want
    )


def merge_variant(
    ctx: RunContext,
    variant: VariantConfig,
    cells: Mapping[str, CellRecord],
    *,
    dry_run: bool = False,
) -> MergeRecord | None:
    """One index of every required platform, from these cells. Refuses when one is missing."""
    config = ctx.config
    missing = [p for p in config.required_platforms if p not in cells]
    if missing and not dry_run:
        narrowed = config.platforms != config.required_platforms
        raise BuildError(
            f"merge {variant.name}: no cell result for {', '.join(missing)}; refusing to "
            "create an index without every platform images.toml requires"
            + (" (--platforms / AIBASE_PLATFORMS narrows what is built, never what an "
               "index must hold)" if narrowed else ""),
            f"build the missing cell(s): invoke build --variant {variant.name} "
            f"--platform {missing[0]} --push",
        )  # fmt: skip
    for platform, cell in cells.items():
        problem = foreign(ctx, variant, platform, cell)
        if problem:
            raise BuildError(f"merge {variant.name}: cell {platform}: {problem}", "rebuild it")
    # A dry run before the builds has no digests: the cells' immutable tags name the same
    # images, so the printed command runs as it stands once they are pushed.
    sources = {
        p: f"{config.image}@{cells[p].digest}"
        if p in cells
        else f"{config.image}:{cell_tag(Cell(variant.name, p), ctx.build)}"
        for p in config.required_platforms
    }
    engine.run_imagetools_create(plan_merge(config, variant, sources, ctx.build), dry_run=dry_run)
    if dry_run:
        return None
    tag = immutable_tag(variant, ctx.build)
    digest = ctx.registry.get_manifest(config.repository, tag).digest
    log.info(f"merged {variant.name}: {config.image}@{digest} (tag {tag})")
    return MergeRecord(
        registry=config.registry,
        repository=config.repository,
        revision=ctx.revision,
        config_digest=config.config_digest,
        index_digest=digest,
        tags=(tag,),
        cells={p: cells[p].digest for p in config.required_platforms},
    )
