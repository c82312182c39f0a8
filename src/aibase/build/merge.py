"""Merging a variant's cells into one multi-platform index, under an immutable tag only.

The index is written through the registry client (not `imagetools create`), so it works
wherever the client does: TLS with a private CA, token auth, a registry on loopback.

Only this run's cells go in: each record must name this repository, this commit and this
configuration, and there must be one for every platform images.toml requires (an override
narrows what one invocation builds, never what an index holds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aibase import log
from aibase.build.plan import Cell, cell_tag, immutable_tag
from aibase.build.run_context import RunContext
from aibase.config.model import VariantConfig
from aibase.errors import BuildError, StateError
from aibase.registry.oci import entry_platform, image_entries, is_attestation, make_index
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


def _entries(ctx: RunContext, digest: str, platform: str) -> list[Any]:
    """What a cell pushed, as index entries (the registry is read, not the cell record)."""
    repo = ctx.config.repository
    top = ctx.registry.get_manifest(repo, digest)
    config = None
    if not top.is_index:
        config = json.loads(ctx.registry.get_blob(repo, top.json["config"]["digest"]))
    entries = image_entries(top, platform, config)
    if not entries or is_attestation(entries[0]) or entry_platform(entries[0]) != platform:
        raise BuildError(f"the cell {repo}@{digest} holds no {platform} image", "rebuild the cell")
    return entries


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
            + (
                " (--platforms / AIBASE_PLATFORMS narrows what is built, never what an "
                "index must hold)"
                if narrowed
                else ""
            ),
            f"build the missing cell(s): invoke build --variant {variant.name} "
            f"--platform {missing[0]} --push",
        )
    for platform, cell in cells.items():
        problem = foreign(ctx, variant, platform, cell)
        if problem:
            raise BuildError(f"merge {variant.name}: cell {platform}: {problem}", "rebuild it")
    tag = immutable_tag(variant, ctx.build)
    if dry_run:
        # Before the builds there are no digests: each cell's immutable tag names its image.
        sources = ", ".join(
            f"{p} {config.image}@{cells[p].digest}"
            if p in cells
            else f"{p} {config.image}:{cell_tag(Cell(variant.name, p), ctx.build)}"
            for p in config.required_platforms
        )
        log.info(f"[dry-run] would PUT {config.image}:{tag} = one index of {sources}")
        return None
    index = make_index(
        [e for p in config.required_platforms for e in _entries(ctx, cells[p].digest, p)]
    )
    log.info(f"PUT {config.image}:{tag} = {index.digest} ({len(cells)} platforms)")
    ctx.registry.put_manifest(config.repository, tag, index)
    stored = ctx.registry.head_manifest(config.repository, tag)
    if stored != index.digest:
        raise BuildError(
            f"merge {variant.name}: {config.image}:{tag} reads back as {stored}, not the index "
            f"{index.digest} just written",
            "the registry altered the index; check it before using it",
        )
    digest = index.digest
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
