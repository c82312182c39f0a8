"""`./ai bench`: how fast builds and updates are, ours against the old guide's single-layer
shape (bench/single-layer.Dockerfile, same base, OS packages and lock), side by side in one
run. A benchmark, not a test: it reports ratios, committed with the commit it measured.

Per cell: prune the builder's cache, build cold, again (no-op), then bump one pin in a clone
of HEAD (`invoke update`) and build that; prune, and the same for the single-layer shape.
The bytes a bump pushes are the bumped image's layers the first image did not have.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from platform import machine

from aibase import log
from aibase.build.cell import platform_manifest
from aibase.build.layers import LayerGroup, plan_groups
from aibase.build.lock_format import parse_lock
from aibase.build.plan import Cell
from aibase.build.run_context import RunContext
from aibase.config.model import Config
from aibase.errors import BuildError
from aibase.host import engine, engine_build, git, proc
from aibase.release.smoke import smoke_image
from aibase.state import read_cell, write_atomic
from aibase.tools.bench_plan import (
    results_path,
    show_bench,
    single_builds,
    uncommitted_inputs,
    user_path,
)
from aibase.tools.imagesize import ImageSize, measure

BUMP = "structlog==24.1.0"  # the default one-pin bump: a shared-stack leaf package
NATIVE = {"x86_64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


@dataclass(frozen=True)
class Layer:
    digest: str
    bytes: int
    step: str  # the instruction that made it (the image config's history)
    holds: str = ""  # a layer group's packages


@dataclass(frozen=True)
class Shape:
    cold_s: float
    noop_s: float
    bump_s: float
    image_bytes: int  # compressed, this platform
    bump_pushed_bytes: int  # the bumped image's layers the first one did not have
    layers: tuple[Layer, ...]
    size: ImageSize  # uncompressed, payload and their ratio (imagesize.py)
    smoke_s: float  # the smoke probe of the cold image, pull included; ours only (0 else)


@dataclass(frozen=True)
class CellBench:
    cell: str  # variant/os/arch
    bump: str  # NAME==VERSION
    ours: Shape
    single: Shape

    def ratios(self) -> dict[str, float]:
        o, s = self.ours, self.single
        return {
            "bump_time_of_cold": o.bump_s / o.cold_s,
            "bump_bytes_of_image": o.bump_pushed_bytes / o.image_bytes,
            "cold_vs_single_layer": o.cold_s / s.cold_s,
            "single_bump_time_of_cold": s.bump_s / s.cold_s,
            "single_bump_bytes_of_image": s.bump_pushed_bytes / s.image_bytes,
            "size_of_payload": o.size.ratio,
            "single_size_of_payload": s.size.ratio,
        }


def render(results: list[CellBench], commit: str, foreign: dict[str, float]) -> str:
    """The Markdown table a pull request quotes."""
    rows = [
        "| cell | shape | cold s | no-op s | bump s | bump/cold | pushed by bump | image "
        "| uncompressed | payload | size/payload | smoke s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for name, sh in (("ours", r.ours), ("single layer", r.single)):
            rows.append(
                f"| {r.cell} | {name} | {sh.cold_s:.1f} | {sh.noop_s:.1f} | {sh.bump_s:.1f} | "
                f"{sh.bump_s / sh.cold_s:.0%} | {sh.bump_pushed_bytes / 1e6:.1f} MB "
                f"({sh.bump_pushed_bytes / sh.image_bytes:.1%}) | {sh.image_bytes / 1e6:.1f} MB "
                f"| {sh.size.uncompressed / 1e6:.1f} MB | {sh.size.payload / 1e6:.1f} MB "
                f"| {sh.size.ratio:.3f} | {f'{sh.smoke_s:.1f}' if sh.smoke_s else '-'} |"
            )
    lines = [f"# bench at {commit[:7]} ({time.strftime('%Y-%m-%d')})", "", *rows, ""]
    for r in results:
        ratio = r.ratios()["cold_vs_single_layer"]
        lines.append(f"- {r.cell}: cold build {ratio:.2f}x the single-layer shape's; bump {r.bump}")
        big = sorted(r.ours.layers, key=lambda x: -x.bytes)[:3]
        lines += [f"  - {b.bytes / 1e6:.1f} MB: {(b.holds or b.step)[:100]}" for b in big]
    lines += [
        f"- foreign-platform cold cell {k}: {v:.2f}x the native one" for k, v in foreign.items()
    ]
    return "\n".join(lines) + "\n"


def layers_of(
    ctx: RunContext, digest: str, platform: str, groups: Sequence[LayerGroup] = ()
) -> tuple[Layer, ...]:
    """The image's layers; `groups` (in the rendered order) name what each group layer holds."""
    repo = ctx.config.repository
    image = platform_manifest(ctx.registry, repo, digest, platform)
    config = json.loads(ctx.registry.get_blob(repo, image.json["config"]["digest"]))
    steps = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
    # the history names no stage: the group layers are the `COPY /layer/` steps, in order
    holds = iter(", ".join(g.packages) for g in groups)
    return tuple(
        Layer(x["digest"], int(x["size"]), s, next(holds, "") if "COPY /layer/" in s else "")
        for x, s in zip(image.json["layers"], steps, strict=False)
    )


def _invoke(argv: list[str]) -> float:
    """One `invoke` run of the user's path, timed; its output kept out of the table."""
    started = time.monotonic()
    result = proc.run(argv, timeout=proc.LONG)
    if not result.ok:
        log.write_line(result.stderr[-3000:])
        raise BuildError(f"bench step `invoke {argv[1]}` failed", "see its output above")
    return round(time.monotonic() - started, 1)


