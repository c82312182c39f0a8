"""The probe's report is parsed once, into typed records: what probe.py prints is what the
host reads, a report of another version or with a field missing or mistyped is refused with
the field's path, and the engine hands on the record, not a dict."""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import pytest

from aibase import probe
from aibase.errors import EngineError, ProbeReportError
from aibase.host import engine
from aibase.host.probe_report import (
    Matmul,
    ProbeReport,
    TorchFacts,
    parse_probe_output,
    parse_probe_report,
)

from .conftest import GOOD_PROBE as GOOD


def test_what_the_probe_prints_is_what_the_host_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """probe.main's own output, here (pip check, a process, stands in): the two sides agree."""
    monkeypatch.setattr(probe, "pip_check", lambda: {"ok": True, "output": ""})
    assert probe.main(["--skip-imports", "--no-matmul"]) == 0
    report = parse_probe_output(capsys.readouterr().out, "this interpreter")
    assert report.version == probe.REPORT_VERSION == 1
    assert report.python.version.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")
    assert report.python.prefix == sys.prefix
    assert report.packages["pytest"] == pytest.__version__
    assert report.pip_check.ok and report.imports == {}


def test_a_gpu_report_parses_into_its_records() -> None:
    data = copy.deepcopy(GOOD)
    data["torch"] |= {"cuda": "12.1", "cuda_available": True, "device_count": 1}
    data["torch"] |= {"devices": ["NVIDIA H200"], "cudnn": 90100}
    data["torch"]["matmul"] = {"ok": True, "seconds": 1}  # JSON may write 1.0 as 1
    report = parse_probe_report(data, "test")
    assert isinstance(report, ProbeReport)
    assert report.torch == TorchFacts(
        "2.4.1", "12.1", False, True, 1, ("NVIDIA H200",), 90100, Matmul(True, 1.0)
    )
    assert report.python.minor == "3.11"
    assert report.platform.machine == "aarch64"


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_a_report_of_another_version_is_refused(version: object) -> None:
    data = copy.deepcopy(GOOD)
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    with pytest.raises(ProbeReportError) as info:
        parse_probe_report(data, "img@sha256:x (linux/amd64)")
    assert info.value.message == (
        f"the probe in img@sha256:x (linux/amd64) printed a report of version {version!r}; "
        "this ai-base reads version 1"
    )
    assert info.value.exit_code == 17 and isinstance(info.value, EngineError)


def _with(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    table = data
    for part in parents:
        table = table[part]
    if value is KeyError:
        del table[last]
    else:
        table[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("python.version", KeyError, "python.version should be a str, and is missing"),
        ("python", "3.11", 'python should be an object, and is "3.11"'),
        ("torch.device_count", True, "torch.device_count should be a number, and is true"),
        ("torch.devices", "gpu", 'torch.devices should be a list, and is "gpu"'),
        ("packages.fastapi", 115, "packages.fastapi should be a str, and is 115"),
        ("imports.torch.torch", 1, "imports.torch.torch should be a str, and is 1"),
        ("pip_check.ok", "yes", 'pip_check.ok should be a bool, and is "yes"'),
        ("cuda_libraries", None, "cuda_libraries should be a list, and is null"),
    ],
)
def test_a_malformed_report_names_the_field(path: str, value: object, says: str) -> None:
    with pytest.raises(ProbeReportError) as info:
        parse_probe_report(_with(path, value), "img (linux/arm64)")
    assert (
        info.value.message == f"the probe in img (linux/arm64) printed a malformed report: {says}"
    )


def test_output_without_a_report_is_refused() -> None:
    with pytest.raises(ProbeReportError) as info:
        parse_probe_output("Segmentation fault\n", "img (linux/arm64)")
    assert "the probe in img (linux/arm64) printed no JSON report" in info.value.message


class DoneContainer:
    """A container whose probe finished and printed `out`."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.removed = False

    def wait(self, **_kwargs: object) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self, stdout: bool, **_kwargs: object) -> bytes:
        return self.out.encode() if stdout else b""

    def remove(self, force: bool) -> None:
        self.removed = force


class Sdk:
    def __init__(self, container: DoneContainer) -> None:
        self.images = self.containers = self
        self.container = container

    def pull(self, *_args: object, **_kwargs: object) -> None:
        return None

    def run(self, *_args: object, **_kwargs: object) -> DoneContainer:
        return self.container


def test_the_engine_hands_on_the_parsed_record(monkeypatch: pytest.MonkeyPatch) -> None:
    container = DoneContainer("pip noise\n" + json.dumps(GOOD) + "\n")
    monkeypatch.setattr(engine, "_sdk", lambda: Sdk(container))
    run = engine.run_probe("img@sha256:x", "linux/arm64")
    assert run.report == parse_probe_report(GOOD, "test")
    assert run.report.packages["fastapi"] == "0.115.0" and container.removed

    monkeypatch.setattr(
        engine, "_sdk", lambda: Sdk(DoneContainer(json.dumps(GOOD | {"version": 2})))
    )
    with pytest.raises(ProbeReportError, match=r"img@sha256:x \(linux/arm64\) printed a report of"):
        engine.run_probe("img@sha256:x", "linux/arm64")
