"""Orchestration only: the order of the steps, each taking the record the one before made.

    plan -> build (cells) -> merge (index) -> verify -> smoke -> promote -> report

Every step before promote writes only immutable references; the floating tag moves only to
an index verified in the registry and smoke-tested on every platform (see promote.py).
The step functions below are also what the single-step tasks (build, merge, verify,
promote) run, so a CI job graph and `invoke build-all` share one code path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from aibase import git, log
from aibase.build import build_cell, preflight
from aibase.config import VariantConfig
from aibase.context import RunContext, registry_client
from aibase.errors import AibaseError, ConfigError, SmokeError
from aibase.merge import merge_variant, read_cells
from aibase.plan import LOCK_LABEL, Cell, floating_tag, plan_cells, promoted_tags
from aibase.promote import FORWARD_ONLY, Guards, Promotion, promote_variant
from aibase.refs import ImageRef, parse_ref
from aibase.report import PlatformRow, PromotionRow, RunReport, write_report
from aibase.smoke import smoke_index
from aibase.state import (
    CellRecord,
    MergeRecord,
    SmokeRecord,
    VariantState,
    VerifyRecord,
    read_variant,
    write_variant,
)
from aibase.verify import VerifyResult, raise_if_failed, verify_index


def build_one(
    ctx: RunContext, variant: VariantConfig, platform: str, *, push: bool, dry_run: bool
) -> CellRecord | None:
    """One cell: what a CI matrix job runs (`invoke build`)."""
    variant.platform(platform)
    if not dry_run:
        preflight(ctx, [variant], [platform], push=push)
    with log.step(f"build {variant.name}/{platform}"):
        return build_cell(
            ctx, variant, Cell(variant.name, platform), push=push, load=not push, dry_run=dry_run
        )


def merge_one(ctx: RunContext, variant: VariantConfig, *, dry_run: bool) -> MergeRecord | None:
    """The variant's cell records on disk -> one index (`invoke merge`)."""
    with log.step(f"merge {variant.name}"):
        merged = merge_variant(ctx, variant, read_cells(ctx, variant), dry_run=dry_run)
    if merged is not None:
        _save(ctx, VariantState(variant.name, ctx.config.registry, ctx.config.repository, merged))
    return merged


def verify_one(
    ctx: RunContext, variant: VariantConfig, ref: str | None, *, smoke: bool
) -> VerifyResult:
    """The recorded index, or any --ref (its revision checked only when one is given)."""
    if ref is not None:
        given = ctx.settings.source("revision") in ("flag", "env")
        revision = ctx.revision if given else None
        result, _, smoked = verify_and_smoke(ctx, variant, parse_ref(ref), revision, None, smoke)
        raise_if_smoke_failed(ctx, variant, smoked)
        return result
    state = read_variant(_state_path(ctx, variant))
    if state is None or state.merged is None:
        raise ConfigError(
            f"no merged index recorded for {variant.name}",
            f"run invoke merge --variant {variant.name}, or pass --ref",
        )
    own = parse_ref(f"{ctx.config.image}@{state.merged.index_digest}")
    result, _, smoked = verify_and_smoke(ctx, variant, own, ctx.revision, state, smoke)
    raise_if_smoke_failed(ctx, variant, smoked)
    return result


def verify_and_smoke(
    ctx: RunContext,
    variant: VariantConfig,
    ref: ImageRef,
    revision: str | None,
    state: VariantState | None,
    smoke: bool = True,
) -> tuple[VerifyResult, VariantState | None, dict[str, SmokeRecord]]:
    """Verify the index in the registry, smoke-test every platform it holds, and record both
    (with what the promoted tags serve now) in the variant's state when it has one.
    A failed verify raises; smoke problems are returned (raise_if_smoke_failed)."""
    with log.step(f"verify {variant.name}"):
        if ref.api_host == ctx.config.registry:
            result = verify_index(ctx.registry, ctx.config, variant, ref, revision)
        else:
            with registry_client(ctx.settings, ref.api_host) as other:
                result = verify_index(other, ctx.config, variant, ref, revision)
        raise_if_failed(result)
        repo = ctx.config.repository
        before = {t: ctx.registry.head_manifest(repo, t) for t in promoted_tags(variant)}
    log.info(f"verified {result.ref} ({result.index_digest})")
    if not smoke:
        return result, state, {}
    with log.step(f"smoke {variant.name}"):
        smoked = smoke_index(variant, result, require_gpu=ctx.settings.flag("require_gpu"))
    if state is not None:
        platforms = {i.platform: i.digest for i in result.images}
        verified = VerifyRecord(result.index_digest, platforms, before)
        state = replace(state, verified=verified, smoke=smoked)
        _save(ctx, state)
    return result, state, smoked


def raise_if_smoke_failed(
    ctx: RunContext, variant: VariantConfig, smoked: Mapping[str, SmokeRecord]
) -> None:
    bad = [f"{p}: {x}" for p, s in smoked.items() for x in s.problems]
    if bad:
        raise SmokeError(
            f"smoke {variant.name} failed:\n  - " + "\n  - ".join(bad),
            f"{ctx.config.image}:{floating_tag(variant)} left untouched; fix the image",
        )
    if smoked:
        log.info(f"smoke ok on {', '.join(smoked)}")


def promote_one(
    ctx: RunContext, variant: VariantConfig, *, permits: Guards, dry_run: bool
) -> Promotion | None:
    """Move the promoted tags to the recorded, verified, smoke-tested index."""
    state = read_variant(_state_path(ctx, variant))
    with log.step(f"promote {variant.name}"):
        promotion = _promote(ctx, variant, state, permits, dry_run)
    if promotion is not None:
        log.info(f"{promotion.tag} -> {promotion.digest} (was {promotion.previous})")
    return promotion


