from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from aibase import probe
from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.host import engine
from aibase.host.probe_report import ProbeReport, parse_probe_report
from aibase.release import smoke

from .conftest import GOOD_PROBE as GOOD
from .conftest import WriteConfig

LOCK = {"torch": "2.4.1", "fastapi": "0.115.0"}


def on_amd64(report: dict[str, Any]) -> dict[str, Any]:
    return report | {"platform": {"machine": "x86_64", "system": "Linux"}}


def check_probe(
    data: dict[str, Any], variant: Any, platform: str, locked: Any, *, gpu_required: bool = False
) -> list[str]:
    """smoke.check_probe over the report as the engine hands it on: parsed."""
    report = parse_probe_report(data, "test")
    return smoke.check_probe(report, variant, platform, locked, gpu_required=gpu_required)


@pytest.fixture
def cfg(write_config: WriteConfig) -> Config:
    return load_config(write_config(), env={})


def test_good_cpu_report_passes(cfg: Config) -> None:
    assert check_probe(GOOD, cfg.variant("cpu"), "linux/arm64", LOCK) == []


def test_every_problem_is_collected(cfg: Config) -> None:
    bad = copy.deepcopy(GOOD)
    bad["python"]["version"] = "3.12.1"
    del bad["packages"]["fastapi"]
    bad["imports"]["torch"]["torch"] = "ImportError: libfoo.so"
    bad["pip_check"] = {"ok": False, "output": "x 1 has requirement y"}
    bad["cuda_libraries"] = ["/usr/local/cuda/lib64/libcudart.so.12"]
    problems = check_probe(on_amd64(bad), cfg.variant("cpu"), "linux/amd64", LOCK)
    assert problems == [
        "python is 3.12.1, the config promises 3.11",
        "locked package fastapi==0.115.0 is not installed",
        "torch: `import torch` fails: ImportError: libfoo.so",
        "pip check fails: x 1 has requirement y",
        "CUDA libraries in a non-CUDA image: /usr/local/cuda/lib64/libcudart.so.12",
    ]


def test_cuda_promise_per_platform(cfg: Config) -> None:
    cuda = cfg.variant("cuda")
    rep = copy.deepcopy(GOOD)
    assert "torch reports CUDA None, the config promises 12.1 on linux/amd64" in check_probe(
        rep, cuda, "linux/amd64", LOCK
    )
    rep["torch"]["cuda"] = "12.1"
    assert check_probe(on_amd64(rep), cuda, "linux/amd64", LOCK) == []
    # arm64: the config promises no CUDA, so a CUDA build there is wrong
    assert any("promises no CUDA" in p for p in check_probe(rep, cuda, "linux/arm64", LOCK))


def test_wrong_locked_version(cfg: Config) -> None:
    rep = copy.deepcopy(GOOD)
    rep["packages"]["fastapi"] = "0.110.0"
    assert check_probe(rep, cfg.variant("cpu"), "linux/arm64", LOCK) == [
        "locked package fastapi is 0.110.0, the lock says 0.115.0"
    ]


def test_gpu_required(cfg: Config) -> None:
    rep = copy.deepcopy(GOOD) | {"torch": {**GOOD["torch"], "cuda": "12.1"}}
    probs = check_probe(on_amd64(rep), cfg.variant("cuda"), "linux/amd64", LOCK, gpu_required=True)
    assert probs == ["a GPU was requested but torch.cuda.is_available() is False"]
    rep["torch"] |= {
        "cuda_available": True,
        "device_count": 1,
        "matmul": {"ok": True, "seconds": 0.01},
    }
    assert (
        check_probe(on_amd64(rep), cfg.variant("cuda"), "linux/amd64", LOCK, gpu_required=True)
        == []
    )


def test_binaries_of_another_platform_are_caught(cfg: Config) -> None:
    """An index entry (and config) saying arm64 over amd64 binaries: the probe tells."""
    problems = check_probe(on_amd64(GOOD), cfg.variant("cpu"), "linux/arm64", LOCK)
    assert problems == [
        "the image's binaries run as x86_64, not linux/arm64: its index entry and config "
        "claim a platform its files are not built for"
    ]


def test_the_engine_runs_the_probe_module_in_the_container() -> None:
    # the engine sends this file's source into the image: a moved module must not lose it
    assert Path(probe.__file__) == engine.PROBE_SOURCE
    assert engine.PROBE_SOURCE.is_file()


def test_check_probe_reads_the_typed_report(cfg: Config) -> None:
    report = parse_probe_report(GOOD, "test")
    assert isinstance(report, ProbeReport)
    assert smoke.check_probe(report, cfg.variant("cpu"), "linux/arm64", LOCK) == []


# One broken promise each: exactly one check names it.
BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "check_machine": ({"platform": {"machine": "x86_64", "system": "Linux"}}, "linux/arm64"),
    "check_python": ({"python": {**GOOD["python"], "prefix": "/usr"}}, "linux/arm64"),
    "check_locked_versions": ({"packages": {"torch": "2.4.1"}}, "linux/arm64"),
    "check_imports": (
        {"imports": {"torch": {"torch": "ImportError: x"}, "fastapi": {}}},
        "linux/arm64",
    ),
    "check_pip": ({"pip_check": {"ok": False, "output": "broken"}}, "linux/arm64"),
    "check_torch_version": ({"torch": {**GOOD["torch"], "version": "2.5.0"}}, "linux/arm64"),
    "check_torch_cuda": ({"torch": {**GOOD["torch"], "cuda": "12.1"}}, "linux/arm64"),
    "check_no_cuda": ({"nvidia_packages": ["nvidia-cublas-cu12"]}, "linux/arm64"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_promise_is_one_check(name: str, cfg: Config) -> None:
    change, platform = BROKEN[name]
    report = parse_probe_report(GOOD | change, "test")
    promise = smoke.Promise(cfg.variant("cpu"), platform, LOCK)
    fired = {c.__name__: c(report, promise) for c in smoke.CHECKS if c(report, promise)}
    assert list(fired) == [name]
    assert len(fired[name]) == 1
    assert smoke.check_probe(report, cfg.variant("cpu"), platform, LOCK) == fired[name]


def test_the_gpu_promise_is_checked_only_when_a_gpu_was_handed_in(cfg: Config) -> None:
    report = parse_probe_report(on_amd64(GOOD), "test")
    cuda = cfg.variant("cuda")
    assert smoke.check_gpu(report, smoke.Promise(cuda, "linux/amd64", LOCK)) == []
    assert smoke.check_gpu(report, smoke.Promise(cuda, "linux/amd64", LOCK, True)) == [
        "a GPU was requested but torch.cuda.is_available() is False"
    ]
    assert smoke.check_gpu in smoke.CHECKS
