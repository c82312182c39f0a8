"""What `./ai bench` runs, planned without running it: the task runs a cell is timed on,
the single-layer shape's builds, and `./ai bench --dry-run`, which prints every command in
order and changes nothing (no prune, no build, no clone, no results file).

May import: build, config, host, log.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from aibase import log
from aibase.build.plan import CELL_TAG_PREFIX, BuildPlan, Cell, cell_tag
from aibase.build.run_context import RunContext
from aibase.config.model import Config
from aibase.host import git
from aibase.host.buildx import BuildxBuild, buildx_argv

SINGLE_LAYER = Path("bench") / "single-layer.Dockerfile"  # in the checkout's root


def user_path(config: Config, cell: Cell, bump: str, work: Path, top: Path) -> dict[str, list[str]]:
    """The `invoke` runs a cell is timed on: cold, no-op, the bump's update (in a clone of HEAD
    at work/clone: this checkout stays as it is) and the bumped build. Both shapes alike: no
    external layer cache (it would survive the prune), gzip."""
    invoke = str(Path(sys.executable).with_name("invoke"))
    mirror = ["--base-mirror", config.base_mirror] if config.base_mirror else []
    build = [invoke, "build", "--variant", cell.variant, "--platform", cell.platform, "--push"]
    build += ["--build-cache", "", "--compression", "gzip", *mirror]
    here = ["--config", str(config.path)]
    clone = ["--config", str(work / "clone" / config.path.resolve().relative_to(top))]
    update = [invoke, "update", bump, *clone, "--platforms", cell.platform]
    return {
        "cold": [*build, *here, "--out", str(work / "cold")],
        "noop": [*build, *here, "--out", str(work / "noop")],
        "update": [*update, "--out", str(work / "upd")],
        "bump": [*build, *clone, "--out", str(work / "bump")],
    }


def plan_single(
    ctx: RunContext, cell: Cell, lock_dir: Path, tag: str, metadata: Path, top: Path
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
        plan_single(ctx, cell, locks, f"{stem}-{i}", work / f"single-{i}.json", top)
        for i, locks in enumerate(runs)
    ]


def uncommitted_inputs(config: Config, top: Path) -> list[str]:
    """What a bench would measure that HEAD does not hold (the bump builds from a clone)."""
    inputs = [top / "docker", top / "src", top / "bench", config.path]
    inputs += [p for v in config.variants.values() for p in (v.lock_dir, *v.requirements)]
    return list(git.uncommitted(top, inputs))


def results_path(config: Config, commit: str) -> Path:
    return (
        git.toplevel(config.root) / "bench" / "results" / f"{time.strftime('%Y%m%d')}-{commit[:7]}"
    )


def show_bench(ctx: RunContext, cells: list[Cell], bump: str) -> Path:
    """`invoke bench --dry-run`: each cell's steps in order, every command as it would run
    (the prune as engine.reclaim runs it); the results file a run would write."""
    top = git.toplevel(ctx.config.root)
    dirty = uncommitted_inputs(ctx.config, top)
    if dirty:
        log.warn(f"a run would refuse: bench measures a commit; uncommitted: {', '.join(dirty)}")
    builder = [f"--builder={ctx.build.builder}"] if ctx.build.builder else []
    prune = ["docker", "buildx", "prune", "--all", "--force", *builder]
    for cell in cells:
        work = Path(tempfile.gettempdir()) / "aibase-bench-XXXXXXXX" / cell.slug
        runs = user_path(ctx.config, cell, bump, work, top)
        clone = ["git", "clone", "--quiet", str(top), str(work / "clone")]
        log.info(f"bench {cell.variant}/{cell.platform}, ours: cold, no-op, bump {bump}")
        for argv in (prune, runs["cold"], runs["noop"], clone, runs["update"], runs["bump"]):
            log.echo_command(argv, dry_run=True)
        log.info("then the smoke probe of the cold image, and the single-layer shape:")
        log.echo_command(prune, dry_run=True)
        for plan in single_builds(ctx, cell, work, top):
            log.echo_command(plan.argv, dry_run=True)
    path = results_path(ctx.config, git.revision(ctx.config.root)).with_suffix(".md")
    log.info(f"a run writes {path} (and .json); this dry run wrote nothing")
    return path
