"""invoke bench's pure parts: which cells, the ratios, the table (the runs themselves are
real builds: `invoke bench`)."""

from __future__ import annotations

import pytest

from aibase.build.plan import Cell
from aibase.config.loader import load_config
from aibase.errors import ConfigError
from aibase.tools.bench import CellBench, Layer, Shape, foreign_ratios, render, select_cells
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
