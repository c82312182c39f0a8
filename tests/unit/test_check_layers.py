"""docker/check-layers.py, the build's check that no two distributions write one file
differently (run in the image's layers-check stage; here on directories shaped like it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import REPO

SITE = "lib/python3.11/site-packages"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_layers", REPO / "docker" / "check-layers.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _install(root: Path, group: str, dist: str, files: dict[str, str]) -> None:
    """A distribution as uv leaves it in a group's /layer: its files and a RECORD."""
    site = root / group / SITE
    rows = []
    for rel, content in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(content)
        rows.append(f"{rel},sha256={content},{len(content)}")
    info = site / f"{dist}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    rows.append(f"{dist}.dist-info/RECORD,,")
    rows.append(f"../../../bin/{dist.split('-')[0]},sha256=script-{dist},10")  # a console script
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def test_identical_copies_pass_and_each_layer_is_described(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(tmp_path, "nvidia-cublas-cu12", "nvidia_cublas_cu12-12.1", {"nvidia/__init__.py": "e"})
    _install(tmp_path, "nvidia-cudnn-cu12", "nvidia_cudnn_cu12-9.1", {"nvidia/__init__.py": "e"})
    assert _script().main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "nvidia-cudnn-cu12: 2 files" in out and "nvidia_cudnn_cu12-9.1" in out


@pytest.mark.parametrize("same_group", [False, True])
def test_one_file_written_differently_by_two_distributions_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], same_group: bool
) -> None:
    _install(tmp_path, "bin-01", "jwt-1.0", {"jwt/__init__.py": "a"})
    _install(tmp_path, "bin-01" if same_group else "bin-07", "pyjwt-2.9", {"jwt/__init__.py": "b"})
    assert _script().main(tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{SITE}/jwt/__init__.py: bin-01/jwt-1.0 vs " in err
    assert "drop or replace one of the distributions" in err


def test_console_scripts_are_compared_where_they_land(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RECORD names scripts relative to site-packages (../../../bin/x): same place, same check."""
    _install(tmp_path, "bin-01", "tool-1.0", {})
    _install(tmp_path, "bin-02", "tool-2.0", {})  # both write bin/tool, differently
    assert _script().main(tmp_path) == 1
    assert "bin/tool: bin-01/tool-1.0 vs bin-02/tool-2.0" in capsys.readouterr().err


def test_an_unchanged_group_is_read_from_the_cache_a_changed_one_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a bump only the bumped group is walked: the others' readings are kept under
    their RECORDs' digest. A file added behind RECORD's back shows that: counted only when
    its group is walked."""
    groups, cache = tmp_path / "groups", tmp_path / "cache"
    cache.mkdir()
    _install(groups, "numpy", "numpy-1.26.4", {"numpy/__init__.py": "n"})
    _install(groups, "bin-03", "structlog-24.4.0", {"structlog/__init__.py": "s"})
    assert _script().main(groups, cache) == 0
    first = capsys.readouterr().out
    assert "numpy: 2 files" in first and "bin-03: 2 files" in first
    assert len(list(cache.glob("*.json"))) == 2
    for group in ("numpy", "bin-03"):  # a .pyc, say: not in RECORD
        (groups / group / SITE / "extra.pyc").write_text("x")
    _install(groups, "bin-03", "structlog-24.4.0", {"structlog/__init__.py": "bumped"})
    assert _script().main(groups, cache) == 0
    second = capsys.readouterr().out
    assert "numpy: 2 files" in second  # from the cache: not walked
    assert "bin-03: 3 files" in second  # its RECORD changed: walked again
    assert len(list(cache.glob("*.json"))) == 3
    assert not list(cache.glob("*.tmp"))
    # a clash with a cached group is still found
    _install(groups, "bin-07", "other-1.0", {"numpy/__init__.py": "different"})
    assert _script().main(groups, cache) == 1
    assert "numpy/__init__.py: bin-07/other-1.0 vs numpy/numpy-1.26.4" in capsys.readouterr().err
