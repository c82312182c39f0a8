"""`./ai bench`: how fast builds and updates are, ours against the old guide's single-layer
shape (bench/single-layer.Dockerfile, same base, OS packages and lock), side by side in one
run. A benchmark, not a test: it reports ratios, committed with the commit it measured.

Per cell, first its floor (tools/bench_floor: uv and gzip alone, no Docker), then `--repeats`
times: build cold, again (no-op), then the bump of one pin (made once, in a clone of HEAD, by
`invoke update`); the same for the single-layer shape. A cold build
follows a prune of the bench's own builder (`--builder`; no other is ever pruned), or runs
every step with --no-cache on a shared one. It refuses a figure it did not measure: a cold
build with a CACHED step, a step another build on the engine overlapped (tools/bench_checks).
The bytes a bump pushes are the bumped image's layers the no-op image did not have; those
a cold rebuild of the unchanged commit pushes, the second cold image's the first did not.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from platform import machine

from aibase import log
from aibase.build.cell import platform_manifest
from aibase.build.layers import LayerGroup, plan_groups
from aibase.build.lock_format import parse_lock
from aibase.build.plan import BuildPlan, Cell
from aibase.build.run_context import RunContext
from aibase.config.model import Config
from aibase.errors import BenchRefused, BuildError, ConfigError
from aibase.host import activity, engine, engine_build, git, proc
from aibase.host.buildlog import last_error
from aibase.names import normalize_name
from aibase.release.smoke import smoke_image
from aibase.state import read_cell, write_atomic
from aibase.tools.bench_checks import Timing, cached_steps, foreign_builds, new_bytes
from aibase.tools.bench_floor import measure_floor, run_floor
from aibase.tools.bench_plan import (
    bump_timed,
    cold_method,
    results_path,
    show_bench,
    single_builds,
    uncommitted_inputs,
    user_path,
)
from aibase.tools.bench_report import FLOOR_GOAL, CellBench, Layer, Shape, foreign_ratios, render
from aibase.tools.imagesize import measure

BUMP = "structlog==24.1.0"  # the default one-pin bump: a shared-stack leaf package
NATIVE = {"x86_64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


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


def _other_builds() -> list[str]:
    return foreign_builds(activity.process_table(), os.getpid())


def refuse_if_busy() -> None:
    """Another build on the engine would slow every step it overlaps: refuse to start."""
    busy = _other_builds()
    if busy:
        raise BenchRefused(
            f"another build is running on this host: {busy[0]}"
            + (f" (and {len(busy) - 1} more)" if len(busy) > 1 else ""),
            "wait for it to finish (or stop it), then rerun the bench",
        )


def _run(argv: Sequence[str], what: str) -> str:
    """Run one step with its output kept out of the table (shown when it fails)."""
    result = proc.run(argv, timeout=proc.LONG)
    output = result.stdout + result.stderr
    if not result.ok:
        log.write_line(output[-3000:])
        raise BuildError(f"bench step {what} failed{last_error(output)}", "see its output above")
    return output


def timed_step(argv: Sequence[str], what: str, *, fresh: str | None = None) -> tuple[float, str]:
    """One timed run (an `invoke` of the user's path, or the single-layer shape's buildx),
    its output kept out of the table: (seconds, output). Refused when another build ran
    beside it, or when it took from the cache a step whose name holds `fresh` ("": a cold
    build, every step; a bump: its group's steps)."""
    with activity.watching(lambda table: foreign_builds(table, os.getpid())) as seen:
        started = time.monotonic()
        output = _run(argv, what)
        seconds = round(time.monotonic() - started, 1)
    if seen:
        raise BenchRefused(
            f"bench step {what} ran beside another build: {sorted(seen)[0]}",
            "rerun the bench when the engine is idle",
        )
    cached = cached_steps(output, fresh) if fresh is not None else []
    if cached:
        raise BenchRefused(
            f"bench step {what} took {len(cached)} step(s) it must build from the cache, "
            f"e.g. {cached[0]}",
            "give the bench a builder of its own (--builder, it prunes it); on a shared one "
            "an earlier build of the same bump, or a --cache-from, fills the cache",
        )
    return seconds, output


def _build(plan: BuildPlan, what: str, fresh: str | None) -> tuple[float, str]:
    """One single-layer build, timed: (seconds, digest)."""
    seconds, _ = timed_step(plan.argv, what, fresh=fresh)
    return seconds, str(json.loads(plan.metadata_file.read_text())["containerimage.digest"])


def bench_cell(
    ctx: RunContext, variant: str, platform: str, bump: str, work: Path, repeats: int = 1
) -> CellBench:
    config, cell = ctx.config, Cell(variant, platform)
    floor = measure_floor(config, cell, work / "floor", repeats)  # before anything is built
    builder, top = ctx.build.builder, git.toplevel(config.root)
    runs = user_path(config, cell, bump, work, top, builder)
    clone = work / "clone"  # the bump, in a clone of HEAD: this checkout stays as it is
    if not proc.run(["git", "clone", "--quiet", str(top), str(clone)], timeout=proc.QUICK * 5).ok:
        raise BuildError(f"could not clone {top} for the bump", "see git's message above")
    _run(runs["update"], "invoke update")
    # what each timed step must build itself: a cold build everything, a bump its group
    # (ours) or the one install (the single-layer shape)
    fresh = {
        "cold": "",
        "noop": None,
        "bump": f"[group-{bumped_group(config, cell, bump, clone, top)} ",
    }
    single_fresh = fresh | {"bump": "pip install"}
    record = {k: work / k / "cells" / f"{cell.slug}.json" for k in ("cold", "noop", "bump")}
    ours: dict[str, list[float]] = {"cold": [], "noop": [], "bump": []}
    single: dict[str, list[float]] = {"cold": [], "noop": [], "bump": []}
    # digests: each run's cold image, and the first no-op and bumped ones (ours, single)
    firsts: list[str] = []
    made: dict[str, str] = {}
    for run in range(1, repeats + 1):
        steps = ("cold", "noop", "bump")[: 3 if bump_timed(builder, run) else 2]
        prune_own(builder)
        for step in steps:
            ours[step].append(timed_step(runs[step], f"ours {step}", fresh=fresh[step])[0])
            digest = read_cell(record[step]).digest
            firsts += [digest] if step == "cold" else []
            made.setdefault(step, digest)
        prune_own(builder)
        for step, plan in zip(steps, single_builds(ctx, cell, work, top), strict=False):
            seconds, digest = _build(plan, f"single-layer {step}", single_fresh[step])
            single[step].append(seconds)
            made.setdefault(f"single {step}", digest)
    started = time.monotonic()
    smoked = smoke_image(config.variant(variant), config.image, platform, firsts[0], None, False)
    if smoked.problems:
        raise BuildError(
            f"bench: the cold image fails its smoke test: {smoked.problems[0]}",
            "fix the image; a bench of a broken image measures nothing",
        )
    smoke_s = round(time.monotonic() - started, 1)
    lock = config.variant(variant).lock_file(platform).read_text()
    groups = plan_groups(tuple(parse_lock(lock)), config.variant(variant))
    mine = _shape(ctx, platform, (firsts[0], made["noop"], made["bump"]), ours, smoke_s, groups)
    if len(firsts) > 1:  # the second cold image: what a fresh builder pushes again
        again = layers_of(ctx, firsts[1], platform)
        old = {x.digest: x.bytes for x in mine.layers}
        mine = replace(
            mine,
            rebuild_pushed_bytes=new_bytes(old, {x.digest: x.bytes for x in again}),
            rebuild_python_pushed_bytes=new_bytes(
                old, {x.digest: x.bytes for x in again if x.python}
            ),
        )
    singles = (made["single cold"], made["single noop"], made["single bump"])
    theirs = _shape(ctx, platform, singles, single, 0.0)
    return CellBench(f"{variant}/{platform}", bump, mine, theirs, floor)


def bumped_group(config: Config, cell: Cell, bump: str, clone: Path, top: Path) -> str:
    """The layer group holding the bumped package, by the clone's lock (the group settings
    are this checkout's: a bump changes pins, not them)."""
    variant = config.variant(cell.variant)
    lock = clone / variant.lock_file(cell.platform).resolve().relative_to(top)
    groups = plan_groups(tuple(parse_lock(lock.read_text())), variant)
    name = normalize_name(bump.split("==")[0])
    return next((g.name for g in groups if name in g.packages), name)


def prune_own(builder: str | None) -> None:
    """Prune the bench's own builder; a shared one never (its cold builds run --no-cache)."""
    if builder and not all(r.ok for r in engine.reclaim([], builder)):
        raise BuildError("could not prune the build cache: a cold build would be warm", "retry")


def check_builder(builder: str | None) -> None:
    """The bench prunes the builder it is given: never one whose cache is the engine's."""
    if builder and engine_build.builder_driver(builder) == "docker":
        raise BenchRefused(
            f"builder {builder} uses the docker driver: its cache is the engine's, shared "
            "with every build on it, and the bench prunes the builder it is given",
            "create one for the bench: docker buildx create --name aibase-bench --driver "
            "docker-container --driver-opt network=host; or leave --builder out (nothing "
            "is pruned, cold builds run with --no-cache)",
        )


def _shape(
    ctx: RunContext,
    platform: str,
    images: tuple[str, str, str],
    seconds: dict[str, list[float]],
    smoke_s: float,
    groups: Sequence[LayerGroup] = (),
) -> Shape:
    """images: the cold, no-op and bumped image; seconds: each run's, by step. What a bump
    pushes is measured against the build before it, the no-op: after a --no-cache cold build
    the cache holds two versions of the OS layers (apt's are not reproducible), and the
    no-op and the bump take theirs from the same one."""
    before = layers_of(ctx, images[0], platform, groups)
    previous, after = (layers_of(ctx, digest, platform) for digest in images[1:])
    pushed = new_bytes({x.digest: x.bytes for x in previous}, {x.digest: x.bytes for x in after})
    repo = ctx.config.repository  # every layer read once, whole (the largest is ~1 GB)
    size = measure(ctx.registry.get_blob(repo, x.digest, limit=1 << 34) for x in before)
    cold, noop, bump = (tuple(seconds[k]) for k in ("cold", "noop", "bump"))
    medians = (Timing(cold).median, Timing(noop).median, Timing(bump).median)
    image = sum(x.bytes for x in before)
    return Shape(*medians, image, pushed, before, size, smoke_s, cold, noop, bump)


def run_bench(
    ctx: RunContext,
    cells: list[Cell],
    bump: str,
    dry_run: bool = False,
    repeats: int = 2,
    floor_only: bool = False,
) -> Path | None:
    """Bench every cell; write bench/results/<date>-<sha7>.{json,md}; the .md path. A dry
    run prints the plan (tools/bench_plan.py) and runs nothing; `floor_only` measures (or
    plans) the cells' floors alone and writes nothing."""
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats}: at least 1", "pass --repeats 2 (the default)")
    if floor_only:
        run_floor(ctx, cells, repeats, dry_run)
        return None
    if dry_run:
        return show_bench(ctx, cells, bump, repeats)
    check_builder(ctx.build.builder)
    refuse_if_busy()
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
                results.append(bench_cell(ctx, cell.variant, cell.platform, bump, work, repeats))
                log.info(f"{cell.variant}/{cell.platform}: {results[-1].floor_text()}")
                shutil.rmtree(work / "clone", ignore_errors=True)
    foreign = foreign_ratios(results, NATIVE.get(machine(), ""))
    base = results_path(ctx.config, commit)
    how = cold_method(ctx.build.builder)
    data: dict[str, object] = {"commit": commit, "repeats": repeats, "cold": how}
    data["floor_goal"] = FLOOR_GOAL  # each cell's cold build at most this times its floor
    data["cells"] = [
        asdict(r) | {"ratios": r.ratios(), "floor_goal_met": r.floor_goal_met()} for r in results
    ]
    write_atomic(base.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    write_atomic(base.with_suffix(".md"), render(results, commit, foreign, how))
    print(base.with_suffix(".md").read_text())
    # a full run leaves ~50 GB of unpacked images (four per native cell) and registry data
    log.info("the bench's images stay in the local store and registry: `invoke clean` frees them")
    return base.with_suffix(".md")
