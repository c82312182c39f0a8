"""Invoke tasks (`./ai --list`), each one library call; flags, help and AIBASE_* names from
aibase.cli and config.settings (flag > environment > images.toml > default). Put --config
after the task name: before it, it is Invoke's own."""

from __future__ import annotations

from pathlib import Path

from aibase import cli
from aibase.audit.allowlist import DEFAULT_ALLOWLIST
from aibase.audit.gate import AuditRequest, audit_all
from aibase.build.locks import check_locks, write_locks
from aibase.build.run_context import open_run, registry_client
from aibase.cli import BUILD, COMMON, ONE_VARIANT, command, parse_day, split_list, variant_of
from aibase.config.model import Config
from aibase.config.paths import Paths
from aibase.config.resolved import Settings
from aibase.errors import ConfigError
from aibase.host import doctor as checks
from aibase.host import local_registry
from aibase.host.standins import bootstrap_standins
from aibase.registry.refs import parse_ref
from aibase.release import jobs, pipeline
from aibase.release.promote_gate import Guards
from aibase.tools import base_pins, describe, rebuild_check
from aibase.tools import clean as cleaning
from aibase.tools import update as updates
from aibase.tools.bench import BUMP, run_bench
from aibase.tools.bench_plan import select_cells
from aibase.tools.lock_review import review_locks


@command("config", "registry", "platforms", "debug")
def doctor(_s: Settings, cfg: Config) -> None:
    """Check engine, buildx, containerd store, QEMU platforms, registry and disk."""
    checks.run_doctor(cfg)


@command("config", "registry", "cache", "debug", name="registry-up")
def registry_up(s: Settings, cfg: Config) -> None:
    """Start the local registry (registry:2, or Debian's docker-registry) unless it answers."""
    local_registry.start_registry(cfg.registry, Paths(s.out, s.cache))


@command("config", "registry", "cache", "debug", name="registry-down")
def registry_down(s: Settings, cfg: Config) -> None:
    """Stop the local registry that registry-up started."""
    stopped = local_registry.stop_registry(cfg.registry, Paths(s.out, s.cache))
    print("stopped" if stopped else "nothing to stop")


@command("config", "platforms", "debug")
def lock(
    _s: Settings, cfg: Config, check: bool = False, allow_missing: str = "", variant: str = ""
) -> None:
    """Write hash-locked requirements per variant x platform (uv, cross-platform)."""
    if check:
        check_locks(cfg.select(variant), cfg.platforms, split_list(allow_missing))
    else:
        write_locks(cfg.select(variant), cfg.platforms)


@command("config", "registry", "base_mirror", "cache", "out", "debug", name="bases-bootstrap")
def bases_bootstrap(s: Settings, cfg: Config) -> None:
    """Push STAND-IN bases (Debian 12 + python3.11) to the base mirror, for offline hosts.
    One multi-arch index per base in the config, at the mirror (default: <registry>/mirror)."""
    bootstrap_standins(cfg, Paths(s.out, s.cache))


@command(*BUILD, "builder", variant=ONE_VARIANT)
def build(
    s: Settings,
    cfg: Config,
    variant: str = "",
    platform: str = "",
    push: bool = False,
    load: bool = False,
    no_cache: bool = False,
    dry_run: bool = False,
) -> None:
    """Build one cell (variant x platform): what a CI matrix job runs."""
    v = cli.cell_of(cfg, variant, platform, push=push, load=load)
    with open_run(s, cfg, dry_run=dry_run, no_cache=no_cache) as ctx:
        jobs.build_one(ctx, v, platform, push=push, dry_run=dry_run)


@command(*COMMON, "revision", variant=ONE_VARIANT)
def merge(s: Settings, cfg: Config, variant: str = "", dry_run: bool = False) -> None:
    """Merge the cell records of a variant into one index under an immutable tag."""
    with open_run(s, cfg, dry_run=dry_run) as ctx:
        jobs.merge_one(ctx, variant_of(cfg, variant), dry_run=dry_run)