def bench_cell(ctx: RunContext, variant: str, platform: str, bump: str, work: Path) -> CellBench:
    config, cell = ctx.config, Cell(variant, platform)
    builder, top = ctx.build.builder, git.toplevel(config.root)
    runs = user_path(config, cell, bump, work, top)
    _prune(builder)  # cold: nothing cached
    cold, noop = _invoke(runs["cold"]), _invoke(runs["noop"])
    first = read_cell(work / "cold" / "cells" / f"{cell.slug}.json").digest
    clone = work / "clone"  # the bump, in a clone of HEAD: this checkout stays as it is
    if not proc.run(["git", "clone", "--quiet", str(top), str(clone)], timeout=proc.QUICK * 5).ok:
        raise BuildError(f"could not clone {top} for the bump", "see git's message above")
    _invoke(runs["update"])
    bumped_s = _invoke(runs["bump"])
    bumped = read_cell(work / "bump" / "cells" / f"{cell.slug}.json").digest
    started = time.monotonic()
    smoked = smoke_image(config.variant(variant), config.image, platform, first, None, False)
    if smoked.problems:
        raise BuildError(
            f"bench: the cold image fails its smoke test: {smoked.problems[0]}",
            "fix the image; a bench of a broken image measures nothing",
        )
    smoke_s = round(time.monotonic() - started, 1)
    lock = config.variant(variant).lock_file(platform).read_text()
    groups = plan_groups(tuple(parse_lock(lock)), config.variant(variant))
    ours = _shape(ctx, platform, first, bumped, (cold, noop, bumped_s), smoke_s, groups)
    times, digests = [], []
    _prune(builder)
    for plan in single_builds(ctx, cell, work, top):
        started = time.monotonic()
        metadata = engine_build.run_build(plan.argv, plan.metadata_file, f"{variant}/{platform}")
        digests.append(str(metadata["containerimage.digest"]))
        times.append(round(time.monotonic() - started, 1))
    single = _shape(ctx, platform, digests[0], digests[2], (times[0], times[1], times[2]), 0.0)
    return CellBench(f"{variant}/{platform}", bump, ours, single)


def _prune(builder: str | None) -> None:
    if not all(r.ok for r in engine.reclaim([], builder)):
        raise BuildError("could not prune the build cache: a cold build would be warm", "retry")


def _shape(
    ctx: RunContext,
    platform: str,
    first: str,
    bumped: str,
    seconds: tuple[float, float, float],
    smoke_s: float,
    groups: Sequence[LayerGroup] = (),
) -> Shape:
    """seconds: cold, no-op, bump."""
    before = layers_of(ctx, first, platform, groups)
    after = layers_of(ctx, bumped, platform)
    old = {x.digest for x in before}
    pushed = sum(x.bytes for x in after if x.digest not in old)
    repo = ctx.config.repository  # every layer read once, whole (the largest is ~1 GB)
    size = measure(ctx.registry.get_blob(repo, x.digest, limit=1 << 34) for x in before)
    return Shape(*seconds, sum(x.bytes for x in before), pushed, before, size, smoke_s)


def foreign_ratios(results: list[CellBench], native: str) -> dict[str, float]:
    """Each emulated cell's cold build against the same variant's native one (the build
    machine's platform: the docker driver builds there)."""
    cold = {r.cell: r.ours.cold_s for r in results}
    out = {}
    for r in results:
        variant, cell_platform = r.cell.split("/", 1)
        native_s = cold.get(f"{variant}/{native}")
        if cell_platform != native and native_s:
            out[f"{r.cell} (native {variant}/{native})"] = r.ours.cold_s / native_s
    return out


def select_cells(config: Config, cells: str) -> list[Cell]:
    """`fixture/linux/amd64,...` -> cells, each checked against the config; '' -> all."""
    if not cells:
        return [Cell(v, p) for v in config.variants for p in config.platforms]
    chosen = []
    for item in (c.strip() for c in cells.split(",") if c.strip()):
        variant, _, platform = item.partition("/")
        config.variant(variant).platform(platform)  # a clear error for a typo
        chosen.append(Cell(variant, platform))
    return chosen


def run_bench(ctx: RunContext, cells: list[Cell], bump: str, dry_run: bool = False) -> Path:
    """Bench every cell; write bench/results/<date>-<sha7>.{json,md}; the .md path. A dry
    run prints the plan (tools/bench_plan.py) and runs nothing."""
    if dry_run:
        return show_bench(ctx, cells, bump)
    commit = git.revision(ctx.config.root)
    dirty = uncommitted_inputs(ctx.config, git.toplevel(ctx.config.root))
    if dirty:  # the bump builds from a clone of HEAD: both sides must be HEAD
        raise BuildError(
            f"bench measures a commit; uncommitted: {', '.join(dirty)}", "commit (or stash) first"
        )
    results = []
    with tempfile.TemporaryDirectory(prefix="aibase-bench-") as tmp:
        for cell in cells:
            with log.step(f"bench {cell.variant}/{cell.platform}"):
                work = Path(tmp) / cell.slug
                results.append(bench_cell(ctx, cell.variant, cell.platform, bump, work))
                shutil.rmtree(work / "clone", ignore_errors=True)
    foreign = foreign_ratios(results, NATIVE.get(machine(), ""))
    base = results_path(ctx.config, commit)
    data = {"commit": commit, "cells": [asdict(r) | {"ratios": r.ratios()} for r in results]}
    write_atomic(base.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    write_atomic(base.with_suffix(".md"), render(results, commit, foreign))
    print(base.with_suffix(".md").read_text())
    # a full run leaves ~50 GB of unpacked images (four per native cell) and registry data
    log.info("the bench's images stay in the local store and registry: `invoke clean` frees them")
    return base.with_suffix(".md")
