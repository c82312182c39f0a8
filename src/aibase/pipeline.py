"""The main job: build cells, merge, verify, smoke, promote, report. Fail closed.

Every step before `promote` writes only immutable references (digests, dated tags); the
floating tag moves only to an index that was verified in the registry and smoke-tested
on every required platform, and it is read back afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aibase import buildx, containers, log, proc, smoke
from aibase.config import Config, VariantConfig
from aibase.errors import AibaseError, BuildError, LockError, PromoteError, VerifyError
from aibase.lock import check_lock
from aibase.plan import (
    LOCK_LABEL,
    BuildContext,
    Cell,
    floating_tag,
    immutable_tags,
    plan_build,
    plan_cells,
    plan_merge,
)
from aibase.promote import promote_tag
from aibase.registry import RegistryClient, split_ref
from aibase.report import write_report
from aibase.verify import (
    VerifyResult,
    check_index,
    compressed_size,
    entry_platform,
    fetch_index,
    is_attestation,
    raise_if_failed,
)


@dataclass(frozen=True)
class CellResult:
    variant: str
    platform: str
    digest: str
    compressed_bytes: int
    seconds: float
    metadata: dict[str, Any]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> CellResult:
        return cls(**json.loads(path.read_text()))


@dataclass
class RunReport:
    """Everything the run learned, for the JSON + Markdown report."""

    started: str
    revision: str
    registry: str
    repository: str
    dry_run: bool
    base_mirror: str | None
    cells: list[dict[str, Any]] = field(default_factory=list)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    error: str | None = None


def git_revision(root: Path | None = None) -> str:
    """The commit the images are built from: AIBASE_REVISION, else HEAD of the checkout
    the tool runs in (the Dockerfiles and the tool live there, wherever the config is)."""
    if os.environ.get("AIBASE_REVISION"):
        return os.environ["AIBASE_REVISION"]
    where = root or Path.cwd()
    result = proc.run(["git", "-C", str(where), "rev-parse", "HEAD"], echo=False)
    if not result.ok:
        raise BuildError(
            f"{where} is not a git checkout with a commit: the revision label needs one",
            "build from a clone of the repository (git commit first), or set AIBASE_REVISION",
        )
    return result.stdout.strip()


def make_context(
    config: Config,
    *,
    ca_bundle: Path | None = None,
    cache_dir: Path | None = None,
    compression: str | None = None,
    no_cache: bool = False,
    now: datetime | None = None,
) -> BuildContext:
    moment = now or datetime.now(UTC)
    return BuildContext(
        revision=git_revision(),
        created=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        date=moment.strftime("%Y%m%d"),
        ca_bundle=ca_bundle,
        cache_dir=cache_dir,
        compression=compression,
        no_cache=no_cache,
    )


def out_dir() -> Path:
    """Where cell results, state and reports go: AIBASE_OUT or ./build."""
    return Path(os.environ.get("AIBASE_OUT", "build")).resolve()


def cell_dir() -> Path:
    return out_dir() / "cells"


def state_path(config: Config, variant: VariantConfig) -> Path:
    return out_dir() / "state" / f"{config.repository.replace('/', '_')}-{variant.name}.json"


def read_state(config: Config, variant: VariantConfig) -> dict[str, Any]:
    path = state_path(config, variant)
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(config: Config, variant: VariantConfig, state: dict[str, Any]) -> None:
    path = state_path(config, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


def require_locks(variant: VariantConfig, platforms: Sequence[str]) -> None:
    bad = [s for s in (check_lock(variant, variant.platform(p)) for p in platforms) if not s.ok]
    if bad:
        raise LockError(
            "lock files not usable: "
            + "; ".join(f"{s.variant}/{s.platform}: {s.state} ({s.path})" for s in bad),
            "run `invoke lock` (where every index the config names is reachable) and commit "
            "the result",
        )


def require_base(config: Config, variant: VariantConfig) -> None:
    """With a mirror, check the base is there before building (its absence otherwise shows up
    as a buildx error deep in the log). Without one the engine pulls from the base's own
    registry, which we do not contact ahead of it."""
    if not config.base_mirror:
        return
    ref = config.base_for(variant)
    host, repo, reference = split_ref(ref)
    with RegistryClient(host) as client:
        found = client.head_manifest(repo, reference)
    if found is None:
        raise BuildError(
            f"base image {ref} (for {variant.base}) is not in the mirror {config.base_mirror}",
            "copy the real base there, or for tests and offline hosts push stand-ins: "
            f"invoke bases-bootstrap --mirror {config.base_mirror}",
        )


def _pushed_size(client: RegistryClient, repo: str, digest: str, platform: str) -> int:
    """Compressed size of the platform image behind a pushed digest (index or manifest)."""
    top = client.get_manifest(repo, digest)
    if not top.is_index:
        return compressed_size(top)
    for entry in top.json.get("manifests", []):
        if not is_attestation(entry) and entry_platform(entry) == platform:
            return compressed_size(client.get_manifest(repo, entry["digest"]))
    raise BuildError(f"pushed {digest} holds no {platform} image", "rebuild the cell")


def build_cell(
    config: Config,
    variant: VariantConfig,
    cell: Cell,
    ctx: BuildContext,
    *,
    push: bool = True,
    load: bool = False,
    dry_run: bool = False,
) -> CellResult | None:
    """Build one cell. With push: by digest only, and write the cell result file."""
    if not dry_run:
        require_locks(variant, [cell.platform])
        require_base(config, variant)
    tags = [f"{config.repository}:{cell.slug}-dev"] if load else []
    lock_file = variant.lock_file(cell.platform)
    lock_sha = hashlib.sha256(lock_file.read_bytes()).hexdigest() if lock_file.exists() else ""
    plan = plan_build(
        config,
        variant,
        cell,
        ctx,
        push=push,
        load=load,
        tags=tags,
        out_dir=cell_dir(),
        extra_labels={LOCK_LABEL: lock_sha} if lock_sha else None,
    )
    start = time.monotonic()
    metadata = buildx.run_build(plan, dry_run=dry_run)
    if dry_run or not push:
        return None
    seconds = time.monotonic() - start
    digest = str(metadata.get("containerimage.digest", ""))
    if not digest.startswith("sha256:"):
        raise BuildError(f"cell {cell.slug}: buildx reported no pushed digest", "rerun the build")
    with RegistryClient(config.registry) as client:
        size = _pushed_size(client, config.repository, digest, cell.platform)
    result = CellResult(variant.name, cell.platform, digest, size, round(seconds, 1), metadata)
    result.write(plan.result_file)
    log.info(f"cell {cell.variant}/{cell.platform}: {digest} ({size / 1e6:.1f} MB compressed)")
    return result


def read_cells(config: Config, variant: VariantConfig) -> dict[str, CellResult]:
    out: dict[str, CellResult] = {}
    for cell in plan_cells(config, [variant]):
        path = cell_dir() / f"{cell.slug}.json"
        if path.exists():
            out[cell.platform] = CellResult.read(path)
    return out


def merge_variant(
    config: Config, variant: VariantConfig, ctx: BuildContext, *, dry_run: bool = False
) -> str:
    """One index of every required platform, under the immutable tags. Returns its digest."""
    if dry_run:
        digests = {p: f"<digest of {variant.name}/{p}>" for p in config.platforms}
    else:
        cells = read_cells(config, variant)
        missing = [p for p in config.platforms if p not in cells]
        if missing:
            raise BuildError(
                f"merge {variant.name}: no cell result for {', '.join(missing)}; refusing to "
                f"create an index without every required platform",
                f"build the missing cell(s): invoke build --variant {variant.name} "
                f"--platform {missing[0]} --push",
            )
        digests = {p: cells[p].digest for p in config.platforms}
    buildx.run_imagetools_create(plan_merge(config, variant, digests, ctx), dry_run=dry_run)
    if dry_run:
        return "<index digest>"
    tag = immutable_tags(variant, ctx)[0]
    with RegistryClient(config.registry) as client:
        digest = client.get_manifest(config.repository, tag).digest
    state = {
        "index_digest": digest,
        "tags": list(immutable_tags(variant, ctx)),
        "revision": ctx.revision,
    }
    write_state(config, variant, state)
    log.info(f"merged {variant.name}: {config.image}@{digest}")
    return digest


def verify_ref(
    config: Config, variant: VariantConfig, ref: str, revision: str | None
) -> VerifyResult:
    host, repo, reference = split_ref(ref)
    with RegistryClient(host) as client:
        fetched = fetch_index(client, repo, reference)
    result = check_index(config, variant, fetched, revision)
    log.info(result.table())
    return result


def smoke_index(
    config: Config, variant: VariantConfig, result: VerifyResult
) -> dict[str, list[str]]:
    """Probe every required platform's image by digest; platform -> problems."""
    found: dict[str, list[str]] = {}
    host, repo, _ = split_ref(result.ref)
    for image in result.images:
        if image.platform not in config.platforms:
            continue
        run = containers.run_probe(f"{host}/{repo}@{image.digest}", image.platform)
        locked = smoke.locked_packages(variant, image.platform)
        found[image.platform] = smoke.check_probe(run.report, variant, image.platform, locked)
    return found


