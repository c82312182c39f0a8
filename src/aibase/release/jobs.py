"""The single steps a CI job graph runs, each on its own machine, handing records on as files:

    build (one cell) -> merge -> verify -> smoke (one platform, native runner) -> promote

`invoke build-all` runs the same functions in one process (pipeline.py).
"""

from __future__ import annotations

import json
from dataclasses import replace

from aibase import github, log
from aibase.build.cell import build_cell
from aibase.build.merge import merge_variant, read_cells
from aibase.build.plan import Cell
from aibase.build.preflight import preflight, raise_failed
from aibase.build.run_context import RunContext, open_run
from aibase.config.model import Config, VariantConfig
from aibase.config.resolved import Settings
from aibase.errors import ConfigError, PromoteError
from aibase.host import engine
from aibase.registry.refs import parse_ref
from aibase.release.matrix import emit, parse_runners, plan_ready
from aibase.release.pipeline import (
    promote_checked,
    raise_if_smoke_failed,
    save_state,
    state_path,
    verify_and_smoke,
)
from aibase.release.promote import Promotion
from aibase.release.promote_gate import Guards, check_gate
from aibase.release.smoke import smoke_image
from aibase.release.unchanged import check_unchanged
from aibase.release.verify import VerifyResult
from aibase.state import (
    CellRecord,
    MergeRecord,
    SmokeResult,
    VariantState,
    read_smoke,
    read_variant,
    write_smoke,
)


def plan_jobs(
    settings: Settings,
    config: Config,
    variant: str,
    *,
    ci: bool,
    dry_run: bool,
    as_json: bool,
    gate: bool = False,
) -> None:
    """The CI plan job (`invoke matrix`): the legs that can run now, and what waits; with
    `gate`, the promote matrix instead."""
    if gate:
        plan_promotions(settings, config, variant)
        return
    runners = parse_runners(settings.runners)
    matrix, waiting = plan_ready(config, runners, settings.gpu_runner, ci=ci, variant=variant)
    emit(matrix, as_json, waiting)
    if dry_run and matrix["cells"]:
        show_cells(settings, config, matrix["cells"])


def show_cells(settings: Settings, config: Config, cells: list[dict[str, object]]) -> None:
    """Each leg's build command, as its runner will run it. What only that runner can know
    (its builder's platforms, its registry login, the bases it pulls) is the cell job's
    preflight: a pull request's plan runner has no QEMU and no registry credentials."""
    log.info(
        "dry run of every leg: the engine, registry and base checks run in each cell job, "
        "on its own runner"
    )
    with open_run(settings, config, dry_run=True) as ctx:
        for c in cells:
            variant, platform = config.variant(str(c["variant"])), str(c["platform"])
            with log.step(f"build {variant.name}/{platform} (runner {c['runner']})"):
                build_cell(ctx, variant, Cell(variant.name, platform), push=True, dry_run=True)


def plan_promotions(settings: Settings, config: Config, variant: str) -> list[dict[str, object]]:
    """The gate before promote (`invoke matrix --gate`): of the variants this run planned, those
    merged, verified and smoke-tested on every platform by the records handed on (the same
    check promote makes first). On GitHub: the step outputs `variants` (the promote matrix)
    and `promote`, and a summary table, so a reviewer is asked only for what can go out."""
    runners = parse_runners(settings.runners)
    matrix, _ = plan_ready(config, runners, settings.gpu_runner, ci=False, variant=variant)
    ready, rows = [], ["### Promotion gate", "", "| variant | decision |", "|---|---|"]
    with open_run(settings, config, dry_run=True) as ctx:
        for entry in matrix["variants"]:
            v = config.variant(entry["name"])
            state = with_smoke_results(ctx, v, read_variant(state_path(ctx, v)))
            try:
                merged, _ = check_gate(config, v, state, ctx.revision)
            except PromoteError as exc:
                log.info(f"{v.name}: held back: {exc.message}")
                rows.append(f"| {v.name} | held back: {exc.message} |")
                continue
            verdict = check_unchanged(ctx.registry, config, v, merged.index_digest)
            if verdict.unchanged:
                log.info(f"{v.name}: unchanged, not promoted: {verdict.reason}")
                rows.append(f"| {v.name} | unchanged, not promoted: {verdict.reason} |")
                continue
            log.info(f"{v.name}: ready to promote {merged.index_digest} ({verdict.reason})")
            rows.append(f"| {v.name} | promote `{merged.index_digest}` |")
            ready.append(entry)
    github.set_output("variants", json.dumps(ready, separators=(",", ":")))
    github.set_output("promote", "true" if ready else "false")
    github.add_summary("\n".join(rows))
    return ready


