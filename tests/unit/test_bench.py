"""invoke bench's pure parts: which cells, the ratios, the table (the runs themselves are
real builds: `invoke bench`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import cast

import pytest

from aibase.build.plan import Cell
from aibase.build.run_context import RunContext
from aibase.config.loader import load_config
from aibase.errors import BenchRefused, ConfigError
from aibase.host import activity, engine, engine_build, proc
from aibase.host.activity import Entry
from aibase.tools import bench
from aibase.tools.bench_plan import select_cells
from aibase.tools.bench_report import CellBench, Layer, Shape, foreign_ratios, render
from aibase.tools.imagesize import ImageSize

from .conftest import WriteConfig

OURS = Shape(
    100.0,
    1.0,
    8.0,
    3_000_000_000,
    30_000_000,
    (Layer("sha256:a", 2_000_000_000, "COPY /layer/ /opt/venv/ # buildkit", "torch"),),
    ImageSize(3_000_000_000, 6_600_000_000, 6_000_000_000, 0),
    90.0,
)
SINGLE = Shape(
    150.0,
    1.0,
    149.0,
    3_100_000_000,
    2_900_000_000,
    (Layer("sha256:b", 1, "RUN"),),
    ImageSize(3_100_000_000, 7_000_000_000, 6_000_000_000, 0),
    0.0,
)


def test_ratios_are_ours_against_the_single_layer_shape() -> None:
    r = CellBench("cuda/linux/amd64", "structlog==24.1.0", OURS, SINGLE).ratios()
    assert r["bump_time_of_cold"] == pytest.approx(0.08)
    assert r["bump_bytes_of_image"] == pytest.approx(0.01)
    assert r["cold_vs_single_layer"] == pytest.approx(100 / 150)
    assert r["single_bump_bytes_of_image"] == pytest.approx(2.9 / 3.1)
    assert r["size_of_payload"] == pytest.approx(1.1)


def test_the_table_names_each_shape_and_the_largest_layers() -> None:
    text = render(
        [CellBench("cuda/linux/amd64", "structlog==24.1.0", OURS, SINGLE)],
        "abc1234def",
        {"cuda: cuda/linux/arm64": 1.5},
    )
    assert (
        "| cuda/linux/amd64 | ours | 100.0 | 1.0 | 8.0 | 8% | 30.0 MB (1.0%) | 3000.0 MB "
        "| 6600.0 MB | 6000.0 MB | 1.100 | 90.0 |" in text
    )
    assert "| cuda/linux/amd64 | single layer | 150.0 |" in text and "| 1.167 | - |" in text
    assert "cold build 0.67x the single-layer shape's" in text
    assert "2000.0 MB: torch" in text  # what the layer holds, not its COPY step
    assert "foreign-platform cold cell cuda: cuda/linux/arm64: 1.50x the native one" in text


def test_cells_are_checked_against_the_config(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(), env={})
    assert select_cells(cfg, "cuda/linux/arm64") == [Cell("cuda", "linux/arm64")]
    assert len(select_cells(cfg, "")) == 4
    with pytest.raises(ConfigError, match="no platform"):
        select_cells(cfg, "cuda/linux/s390x")


def test_foreign_cells_are_measured_against_the_native_one() -> None:
    """arm64 built on an amd64 host is the emulated one, even when it is the faster build
    (its torch wheel is a tenth of the CUDA one): never the other way round."""
    from dataclasses import replace

    results = [
        CellBench("cuda/linux/amd64", "x==1", OURS, SINGLE),
        CellBench("cuda/linux/arm64", "x==1", replace(OURS, cold_s=50.0), SINGLE),
        CellBench("fixture/linux/arm64", "x==1", OURS, SINGLE),  # no native cell: no ratio
    ]
    assert foreign_ratios(results, "linux/amd64") == {
        "cuda/linux/arm64 (native cuda/linux/amd64)": 0.5
    }


def _runs(output: str) -> Callable[..., proc.Result]:
    def run(argv: Sequence[str], **_: object) -> proc.Result:
        return proc.Result(tuple(argv), 0, output, "")

    return run


CACHED_RUN = """\
#5 [installer 1/6] FROM localhost:5000/mirror/library/python:3.11-slim
#5 CACHED
#12 [group-numpy 2/2] RUN install-group /tmp/requirements.txt x86_64-manylinux_2_28 3.11
#12 CACHED
"""


def test_a_cold_build_that_took_a_step_from_the_cache_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's arm64 'cold' 6.6 s: the bench now says it was warm instead of timing it."""
    monkeypatch.setattr(activity, "process_table", lambda *_args, **_kwargs: [])
    monkeypatch.setattr(proc, "run", _runs(CACHED_RUN))
    cached = r"took 1 step\(s\) it must build from the cache, e.g. \[group-numpy"
    with pytest.raises(BenchRefused, match=cached):
        bench.timed_step(["invoke", "build"], "ours cold", fresh="")
    assert bench.timed_step(["invoke", "build"], "ours noop")[1] == CACHED_RUN  # a no-op may
    # a bump takes the groups it did not change from the cache, never its own group
    assert bench.timed_step(["invoke", "build"], "ours bump", fresh="[group-bin-02 ")[0] >= 0
    with pytest.raises(BenchRefused, match=cached):
        bench.timed_step(["invoke", "build"], "ours bump", fresh="[group-numpy ")