def record_verified(
    config: Config, variant: VariantConfig, result: VerifyResult, smoked: dict[str, list[str]]
) -> None:
    state = read_state(config, variant)
    state["verified"] = {
        "index_digest": result.index_digest,
        "platforms": {i.platform: i.digest for i in result.images},
    }
    state["smoke"] = {p: {"ok": not probs, "problems": probs} for p, probs in smoked.items()}
    write_state(config, variant, state)


def promote_variant(
    config: Config, variant: VariantConfig, *, dry_run: bool = False, revision: str | None = None
) -> dict[str, str | None]:
    """Move the floating tag to the recorded index, after re-verifying it in the registry."""
    tag = floating_tag(variant)
    if dry_run:
        log.info(f"[dry-run] would PUT {config.image}:{tag} -> <verified, smoke-tested index>")
        return {}
    state = read_state(config, variant)
    digest = state.get("index_digest")
    if not digest:
        raise PromoteError(
            f"promote {variant.name}: no merged index recorded",
            f"run invoke merge --variant {variant.name} first",
        )
    verified = state.get("verified", {})
    if verified.get("index_digest") != digest:
        raise PromoteError(
            f"promote {variant.name}: index {digest} was never verified",
            f"run invoke verify --variant {variant.name} (it also smoke-tests)",
        )
    failed = [p for p in config.platforms if not state.get("smoke", {}).get(p, {}).get("ok")]
    if failed:
        raise PromoteError(
            f"promote {variant.name}: {', '.join(failed)} not smoke-tested or failed; "
            f"{config.image}:{tag} left untouched",
            f"fix the image and rerun invoke verify --variant {variant.name}",
        )
    # Re-verify now: the registry is the truth, not a state file.
    result = verify_ref(config, variant, f"{config.image}@{digest}", revision)
    raise_if_failed(result)
    if {i.platform: i.digest for i in result.images} != verified.get("platforms"):
        raise PromoteError(
            f"promote {variant.name}: index content changed since verify", "rerun invoke verify"
        )
    with RegistryClient(config.registry) as client:
        previous = promote_tag(client, config.repository, tag, digest)
    return {"tag": f"{config.image}:{tag}", "previous": previous, "digest": digest}