def build_one(
    ctx: RunContext, variant: VariantConfig, platform: str, *, push: bool, dry_run: bool
) -> CellRecord | None:
    """One cell: what a CI matrix job runs (`invoke build`)."""
    variant.platform(platform)
    failed = preflight(ctx, [variant], [platform], push=push, dry_run=dry_run)
    with log.step(f"build {variant.name}/{platform}"):
        record = build_cell(
            ctx, variant, Cell(variant.name, platform), push=push, load=not push, dry_run=dry_run
        )
    if failed:
        raise_failed(failed)
    return record


def merge_one(ctx: RunContext, variant: VariantConfig, *, dry_run: bool) -> MergeRecord | None:
    """The variant's cell records on disk -> one index (`invoke merge`)."""
    with log.step(f"merge {variant.name}"):
        merged = merge_variant(ctx, variant, read_cells(ctx, variant), dry_run=dry_run)
    if merged is not None:
        save_state(
            ctx, VariantState(variant.name, ctx.config.registry, ctx.config.repository, merged)
        )
    return merged


def verify_one(
    ctx: RunContext, variant: VariantConfig, ref: str | None, *, smoke: bool
) -> VerifyResult:
    """The recorded index, or any --ref (its revision checked only when one is given)."""
    if ref is not None:
        revision = ctx.revision if ctx.settings.revision else None  # checked only when given
        result, _, smoked = verify_and_smoke(ctx, variant, parse_ref(ref), revision, None, smoke)
        raise_if_smoke_failed(ctx, variant, smoked)
        return result
    state = read_variant(state_path(ctx, variant))
    if state is None or state.merged is None:
        raise ConfigError(
            f"no merged index recorded for {variant.name}",
            f"run invoke merge --variant {variant.name}, or pass --ref",
        )
    own = parse_ref(f"{ctx.config.image}@{state.merged.index_digest}")
    result, _, smoked = verify_and_smoke(ctx, variant, own, ctx.revision, state, smoke)
    raise_if_smoke_failed(ctx, variant, smoked)
    return result


def smoke_one(ctx: RunContext, variant: VariantConfig, platform: str) -> SmokeResult:
    """One platform of the verified index, on its native runner (`invoke smoke`); the
    result is a file promote reads (build/smoke/<variant>-<os>-<arch>.json)."""
    state = read_variant(state_path(ctx, variant))
    if state is None or state.verified is None:
        raise ConfigError(
            f"no verified index recorded for {variant.name}",
            f"run invoke verify --variant {variant.name} --no-smoke first (or receive its state)",
        )
    digest = state.verified.platforms.get(platform)
    if digest is None:
        raise ConfigError(
            f"the verified {variant.name} index holds no {platform}",
            f"one of: {', '.join(state.verified.platforms)}",
        )
    gpu = engine.gpu_access() if variant.platform(platform).cuda else None
    require_gpu = ctx.settings.require_gpu
    with log.step(f"smoke {variant.name}/{platform}"):
        record = smoke_image(variant, ctx.config.image, platform, digest, gpu, require_gpu)
    result = SmokeResult(variant.name, state.verified.index_digest, record)
    write_smoke(ctx.paths.smoke_record(variant.name, platform, gpu=require_gpu), result)
    raise_if_smoke_failed(ctx, variant, {platform: record})
    return result


def with_smoke_results(
    ctx: RunContext, variant: VariantConfig, state: VariantState | None
) -> VariantState | None:
    """The state with the smoke results other jobs handed on, for this verified index only."""
    if state is None or state.verified is None or not ctx.paths.smoke.is_dir():
        return state
    smoke = dict(state.smoke)
    for path in sorted(ctx.paths.smoke.glob(f"{variant.name}-*.json")):
        result = read_smoke(path)
        if result.variant != variant.name or result.index_digest != state.verified.index_digest:
            log.info(f"{path}: a smoke result of another index, not counted")
            continue
        platform, new = result.record.platform, result.record
        old = smoke.get(platform)
        # a failure anywhere stands; else the result that ran more checks (the GPU one)
        if old is None or not new.ok or (old.ok and len(new.skipped) < len(old.skipped)):
            smoke[platform] = new
    return replace(state, smoke=smoke)


def promote_one(
    ctx: RunContext, variant: VariantConfig, *, permits: Guards, dry_run: bool
) -> Promotion | None:
    """Move the promoted tags to the recorded, verified, smoke-tested index."""
    state = with_smoke_results(ctx, variant, read_variant(state_path(ctx, variant)))
    with log.step(f"promote {variant.name}"):
        promotion = promote_checked(ctx, variant, state, permits, dry_run)
    if promotion is not None:
        line = f"{promotion.tag} -> {promotion.digest} (was {promotion.previous})"
        if promotion.already:  # a re-run: this run had promoted it, nothing was written now
            line = f"{promotion.tag} already serves {promotion.digest} (this run's index)"
        log.info(line)
        github.add_summary(f"promoted `{line}`")
    return promotion