def test_a_step_another_build_overlapped_is_refused_and_so_is_a_busy_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = Entry(4242, 1, ("docker", "buildx", "build", "--platform", "linux/arm64", "."))
    monkeypatch.setattr(activity, "process_table", lambda *_args, **_kwargs: [other])
    monkeypatch.setattr(proc, "run", _runs(""))
    with pytest.raises(BenchRefused, match="ran beside another build: pid 4242: docker buildx"):
        bench.timed_step(["invoke", "build"], "ours bump")
    with pytest.raises(BenchRefused, match="another build is running on this host: pid 4242"):
        bench.refuse_if_busy()
    monkeypatch.setattr(activity, "process_table", lambda *_args, **_kwargs: [])
    bench.refuse_if_busy()


def test_the_bench_prunes_its_own_builder_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    pruned: list[str | None] = []

    def reclaim(_images: Sequence[str], builder: str | None) -> list[proc.Result]:
        pruned.append(builder)
        return [proc.Result((), 0, "", "")]

    monkeypatch.setattr(engine, "reclaim", reclaim)
    bench.prune_own(None)  # the shared builder: cold builds run --no-cache instead
    bench.prune_own("aibase-bench")
    assert pruned == ["aibase-bench"]
    monkeypatch.setattr(engine_build, "builder_driver", lambda *_args: "docker")
    with pytest.raises(BenchRefused, match="uses the docker driver: its cache is the engine's"):
        bench.check_builder("default")
    bench.check_builder(None)


def test_the_table_shows_median_and_minimum_and_what_a_cold_rebuild_pushed() -> None:
    from dataclasses import replace

    ours = replace(
        OURS,
        cold_runs=(98.0, 102.0),
        rebuild_pushed_bytes=130_000_000,
        rebuild_python_pushed_bytes=0,
    )
    cell = CellBench("fixture/linux/amd64", "structlog==24.1.0", ours, SINGLE)
    text = render([cell], "abc1234", {}, "Cold builds run every step (--no-cache).")
    assert "| fixture/linux/amd64 | ours | 100.0 (min 98.0, n=2) | 1.0 | 8.0 |" in text
    assert "Times: median (min, n runs). Cold builds run every step (--no-cache)." in text
    assert (
        "a cold rebuild of the unchanged commit pushed 130.0 MB of 3000.0 MB; of its Python "
        "layers 0.0 MB" in text
    )
    once = render([CellBench("fixture/linux/amd64", "x==1", OURS, SINGLE)], "abc1234", {})
    assert "not measured (--repeats 1)" in once


def test_a_bump_is_measured_against_the_no_op_build_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a --no-cache cold build the shared cache holds two versions of the OS layers
    (apt's are not reproducible): the no-op and the bump take the same one, the cold image
    the other. The bump pushes its group and the lock, not the OS again (the bench at
    bf4061b said 131 MB, 52.7 %, for a one-pin bump of the fixture)."""
    os_new, os_old = (
        Layer("sha256:os-new", 126_000_000, "RUN apt-get"),
        Layer("sha256:os-old", 126_000_000, "RUN apt-get"),
    )
    group, report = (
        Layer("sha256:g", 500_000, "COPY /layer/ / # buildkit"),
        Layer("sha256:r", 8_000, "COPY /report/ / # buildkit"),
    )
    bumped = (
        os_old,
        Layer("sha256:g2", 510_000, "COPY /layer/ / # buildkit"),
        Layer("sha256:r2", 8_100, "COPY /report/ / # buildkit"),
    )
    images = {"cold": (os_new, group, report), "noop": (os_old, group, report), "bump": bumped}
    monkeypatch.setattr(bench, "layers_of", lambda _ctx, digest, *_args, **_kwargs: images[digest])
    monkeypatch.setattr(bench, "measure", lambda *_args: ImageSize(1, 1, 1, 0))
    ctx = cast(
        RunContext,
        SimpleNamespace(
            config=SimpleNamespace(repository="r"),
            registry=SimpleNamespace(get_blob=lambda *_args, **_kwargs: b""),
        ),
    )
    seconds = {"cold": [50.0, 52.0], "noop": [2.0, 2.2], "bump": [3.0]}
    shape = bench._shape(ctx, "linux/amd64", ("cold", "noop", "bump"), seconds, 0.0)
    assert shape.bump_pushed_bytes == 518_100
    assert shape.cold_s == 51.0 and shape.cold_runs == (50.0, 52.0) and shape.bump_s == 3.0