def build_all(
    config: Config,
    variants: Sequence[VariantConfig],
    ctx: BuildContext,
    *,
    dry_run: bool = False,
    promote: bool = True,
    report_dir: Path | None = None,
) -> RunReport:
    timer = log.StepTimer()
    report = RunReport(
        started=ctx.created,
        revision=ctx.revision,
        registry=config.registry,
        repository=config.repository,
        dry_run=dry_run,
        base_mirror=config.base_mirror,
    )
    if config.base_mirror:
        log.info(f"bases come from the mirror {config.base_mirror}")
    try:
        for variant in variants:
            if not dry_run:  # fail before any build starts
                require_locks(variant, config.platforms)
                require_base(config, variant)
        for variant in variants:
            vrep: dict[str, Any] = {"platforms": {}}
            report.variants[variant.name] = vrep
            for cell in plan_cells(config, [variant]):
                with timer.step(f"build {cell.variant}/{cell.platform}"):
                    res = build_cell(config, variant, cell, ctx, push=True, dry_run=dry_run)
                if res:
                    report.cells.append(asdict(res) | {"metadata": None})
            with timer.step(f"merge {variant.name}"):
                index = merge_variant(config, variant, ctx, dry_run=dry_run)
            vrep["index_digest"] = index
            vrep["tags"] = [f"{config.image}:{t}" for t in immutable_tags(variant, ctx)]
            if dry_run:
                log.info(f"[dry-run] would verify and smoke {config.image}@{index} per platform")
                promote_variant(config, variant, dry_run=True)
                continue
            with timer.step(f"verify {variant.name}"):
                result = verify_ref(config, variant, f"{config.image}@{index}", ctx.revision)
                raise_if_failed(result)
            with timer.step(f"smoke {variant.name}"):
                smoked = smoke_index(config, variant, result)
                record_verified(config, variant, result, smoked)
            for image in result.images:
                lock = variant.lock_file(image.platform)
                vrep["platforms"][image.platform] = {
                    "digest": image.digest,
                    "compressed_mb": round(image.compressed_bytes / 1e6, 1),
                    "smoke": smoked.get(image.platform),
                    "lock": str(lock),
                    "lock_sha256": image.labels.get(LOCK_LABEL),
                    # `invoke audit` writes the lock's CycloneDX SBOM here
                    "sbom": str(out_dir() / "audit" / lock.name.replace(".txt", ".cdx.json")),
                }
            bad = {p: probs for p, probs in smoked.items() if probs}
            if bad:
                raise VerifyError(
                    f"smoke {variant.name} failed:\n  - "
                    + "\n  - ".join(f"{p}: {x}" for p, probs in bad.items() for x in probs),
                    f"{config.image}:{floating_tag(variant)} left untouched; fix the image",
                )
            if promote:
                with timer.step(f"promote {variant.name}"):
                    vrep["promoted"] = promote_variant(config, variant, revision=ctx.revision)
    except AibaseError as exc:
        report.error = exc.render()
        raise
    finally:
        report.steps = timer.steps
        log.info(timer.summary())
        if report_dir is not None and not dry_run:
            write_report(report, report_dir)
    return report
