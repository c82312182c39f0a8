"""The bench's floor (issue 18): what it runs, how it compresses, and the cold build judged
against it in the bench's JSON, Markdown and log (the real download: tests/integration/
test_bench_floor.py)."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from aibase.build.plan import Cell
from aibase.config.loader import load_config
from aibase.errors import BenchRefused, BuildError, LockError
from aibase.host import activity, proc
from aibase.host.activity import Entry
from aibase.tools import bench_floor
from aibase.tools.bench_floor import compress_tree, measure_floor, parts_of, uv_error
from aibase.tools.bench_plan import floor_argv, show_floor
from aibase.tools.bench_report import CellBench, Floor, render

from .conftest import WriteConfig
from .test_bench import OURS, SINGLE

FLOOR = Floor(
    (50.0, 54.0),
    (20.0, 20.0),
    6_000_000_000,
    2_500_000_000,
    "gzip -6, 4 streams at a time",
    "0.13.9",
)


def test_the_floor_is_the_median_of_its_runs_and_the_cold_build_is_judged_against_it() -> None:
    assert FLOOR.seconds == 72.0  # runs of 70 and 74 s
    met = CellBench("cuda/linux/amd64", "x==1", replace(OURS, cold_s=93.6), SINGLE, FLOOR)
    assert met.ratios()["cold_of_floor"] == pytest.approx(1.3)
    assert met.floor_goal_met() is True
    missed = CellBench("cuda/linux/amd64", "x==1", replace(OURS, cold_s=94.0), SINGLE, FLOOR)
    assert missed.floor_goal_met() is False
    assert missed.floor_text() == "cold build 1.31x its floor of 72.0 s (goal <= 1.3x: missed)"
    none = CellBench("cuda/linux/amd64", "x==1", OURS, SINGLE)
    assert "cold_of_floor" not in none.ratios() and none.floor_goal_met() is None


def test_the_table_shows_each_floor_beside_the_cold_build() -> None:
    cells = [CellBench("cuda/linux/amd64", "structlog==24.1.0", OURS, SINGLE, FLOOR)]
    text = render(cells, "abc1234", {})
    assert (
        "| cuda/linux/amd64 | 72.0 (min 70.0, n=2) | 52.0 (min 50.0, n=2) | 20.0 (min 20.0, n=2) "
        "| 6000.0 MB | 2500.0 MB | 100.0 | 1.39x | missed |" in text
    )
    assert "| cold/floor | goal <= 1.3x |" in text
    assert "uv 0.13.9 downloads and unpacks" in text
    assert "a tar of each distribution's files is compressed on its own (gzip -6, 4 str" in text
    assert "  - cold build 1.39x its floor of 72.0 s (goal <= 1.3x: missed)" in text


def test_the_floor_installs_the_lock_as_it_stands_into_an_empty_folder(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    """The lock's own `--extra-index-url` line (cpu/amd64: the PyTorch CPU index) is what
    uv reads: the floor adds no index of its own, and no cache but an empty one."""
    cfg = load_config(write_config(), env={})
    argv = floor_argv("uv", cfg, Cell("cpu", "linux/amd64"), tmp_path / "w")
    assert argv[:5] == ["uv", "pip", "install", "--no-deps", "--require-hashes"]
    assert argv[argv.index("--target") + 1] == str(tmp_path / "w" / "site")
    assert argv[argv.index("--cache-dir") + 1] == str(tmp_path / "w" / "uv-cache")
    assert argv[argv.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    assert argv[argv.index("--python-version") + 1] == "3.11"
    assert argv[-2:] == ["-r", str(cfg.variant("cpu").lock_file("linux/amd64"))]
    assert not [a for a in argv if "index" in a]
    arm = floor_argv("uv", cfg, Cell("cuda", "linux/arm64"), tmp_path / "w")
    assert arm[arm.index("--python-platform") + 1] == "aarch64-manylinux_2_28"


def test_the_dry_run_shows_the_floors_command(
    write_config: WriteConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("aibase.tools.bench_plan.find_uv", lambda: "/x/uv")
    cfg = load_config(write_config(), env={})
    show_floor(cfg, Cell("cuda", "linux/amd64"), tmp_path / "floor", 2)
    err = capsys.readouterr().err
    assert "[dry-run] $ /x/uv pip install --no-deps --require-hashes" in err
    assert "floor cuda/linux/amd64, 2 time(s)" in err
    site = tmp_path / "floor" / "site"
    assert f"then a tar of each distribution in {site}, compressed in-process (gzip -6, a" in err


def _site(root: Path) -> Path:
    """Two distributions as uv --target leaves them, and a file no RECORD names."""
    site = root / "site"
    for name, files in (("alpha", {"a.py": "x = 1\n" * 50_000}), ("beta", {"b.bin": "b" * 9})):
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (site / name).mkdir()
        for file, text in files.items():
            (site / name / file).write_text(text)
        rows = [f"{name}/{f},sha256=x,1" for f in files] + [f"{info.name}/RECORD,,"]
        (info / "RECORD").write_text("\n".join(rows) + "\n")
    (site / ".lock").write_text("")
    return site


def test_the_floor_compresses_each_distribution_on_its_own_as_gzip_level_6(
    tmp_path: Path,
) -> None:
    """As BuildKit writes gzip layers: Go's compress/gzip at its default level, 6, each layer
    its own stream, compressed side by side; no layer is finer than a distribution (one
    stream for all would overstate the floor)."""
    site = _site(tmp_path)
    parts = parts_of(site)
    alpha = [site / "alpha" / "a.py", site / "alpha-1.0.dist-info" / "RECORD"]
    assert parts == [
        alpha,
        [site / "beta" / "b.bin", site / "beta-1.0.dist-info" / "RECORD"],
        [site / ".lock"],
    ]
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w|", format=tarfile.PAX_FORMAT) as out:
        for path in alpha:
            out.add(path, arcname=str(path.relative_to(site)), recursive=False)
    both = compress_tree(site, streams=2)
    assert both == compress_tree(site, streams=1)
    (site / ".lock").unlink()
    shutil.rmtree(site / "beta")
    shutil.rmtree(site / "beta-1.0.dist-info")
    unpacked, compressed = compress_tree(site, streams=2)  # alpha alone: one stream
    assert unpacked == len(tar.getvalue())
    assert compressed == len(gzip.compress(tar.getvalue(), compresslevel=6, mtime=0))
    assert compressed != len(gzip.compress(tar.getvalue(), compresslevel=1, mtime=0))
    assert both[0] > unpacked and both[1] > compressed


def test_uvs_innermost_cause_names_the_failure() -> None:
    output = (
        "error: Failed to fetch: `https://pypi.org/simple/numpy/`\n"
        "  Caused by: Request failed after 3 retries\n"
        "  Caused by: error sending request for url (https://pypi.org/simple/numpy/)\n"
    )
    assert uv_error(output) == ": error sending request for url (https://pypi.org/simple/numpy/)"
    assert uv_error("nothing useful") == ""


def _fake_uv(
    monkeypatch: pytest.MonkeyPatch, ok: bool = True, table: Sequence[Entry] = ()
) -> list[list[str]]:
    """uv as a stand-in that writes one file where --target says; the argv of each run."""
    ran: list[list[str]] = []

    def run(argv: Sequence[str], **_: object) -> proc.Result:
        ran.append(list(argv))
        if argv[1:] == ["--version"]:
            return proc.Result(tuple(argv), 0, "uv 0.13.9 (x86_64-unknown-linux-gnu)\n", "")
        site = Path(argv[argv.index("--target") + 1])
        site.mkdir(parents=True)
        (site / "m.py").write_text("y = 2\n" * 1000)
        err = "" if ok else "error: Failed to fetch\n  Caused by: dns error\n"
        return proc.Result(tuple(argv), 0 if ok else 2, "", err)

    monkeypatch.setattr(bench_floor, "find_uv", lambda: "uv")
    monkeypatch.setattr(proc, "run", run)
    monkeypatch.setattr(activity, "process_table", lambda *_args, **_kwargs: list(table))
    return ran


def test_the_floor_runs_each_repeat_from_empty_and_leaves_nothing(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(write_config(), env={})
    cell = Cell("cuda", "linux/amd64")
    with pytest.raises(LockError, match="no lock"):
        measure_floor(cfg, cell, tmp_path / "floor", 2)
    cfg.variant("cuda").lock_file(cell.platform).parent.mkdir(parents=True)
    cfg.variant("cuda").lock_file(cell.platform).write_text("# a lock\n")
    ran = _fake_uv(monkeypatch)  # mkdir of site fails if a run did not start from empty
    floor = measure_floor(cfg, cell, tmp_path / "floor", 2)
    assert [a[1] for a in ran] == ["--version", "pip", "pip"]
    assert len(floor.install_runs) == len(floor.compress_runs) == 2
    assert floor.uv == "0.13.9" and floor.compression.startswith("gzip -6, ")
    assert floor.unpacked_bytes > floor.compressed_bytes > 0
    assert not (tmp_path / "floor").exists()


def test_a_floor_that_failed_or_ran_beside_a_build_is_not_reported(
    write_config: WriteConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = load_config(write_config(), env={})
    cell = Cell("cuda", "linux/amd64")
    lock = cfg.variant("cuda").lock_file(cell.platform)
    lock.parent.mkdir(parents=True)
    lock.write_text("# a lock\n")
    _fake_uv(monkeypatch, ok=False)
    with pytest.raises(BuildError, match="uv could not install the lock's wheels: dns error"):
        measure_floor(cfg, cell, tmp_path / "floor", 1)
    other = Entry(4242, 1, ("docker", "buildx", "build", "."))
    _fake_uv(monkeypatch, table=[other])
    with pytest.raises(BenchRefused, match="ran beside another build: pid 4242"):
        measure_floor(cfg, cell, tmp_path / "floor", 1)
    # --floor-only says so instead: its figure reads high, and it is not the bench's
    assert measure_floor(cfg, cell, tmp_path / "floor", 1, strict=False).unpacked_bytes > 0
    assert "ran beside another build: pid 4242" in capsys.readouterr().err


def test_a_floor_that_rounds_to_nothing_still_gives_a_ratio() -> None:
    """A tiny lock on a fast disk: both runs round to 0.0 s. The report divides by the
    floor; without the 0.1 s minimum the whole bench run ended in ZeroDivisionError there."""
    tiny = replace(FLOOR, install_runs=(0.0, 0.0), compress_runs=(0.0, 0.0))
    bench = CellBench("fixture/linux/amd64", "x==1", replace(OURS, cold_s=0.1), SINGLE, tiny)
    assert bench.ratios()["cold_of_floor"] == 1.0