@command(*cli.PROMOTES, "ca_bundle", "pip_index_url_file", variant=ONE_VARIANT)
def verify(s: Settings, cfg: Config, variant: str = "", ref: str = "", smoke: bool = True) -> None:
    """Check an index in the registry: platforms, config arch/os, labels, revision, size."""
    with open_run(s, cfg) as ctx:
        jobs.verify_one(ctx, variant_of(cfg, variant), ref or None, smoke=smoke)


@command(*cli.PROMOTES, variant=ONE_VARIANT)
def smoke(s: Settings, cfg: Config, variant: str = "", platform: str = "") -> None:
    """Smoke-test one platform of the verified index (a CI job on that platform's runner).
    Writes build/smoke/<variant>-<os>-<arch>.json for promote."""
    with open_run(s, cfg) as ctx:
        jobs.smoke_one(ctx, variant_of(cfg, variant), platform)


@command(*cli.PROMOTES, variant=ONE_VARIANT)
def promote(
    s: Settings,
    cfg: Config,
    variant: str = "",
    allow_rollback: bool = False,
    allow_narrowing: bool = False,
    dry_run: bool = False,
) -> None:
    """Move the floating tag to the verified, smoke-tested index and read it back."""
    permits = Guards(allow_rollback, allow_narrowing, require_gpu=s.require_gpu)
    with open_run(s, cfg, dry_run=dry_run) as ctx:
        jobs.promote_one(ctx, variant_of(cfg, variant), permits=permits, dry_run=dry_run)


@command(*cli.BUILDS_ALL, name="build-all")
def build_all(
    s: Settings,
    cfg: Config,
    variant: str = "",
    no_promote: bool = False,
    allow_rollback: bool = False,
    allow_narrowing: bool = False,
    dry_run: bool = False,
) -> None:
    """Every variant x platform: build, merge, verify, smoke, promote, report (fail-closed)."""
    permits = Guards(allow_rollback, allow_narrowing, require_gpu=s.require_gpu)
    with open_run(s, cfg, dry_run=dry_run) as ctx:
        pipeline.build_all(
            ctx, cfg.select(variant), dry_run=dry_run, promote=not no_promote, permits=permits
        )


@command(*COMMON)
def images(s: Settings, cfg: Config, json: bool = False) -> None:
    """Every index in the repository: tags, platforms, sizes, created, revision, versions."""
    with registry_client(s, cfg.registry) as client:
        print(describe.render(describe.list_indexes(client, cfg.registry, cfg.repository), json))


@command(*COMMON, positional=("ref",), ref="the index to inspect: REPO:TAG or REPO@sha256:...")
def inspect(
    s: Settings, cfg: Config, ref: str | None = None, json: bool = False, sbom: bool = False
) -> None:
    """Show one index as `curl | jq` would, with each image's SBOM and provenance digests.
    REF defaults to the first variant's floating tag; --sbom prints the SBOMs themselves."""
    ref = ref or f"{cfg.image}:{next(iter(cfg.variants))}"
    with registry_client(s, parse_ref(ref).api_host) as client:
        print(describe.show(client, parse_ref(ref), json, sbom))


@command(*COMMON, positional=("before", "after"))
def diff(s: Settings, _cfg: Config, before: str | None = None, after: str | None = None) -> None:
    """What changed between two indexes, per platform: packages and sizes (Markdown, for a PR).
    ./ai diff BEFORE AFTER"""
    if not before or not after:
        raise ConfigError("diff needs two refs", "e.g. invoke diff REPO:old-tag REPO@sha256:...")
    with registry_client(s, parse_ref(before).api_host) as client:
        print(describe.compare(client, parse_ref(before), parse_ref(after)))


@command(*BUILD, "runners", "gpu_runner", "builder")
def matrix(
    s: Settings,
    cfg: Config,
    json: bool = False,
    ci: bool = False,
    variant: str = "",
    dry_run: bool = False,
    gate: bool = False,
) -> None:
    """The CI plan from images.toml: legs, runners, variants waiting for a lock.
    --dry-run: each leg's build command; --gate: the variants whose records pass promote's gate."""
    jobs.plan_jobs(s, cfg, variant, ci=ci, dry_run=dry_run, as_json=json, gate=gate)


