"""What `./ai bench` runs, planned without running it: the task runs a cell is timed on,
the single-layer shape's builds, the floor's install, and `./ai bench --dry-run`, which
prints every command in order and changes nothing (no prune, no build, no clone, no
download, no results file).

May import: build, config, host, log.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from aibase import log
from aibase.build.lock_format import UV_PLATFORMS
from aibase.build.locks import find_uv
from aibase.build.plan import CELL_TAG_PREFIX, BuildPlan, Cell, cell_tag
from aibase.build.run_context import RunContext
from aibase.config.model import Config
from aibase.host import git
from aibase.host.buildx import BuildxBuild, buildx_argv

SINGLE_LAYER = Path("bench") / "single-layer.Dockerfile"  # in the checkout's root
# Both shapes push gzip (every puller reads it), which BuildKit writes at Go's compress/gzip
# default, level 6 (moby/buildkit util/compression/gzip.go): the floor compresses alike.
COMPRESSION = "gzip"
GZIP_LEVEL = 6


def user_path(
    config: Config, cell: Cell, bump: str, work: Path, top: Path, builder: str | None = None
) -> dict[str, list[str]]:
    """The `invoke` runs a cell is timed on: cold, no-op, the bump's update (in a clone of HEAD
    at work/clone: this checkout stays as it is) and the bumped build. Both shapes alike: no
    external layer cache (it would survive the prune), gzip. On the bench's own builder the
    cold build follows a prune of it; without one, nothing is pruned and the cold build runs
    every step with --no-cache (base images and download caches kept)."""
    invoke = str(Path(sys.executable).with_name("invoke"))
    mirror = ["--base-mirror", config.base_mirror] if config.base_mirror else []
    build = [invoke, "build", "--variant", cell.variant, "--platform", cell.platform, "--push"]
    build += ["--build-cache", "", "--compression", COMPRESSION, *mirror]
    build += ["--builder", builder] if builder else []
    here = ["--config", str(config.path)]
    clone = ["--config", str(work / "clone" / config.path.resolve().relative_to(top))]
    update = [invoke, "update", bump, *clone, "--platforms", cell.platform]
    return {
        "cold": [*build, *here, "--out", str(work / "cold"), *([] if builder else ["--no-cache"])],
        "noop": [*build, *here, "--out", str(work / "noop")],
        "update": [*update, "--out", str(work / "upd")],
        "bump": [*build, *clone, "--out", str(work / "bump")],
    }


def floor_argv(uv: str, config: Config, cell: Cell, work: Path) -> list[str]:
    """The floor's install: the cell's lock as the image installs it (hash-checked wheels, no
    resolution; its own `--extra-index-url` line applies, so torch comes from the same index),
    into an empty folder (work/site) with an empty cache (work/uv-cache): every wheel is
    downloaded. No Docker, no bytecode: the least a cold build of these wheels can do."""
    variant = config.variant(cell.variant)
    return [
        *(uv, "pip", "install", "--no-deps", "--require-hashes", "--only-binary", ":all:"),
        *("--target", str(work / "site"), "--cache-dir", str(work / "uv-cache")),
        *("--python-platform", UV_PLATFORMS[cell.platform], "--python-version", variant.python),
        *("-r", str(variant.lock_file(cell.platform))),
    ]


def show_floor(config: Config, cell: Cell, work: Path, repeats: int) -> None:
    """The floor's steps, for a dry run: uv's install, then the in-process compression."""
    log.info(f"floor {cell.variant}/{cell.platform}, {repeats} time(s), each from empty:")
    log.echo_command(floor_argv(find_uv(), config, cell, work), dry_run=True)
    site, how = work / "site", f"{COMPRESSION} -{GZIP_LEVEL}, a core each"
    log.info(f"  then a tar of each distribution in {site}, compressed in-process ({how})")


def plan_single(
    ctx: RunContext, cell: Cell, lock_dir: Path, tag: str, metadata: Path, top: Path, cold: bool
) -> BuildPlan:
    """The old guide's shape: OS packages, a venv, one `pip install -r` of the lock."""
    config, dockerfile = ctx.config, top / SINGLE_LAYER
    base = config.base_for(config.variant(cell.variant))
    packages = "python3.11 python3.11-venv python3.11-dev" if "cuda" in cell.variant else ""
    build = BuildxBuild(
        dockerfile.parent,
        (cell.platform,),
        file=dockerfile,
        builder=ctx.build.builder,  # the builder ours ran on, and the one pruned before it
        no_cache=cold and not ctx.build.builder,  # a shared builder is never pruned: its
        # cold build runs every step instead
        build_contexts={"locks": lock_dir},
        metadata_file=metadata,
        build_args={"BASE_IMAGE": base, "VARIANT": cell.variant, "OS_PACKAGES": packages},
        secrets={"ca_bundle": ctx.build.ca_bundle} if ctx.build.ca_bundle else {},
        output=("type=image", f"name={config.image}:{tag}", "push=true"),
    )
    return BuildPlan(cell, buildx_argv(build), metadata)


