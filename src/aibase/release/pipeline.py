"""The order of the steps, each taking the record the one before made, and what a promotion
needs between them: git's answers for the gate's guards (whether the build inputs are
committed, which revision descends from which), one notice per promoted index, each
variant's state.

    plan -> build (cells) -> merge (index) -> verify -> smoke -> promote -> report

Every step before promote writes only immutable references; the floating tag moves only to
an index verified in the registry and smoke-tested on every platform (see promote.py).
`jobs` runs the same steps one at a time (a CI job graph); both share this code path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from aibase import log
from aibase.build.cell import build_cell
from aibase.build.inputs import build_inputs
from aibase.build.merge import merge_variant
from aibase.build.plan import (
    Cell,
    floating_tag,
    plan_cells,
    promoted_tags,
)
from aibase.build.preflight import preflight, raise_failed
from aibase.build.run_context import RunContext, registry_client
from aibase.config.model import VariantConfig
from aibase.errors import AibaseError, ConfigError, SmokeError
from aibase.host import engine_build, git
from aibase.registry.refs import ImageRef, parse_ref
from aibase.release import notify
from aibase.release.attestations import build_secrets
from aibase.release.notify import Promoted
from aibase.release.promote import Promotion, promote_variant
from aibase.release.promote_gate import FORWARD_ONLY, Guards
from aibase.release.report import PromotionRow, RunReport, write_report
from aibase.release.report_rows import platform_rows
from aibase.release.smoke import smoke_index
from aibase.release.verify import VerifyResult, raise_if_failed, verify_index
from aibase.state import (
    CellRecord,
    SmokeRecord,
    VariantState,
    VerifyRecord,
    write_variant,
)


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
    secrets = build_secrets(ctx.build, ref.api_host)  # none may show in a provenance
    with log.step(f"verify {variant.name}"):
        if ref.api_host == ctx.config.registry:
            result = verify_index(ctx.registry, ctx.config, variant, ref, revision, secrets)
        else:
            with registry_client(ctx.settings, ref.api_host) as other:
                result = verify_index(other, ctx.config, variant, ref, revision, secrets)
        raise_if_failed(result)
        repo = ctx.config.repository
        before = {t: ctx.registry.head_manifest(repo, t) for t in promoted_tags(variant)}
    log.info(f"verified {result.ref} ({result.index_digest})")
    smoked: dict[str, SmokeRecord] = {}
    if smoke:
        with log.step(f"smoke {variant.name}"):
            smoked = smoke_index(variant, result, require_gpu=ctx.settings.require_gpu)
    if state is not None:
        platforms = {i.platform: i.digest for i in result.images}
        verified = VerifyRecord(result.index_digest, platforms, before)
        state = replace(state, verified=verified, smoke=smoked)
        save_state(ctx, state)
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
    refuse_narrowed_platforms(ctx)
    report = RunReport(
        started=ctx.build.created,
        revision=ctx.revision,
        registry=config.registry,
        repository=config.repository,
        dry_run=dry_run,
        base_mirror=config.base_mirror,
        settings=ctx.settings.as_rows(),
        variants=[v.name for v in variants],
    )
    if config.base_mirror:
        log.info(f"bases come from the mirror {config.base_mirror}")
    try:
        failed = preflight(ctx, variants, config.platforms, push=True, dry_run=dry_run)
        for variant in variants:
            try:
                state = _build_variant(ctx, variant, report, dry_run=dry_run)
            except AibaseError as exc:
                if not failed:  # a dry run goes on to show the other variants' commands
                    raise
                log.warn(f"[dry-run] {variant.name} stops here: {exc.message}")
                continue
            if promote:
                with log.step(f"promote {variant.name}"):
                    done = promote_checked(ctx, variant, state, permits, dry_run)
                if done is not None:
                    report.promotions.append(
                        PromotionRow(variant.name, done.tag, done.digest, done.previous)
                    )
        if failed:  # a dry run: every command shown, and what the real run would stop on
            raise_failed(failed)
        report.result = "ok"
    except AibaseError as exc:
        report.error = exc.render()
        raise
    except BaseException as exc:  # an interrupt or a bug fails the report too
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.steps = list(log.steps())
        if report.steps:
            log.info(log.summary())
        if not dry_run:
            write_report(report, ctx.paths.reports)
    return report


def refuse_narrowed_platforms(ctx: RunContext) -> None:
    """build-all promotes: an override that narrows the platforms would leave every index
    short of what images.toml requires, so it is refused before anything is built."""
    config = ctx.config
    if config.platforms == config.required_platforms:
        return
    left_out = [p for p in config.required_platforms if p not in config.platforms]
    raise ConfigError(
        "build-all merges, verifies and promotes: every index must hold "
        f"{', '.join(config.required_platforms)} (images.toml), and "
        f"{ctx.settings.origin('platforms')}={','.join(config.platforms)} leaves out "
        f"{', '.join(left_out)}; nothing was built",
        "build single cells with invoke build --variant V --platform P --push (a CI "
        "matrix job), then invoke merge once every platform's cell exists",
    )


def build_jobs(ctx: RunContext, cells: int) -> int:
    """--jobs, or by the builder: the docker driver builds one cell at a time well, a
    BuildKit cluster (a node per platform) all at once."""
    if ctx.settings.jobs:  # a positive number: checked where it was resolved
        return ctx.settings.jobs
    return 1 if engine_build.builder_driver(ctx.build.builder) == "docker" else cells


def _build_variant(
    ctx: RunContext, variant: VariantConfig, report: RunReport, *, dry_run: bool
) -> VariantState | None:
    """Build, merge, verify and smoke one variant; its state, ready for the gate."""

    def build(cell: Cell) -> CellRecord | None:
        with log.step(f"build {cell.variant}/{cell.platform}"):
            return build_cell(ctx, variant, cell, push=True, dry_run=dry_run)

    todo = plan_cells(ctx.config, [variant])
    jobs = 1 if dry_run else build_jobs(ctx, len(todo))
    if jobs == 1:  # one after the other: the first failure stops the rest
        records = [build(cell) for cell in todo]
    else:  # a BuildKit cluster: all at once; a failure cancels what has not started
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(build, cell) for cell in todo]
            try:
                records = [f.result() for f in futures]
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    cells = {r.platform: r for r in records if r is not None}
    with log.step(f"merge {variant.name}"):
        merged = merge_variant(ctx, variant, cells, dry_run=dry_run)
    if merged is None:  # dry run: nothing was built, so nothing can be verified
        log.info(f"[dry-run] would verify and smoke the merged {variant.name} index per platform")
        return None
    report.indexes[variant.name] = merged.index_digest
    report.tags[variant.name] = list(merged.tags)
    state = VariantState(variant.name, ctx.config.registry, ctx.config.repository, merged)
    save_state(ctx, state)
    ref = parse_ref(f"{ctx.config.image}@{merged.index_digest}")
    result, verified, smoked = verify_and_smoke(ctx, variant, ref, ctx.revision, state)
    report.platforms += platform_rows(ctx, variant, result, smoked, cells)
    raise_if_smoke_failed(ctx, variant, smoked)
    return verified


def promote_checked(
    ctx: RunContext,
    variant: VariantConfig,
    state: VariantState | None,
    permits: Guards,
    dry_run: bool,
) -> Promotion | None:
    """The gate, told what git knows: are the build's inputs committed, and which commit
    descends from which."""
    cwd = Path.cwd()
    inputs = build_inputs(ctx.config, variant, checkout=git.toplevel(cwd))
    guards = replace(
        permits,
        uncommitted=tuple(git.uncommitted(cwd, inputs)),
        is_ancestor=lambda older, newer: git.is_ancestor(cwd, older, newer),
    )
    done = promote_variant(
        ctx.registry,
        ctx.config,
        variant,
        state,
        revision=ctx.revision,
        guards=guards,
        dry_run=dry_run,
    )
    if done is not None and state is not None:
        notify_once(ctx, variant, state, done)
    return done


def notify_once(
    ctx: RunContext, variant: VariantConfig, state: VariantState, done: Promotion
) -> None:
    """Tell the dependents (their rebuilds) once per promoted index: a notice that failed is
    sent again by a re-run of promote; one that was delivered is recorded in the variant's
    state and not sent twice."""
    url = ctx.settings.notify_url
    if not url:
        return
    if state.notified == done.digest:
        log.info(
            f"notify: the dependents were told of {done.tag} = {done.digest} already "
            f"(recorded in {state_path(ctx, variant)}); not sent again"
        )
        return
    event = Promoted(variant.name, done.tag, done.digest, done.previous, ctx.revision)
    notify.send(event, url, ctx.settings.notify_token or "")
    save_state(ctx, replace(state, notified=done.digest))


def state_path(ctx: RunContext, variant: str | VariantConfig) -> Path:
    name = variant if isinstance(variant, str) else variant.name
    return ctx.paths.variant_state(ctx.config.repository, name)


def save_state(ctx: RunContext, state: VariantState) -> None:
    write_variant(state_path(ctx, state.variant), state)