def build_all(
    ctx: RunContext,
    variants: Sequence[VariantConfig],
    *,
    dry_run: bool,
    promote: bool,
    permits: Guards = FORWARD_ONLY,
) -> RunReport:
    """Every variant x platform, in order; stops at the first failure (fail-closed)."""
    config = ctx.config
    if config.platforms != config.required_platforms:
        left_out = [p for p in config.required_platforms if p not in config.platforms]
        raise ConfigError(
            "build-all merges, verifies and promotes: every index must hold "
            f"{', '.join(config.required_platforms)} (images.toml), and "
            f"{ctx.settings.origin('platforms')}={','.join(config.platforms)} leaves out "
            f"{', '.join(left_out)}; nothing was built",
            "build single cells with invoke build --variant V --platform P --push (a CI "
            "matrix job), then invoke merge once every platform's cell exists",
        )
    report = RunReport(
        started=ctx.build.created,
        revision=ctx.revision,
        registry=config.registry,
        repository=config.repository,
        dry_run=dry_run,
        base_mirror=config.base_mirror,
        settings=ctx.settings.as_rows(list(ctx.settings.resolved)),
        variants=[v.name for v in variants],
    )
    if config.base_mirror:
        log.info(f"bases come from the mirror {config.base_mirror}")
    try:
        if not dry_run:
            preflight(ctx, variants, config.platforms, push=True)
        for variant in variants:
            state = _build_variant(ctx, variant, report, dry_run=dry_run)
            if promote:
                with log.step(f"promote {variant.name}"):
                    done = _promote(ctx, variant, state, permits, dry_run)
                if done is not None:
                    report.promotions.append(
                        PromotionRow(variant.name, done.tag, done.digest, done.previous)
                    )
        report.result = "ok"
    except AibaseError as exc:
        report.error = exc.render()
        raise
    except BaseException as exc:  # an interrupt or a bug fails the report too
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.steps = list(log.steps())
        log.info(log.summary())
        if not dry_run:
            write_report(report, ctx.paths.reports)
    return report


def _build_variant(
    ctx: RunContext, variant: VariantConfig, report: RunReport, *, dry_run: bool
) -> VariantState | None:
    """Build, merge, verify and smoke one variant; its state, ready for the gate."""
    cells: dict[str, CellRecord] = {}
    for cell in plan_cells(ctx.config, [variant]):
        with log.step(f"build {cell.variant}/{cell.platform}"):
            record = build_cell(ctx, variant, cell, push=True, dry_run=dry_run)
        if record is not None:
            cells[cell.platform] = record
    with log.step(f"merge {variant.name}"):
        merged = merge_variant(ctx, variant, cells, dry_run=dry_run)
    if merged is None:  # dry run: nothing was built, so nothing can be verified
        log.info(f"[dry-run] would verify and smoke the merged {variant.name} index per platform")
        return None
    report.indexes[variant.name] = merged.index_digest
    report.tags[variant.name] = list(merged.tags)
    state = VariantState(variant.name, ctx.config.registry, ctx.config.repository, merged)
    _save(ctx, state)
    ref = parse_ref(f"{ctx.config.image}@{merged.index_digest}")
    result, verified, smoked = verify_and_smoke(ctx, variant, ref, ctx.revision, state)
    report.platforms += _rows(ctx, variant, result, smoked, cells)
    raise_if_smoke_failed(ctx, variant, smoked)
    return verified


def _promote(
    ctx: RunContext,
    variant: VariantConfig,
    state: VariantState | None,
    permits: Guards,
    dry_run: bool,
) -> Promotion | None:
    """The gate, told what git knows: are the build's inputs committed, and which commit
    descends from which."""
    cwd = Path.cwd()
    inputs = [ctx.config.path, variant.dockerfile, *variant.requirements]
    for platform in ctx.config.required_platforms:
        inputs += [variant.lock_file(platform), variant.heavy_lock_file(platform)]
    guards = replace(
        permits,
        uncommitted=tuple(git.uncommitted(cwd, inputs)),
        is_ancestor=lambda older, newer: git.is_ancestor(cwd, older, newer),
    )
    return promote_variant(
        ctx.registry, ctx.config, variant, state, revision=ctx.revision, guards=guards,
        dry_run=dry_run,
    )  # fmt: skip


def _rows(
    ctx: RunContext,
    variant: VariantConfig,
    result: VerifyResult,
    smoked: Mapping[str, SmokeRecord],
    cells: Mapping[str, CellRecord],
) -> list[PlatformRow]:
    rows = []
    for image in result.images:
        lock = variant.lock_file(image.platform)
        cell, smoke = cells.get(image.platform), smoked.get(image.platform)
        rows.append(
            PlatformRow(
                variant=variant.name,
                platform=image.platform,
                digest=image.digest,
                compressed_mb=round(image.compressed_bytes / 1e6, 1),
                build_seconds=cell.seconds if cell else None,
                smoke=smoke.problems if smoke else None,
                skipped=smoke.skipped if smoke else (),
                lock=str(lock),
                lock_sha256=image.labels.get(LOCK_LABEL),
                sbom=str(ctx.paths.sbom(lock)),
            )
        )
    return rows


def _state_path(ctx: RunContext, variant: str | VariantConfig) -> Path:
    name = variant if isinstance(variant, str) else variant.name
    return ctx.paths.variant_state(ctx.config.repository, name)


def _save(ctx: RunContext, state: VariantState) -> None:
    write_variant(_state_path(ctx, state.variant), state)