@command("config", "registry", "out", "cache", "builder", "debug")
def clean(s: Settings, cfg: Config, registry_gc: bool = False, dry_run: bool = False) -> None:
    """Reclaim disk: this repository's local images, the build cache, rendered Dockerfiles."""
    cleaning.clean(s, cfg, registry_gc=registry_gc, dry_run=dry_run)


@command("config", "base_mirror", "builder", "debug", builder=cli.BENCH_BUILDER)
def bench(
    s: Settings,
    cfg: Config,
    cells: str = "",
    bump: str = BUMP,
    repeats: int = 2,
    dry_run: bool = False,
    floor_only: bool = False,
) -> None:
    """Time cold/no-op/bumped builds against the single-layer shape and the floor."""
    with open_run(s, cfg, dry_run=dry_run or floor_only) as ctx:  # the floor writes no out/
        run_bench(ctx, select_cells(cfg, cells), bump, dry_run, repeats, floor_only)


@command(*COMMON, "builder", "ca_bundle", name="rebuild-check", positional=("ref",), ref=cli.INDEX)
def rebuild(
    s: Settings, cfg: Config, ref: str | None = None, platform: str = "", dry_run: bool = False
) -> None:
    """Rebuild an index's Python layers from its revision (a worktree): reproduced or not."""
    rebuild_check.check_rebuild(s, cfg, ref or "", platform, dry_run=dry_run)


@command("config", "debug", name="free-disk")
def free_disk(
    _s: Settings, _cfg: Config, need_gb: int = 30, runner_toolchains: bool = False
) -> None:
    """Check (and on a CI runner make) room for a build: a CUDA cell needs ~30 GB."""
    checks.free_disk(need_gb, remove_toolchains=runner_toolchains)


@command(
    "config", "out", "debug", "audit_service", "audit_osv_url", platform=cli.IMAGES, base=cli.SINCE
)
def audit(
    s: Settings,
    cfg: Config,
    variant: str = "",
    snapshot: str = "",
    image: str = "",
    platform: str = "",
    allowlist: str = "",
    today: str = "",
    allow_missing: str = "",
    floating: bool = False,
    base: str = "",
) -> None:
    """Audit every committed lock (and optionally an image) against the allowlist policy.
    pip-audit --strict; writes JSON results and CycloneDX SBOMs to build/audit/, one table.
    --base REV: a pull request's review, each lock change since REV with its advisories."""
    image = f"{cfg.image}:{variant_of(cfg, variant).name}" if floating else image  # serves now
    request = AuditRequest(
        variants=cfg.select(variant),
        platforms=cfg.platforms,
        service=s.audit_service,
        osv_url=s.audit_osv_url,
        snapshot=Path(snapshot) if snapshot else None,
        image=image or None,
        image_platforms=split_list(platform) or cfg.platforms,
        allowlist=Path(allowlist) if allowlist else cfg.root / DEFAULT_ALLOWLIST,
        today=parse_day(today),
        workdir=Paths(s.out, s.cache).audit,
        allow_missing=split_list(allow_missing),
    )
    review_locks(request, base) if base else audit_all(request)


@command(*BUILD, "platforms", positional=("pins",))
def update(s: Settings, cfg: Config, pins: str | None = None, build: bool = False) -> None:
    """Move pins, re-lock every cell they touch and show what changed (all or nothing).
    ./ai update NAME==VERSION[,...] [--build]: --build then builds verified candidates of those
    variants (nothing is promoted)."""
    variants = updates.apply(s, cfg, pins or "")
    if build:
        with open_run(s, cfg) as ctx:
            pipeline.build_all(ctx, variants, dry_run=False, promote=False)


@command("config", "base_mirror", "debug", name="bases-update")
def bases_update(
    _s: Settings, cfg: Config, dry_run: bool = False, allow_stand_in: bool = False
) -> None:
    """Pin each base tag to its current digest in the config: one reviewed line per base.
    The digest comes from the base's registry or the mirror; stand-ins need --allow-stand-in."""
    base_pins.update_base_pins(cfg, dry_run=dry_run, allow_stand_in=allow_stand_in)