def single_builds(ctx: RunContext, cell: Cell, work: Path, top: Path) -> list[BuildPlan]:
    """The single-layer shape: cold, no-op, then the clone's bumped lock."""
    lock_dir = ctx.config.variant(cell.variant).lock_dir
    runs = (lock_dir, lock_dir, work / "clone" / lock_dir.resolve().relative_to(top))
    stem = f"bench-single-{cell_tag(cell, ctx.build).removeprefix(CELL_TAG_PREFIX)}"
    return [
        plan_single(ctx, cell, locks, f"{stem}-{i}", work / f"single-{i}.json", top, i == 0)
        for i, locks in enumerate(runs)
    ]


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


def uncommitted_inputs(config: Config, top: Path) -> list[str]:
    """What a bench would measure that HEAD does not hold (the bump builds from a clone)."""
    inputs = [top / "docker", top / "src", top / "bench", config.path]
    inputs += [p for v in config.variants.values() for p in (v.lock_dir, *v.requirements)]
    return list(git.uncommitted(top, inputs))


def results_path(config: Config, commit: str) -> Path:
    return (
        git.toplevel(config.root) / "bench" / "results" / f"{time.strftime('%Y%m%d')}-{commit[:7]}"
    )


def cold_method(builder: str | None) -> str:
    """How the bench makes a cold build, for its output and results."""
    if builder:
        return f"Cold builds follow a prune of builder {builder}, the bench's own (nothing else)."
    return (
        "Cold builds run every step (--no-cache) on the shared builder, which is never pruned "
        "(base images and download caches kept); the bumps are timed once."
    )


def show_bench(ctx: RunContext, cells: list[Cell], bump: str, repeats: int) -> Path:
    """`invoke bench --dry-run`: each cell's steps in order, every command as it would run
    (the prune as engine.reclaim runs it); the results file a run would write."""
    top = git.toplevel(ctx.config.root)
    dirty = uncommitted_inputs(ctx.config, top)
    if dirty:
        log.warn(f"a run would refuse: bench measures a commit; uncommitted: {', '.join(dirty)}")
    builder = ctx.build.builder
    prune = ["docker", "buildx", "prune", "--all", "--force", f"--builder={builder}"]
    log.info(cold_method(builder))
    log.info("first: refuse when another build runs on this host (read from /proc, and again")
    log.info("  during every timed step: a step another build overlapped is refused)")
    for cell in cells:
        work = Path(tempfile.gettempdir()) / "aibase-bench-XXXXXXXX" / cell.slug
        show_floor(ctx.config, cell, work / "floor", repeats)  # first: nothing built yet
        runs = user_path(ctx.config, cell, bump, work, top, builder)
        clone = ["git", "clone", "--quiet", str(top), str(work / "clone")]
        log.info(f"bench {cell.variant}/{cell.platform}: the bump {bump}, in a clone of HEAD")
        log.echo_command(clone, dry_run=True)
        log.echo_command(runs["update"], dry_run=True)
        singles = single_builds(ctx, cell, work, top)
        for run in range(1, repeats + 1):
            n = 3 if bump_timed(builder, run) else 2  # cold, no-op(, bump)
            first = [prune] if builder else []
            steps = "cold (no CACHED step allowed), no-op"
            steps += ", bump (its group not CACHED)" if n == 3 else ""
            log.info(f"run {run}/{repeats}, ours then the single-layer shape: {steps}")
            ours = [runs["cold"], runs["noop"], runs["bump"]][:n]
            single = [list(p.argv) for p in singles[:n]]
            for argv in (*first, *ours, *first, *single):
                log.echo_command(argv, dry_run=True)
        log.info("then the smoke probe of the first cold image")
        if repeats > 1:
            log.info("and the bytes the second cold image (the unchanged commit) pushed again")
    path = results_path(ctx.config, git.revision(ctx.config.root)).with_suffix(".md")
    log.info(f"a run writes {path} (and .json); this dry run wrote nothing")
    return path


def bump_timed(builder: str | None, run: int) -> bool:
    """Whether run `run` (from 1) times the bump: every run on the bench's own builder (the
    prune before it drops the bumped layers), only the first on a shared one (they stay)."""
    return bool(builder) or run == 1
