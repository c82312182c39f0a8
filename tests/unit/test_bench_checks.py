"""What keeps the bench honest (tools/bench_checks.py): a cold build that took a step from the
cache, another build on the engine, and repeated timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibase.host.activity import Entry, process_table
from aibase.tools.bench_checks import Timing, cached_steps, foreign_builds, is_build, new_bytes

# A fixture build's plain progress (shortened), as `invoke build` streams it: the base is
# in the engine's store (CACHED even after a prune), one group's install came from the cache.
PROGRESS = """\
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 7.12kB done
#1 DONE 0.0s
#5 [installer 1/6] FROM localhost:5000/mirror/library/python:3.11-slim@sha256:4d2f
#5 resolve localhost:5000/mirror/library/python:3.11-slim@sha256:4d2f done
#5 CACHED
#9 [os 2/4] RUN --mount=type=cache,id=apt-cache-amd64,target=/var/cache/apt apt-get update
#9 0.512 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
#9 DONE 41.2s
#12 [group-numpy 2/2] RUN --mount=type=cache,id=uv-cache,target=/root/.cache/uv install-group
#12 CACHED
#14 [image 2/12] COPY --link --from=group-numpy /layer/ /
#14 CACHED
#15 [group-bin-03 2/2] RUN --mount=type=cache,id=uv-cache,target=/root/.cache/uv install-group
#15 0.811 Installed 3 packages in 12ms
#15 DONE 2.3s
"""


def test_a_cold_build_with_a_step_from_the_cache_is_caught_by_name() -> None:
    assert cached_steps(PROGRESS) == [
        "[group-numpy 2/2] RUN --mount=type=cache,id=uv-cache,target=/root/.cache/uv install-group",
        "[image 2/12] COPY --link --from=group-numpy /layer/ /",
    ]


def test_a_bump_must_build_its_own_group_and_may_take_the_others_from_the_cache() -> None:
    assert cached_steps(PROGRESS, "[group-bin-03 ") == []  # built: a bump of bin-03 passes
    assert cached_steps(PROGRESS, "[group-numpy ") == [
        "[group-numpy 2/2] RUN --mount=type=cache,id=uv-cache,target=/root/.cache/uv install-group"
    ]


def test_a_cold_build_that_built_every_step_passes_its_base_pulled_or_not() -> None:
    built = "\n".join(ln for ln in PROGRESS.splitlines() if ln not in ("#12 CACHED", "#14 CACHED"))
    assert cached_steps(built) == []
    assert cached_steps("") == []


@pytest.mark.parametrize(
    "argv",
    [
        ("docker", "buildx", "build", "--platform", "linux/amd64", "."),
        ("/usr/libexec/docker/cli-plugins/docker-buildx", "buildx", "build", "."),
        ("docker", "build", "-t", "x", "."),
        ("docker", "buildx", "bake"),
        ("docker", "builder", "build", "."),
        ("docker", "compose", "build"),
        ("buildctl", "--addr", "tcp://x", "build", "--frontend", "dockerfile.v0"),
        ("buildah", "bud", "-t", "x", "."),
        ("podman", "build", "."),
    ],
)
def test_these_make_the_engine_build(argv: tuple[str, ...]) -> None:
    assert is_build(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ("docker", "buildx", "ls"),
        ("docker", "buildx", "prune", "--all", "--force"),
        ("docker", "builder", "prune"),
        ("docker", "run", "--rm", "img", "build"),  # a container whose command says build
        ("docker", "ps"),
        ("buildah", "images"),
        ("python", "-m", "invoke", "build"),  # its docker child is the build
        (),
    ],
)
def test_these_do_not(argv: tuple[str, ...]) -> None:
    assert not is_build(argv)


def test_only_builds_outside_the_benchs_own_process_tree_count() -> None:
    table = [
        Entry(100, 1, ("python", "-m", "aibase", "bench")),  # the bench
        Entry(101, 100, ("python", "-m", "invoke", "build")),  # its step
        Entry(102, 101, ("docker", "buildx", "build", ".")),  # the step's build
        Entry(103, 102, ("docker-buildx", "buildx", "build", ".")),
        Entry(200, 1, ("flock", "/work/engine.lock", "pytest")),  # someone else's
        Entry(201, 200, ("docker", "buildx", "build", "--platform", "linux/arm64", ".")),
        Entry(300, 1, ("docker", "buildx", "ls")),
    ]
    assert foreign_builds(table, own=100) == [
        "pid 201: docker buildx build --platform linux/arm64 ."
    ]
    assert foreign_builds(table[:4], own=100) == []
    # a loop in the parents (a pid reused while read) ends the walk
    assert foreign_builds([Entry(5, 6, ("docker", "build", ".")), Entry(6, 5, ("sh",))], 1)


def test_the_process_table_is_read_from_proc(tmp_path: Path) -> None:
    """Kernel threads (no command line) and processes gone while read are left out; a
    command name with spaces and parentheses does not shift the parent's field."""
    for pid, stat, cmdline in (
        ("7", "7 (my (odd) name) S 3 7 7 0", b"docker\0buildx\0build\0.\0"),
        ("8", "8 (kthreadd) S 0 0 0 0", b""),
    ):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(stat)
        (tmp_path / pid / "cmdline").write_bytes(cmdline)
    (tmp_path / "9").mkdir()  # ended: nothing to read
    (tmp_path / "self").mkdir()
    assert process_table(tmp_path) == [Entry(7, 3, ("docker", "buildx", "build", "."))]


def test_timings_report_the_median_and_the_minimum() -> None:
    assert Timing((12.0, 10.0, 30.0)).median == 12.0
    assert Timing((12.0, 10.0)).median == 11.0
    assert Timing((12.0, 10.0)).cell() == "11.0 (min 10.0, n=2)"
    assert Timing((12.04,)).cell() == "12.0"


def test_new_bytes_are_the_layers_the_first_image_lacks() -> None:
    assert new_bytes({"a": 5, "b": 7}, {"a": 5, "c": 11}) == 11
    assert new_bytes({"a": 5}, {"a": 5}) == 0
