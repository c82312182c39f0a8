"""The probe's report, typed: what `probe.py` prints inside an image, parsed once, here, into
frozen records that smoke, audit and describe read (no `report["torch"]["cuda"]` anywhere).

The report carries its version (probe.REPORT_VERSION); one of another version, or one that
lacks a field or holds the wrong type in it, is refused with the field's path.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Union, get_args, get_origin, get_type_hints

from aibase import probe
from aibase.errors import ProbeReportError


@dataclass(frozen=True)
class PythonFacts:
    version: str  # e.g. 3.11.2
    executable: str
    prefix: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class PlatformFacts:
    machine: str  # platform.machine(): x86_64, aarch64...
    system: str


@dataclass(frozen=True)
class Matmul:
    ok: bool
    seconds: float


@dataclass(frozen=True)
class TorchFacts:
    version: str  # with its local label: 2.4.1+cpu
    cuda: str | None  # the CUDA it was built with
    cuda_compiled: bool
    cuda_available: bool
    device_count: int
    devices: tuple[str, ...]
    cudnn: int | None
    matmul: Matmul | None  # only run with a GPU


@dataclass(frozen=True)
class PipCheck:
    ok: bool
    output: str


@dataclass(frozen=True)
class ProbeReport:
    version: int
    python: PythonFacts
    platform: PlatformFacts
    packages: Mapping[str, str]  # metadata name (as spelt there) -> version
    imports: Mapping[str, Mapping[str, str | None]]  # distribution -> module -> error or None
    torch: TorchFacts | None  # None: torch does not import
    pip_check: PipCheck
    cuda_libraries: tuple[str, ...]
    nvidia_packages: tuple[str, ...]
    env: Mapping[str, str]  # NVIDIA_* and CUDA_* variables


_MISSING = object()
FIX = "run the probe (src/aibase/probe.py) of the same checkout as the tool that reads it"


def parse_probe_output(out: str, where: str) -> ProbeReport:
    """The report in the probe's output (its last line: what an image prints before it is
    noise). `where` names the image and platform in errors."""
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise ProbeReportError(
            f"the probe in {where} printed no JSON report: {out[-500:]!r}",
            "run the probe by hand in that image to see what it prints",
        ) from None
    return parse_probe_report(data, where)


def parse_probe_report(data: object, where: str) -> ProbeReport:
    """Every field checked against its record; refused with the path of the first that is
    missing or of the wrong type, or when the report is of another version."""
    version = _expect(data, dict, "", where, "an object").get("version")
    if version != probe.REPORT_VERSION:
        raise ProbeReportError(
            f"the probe in {where} printed a report of version {version!r}; this ai-base "
            f"reads version {probe.REPORT_VERSION}",
            FIX,
        )
    report: ProbeReport = _parse(data, ProbeReport, "", where)
    return report


def _parse(value: Any, hint: Any, path: str, where: str) -> Any:
    """`value` as `hint` says: a record, X | None, tuple[X, ...], Mapping[str, X] or a
    str, int, float or bool (a bool is no number)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _parse(value, inner, path, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        table = _expect(value, dict, path, where, "an object")
        hints = get_type_hints(hint)
        return _record(
            hint,
            {
                f.name: _parse(
                    table.get(f.name, _MISSING), hints[f.name], f"{path}.{f.name}", where
                )
                for f in dataclasses.fields(hint)
            },
        )
    if origin is tuple:
        items = _expect(value, list, path, where, "a list")
        return tuple(_parse(v, args[0], f"{path}[{i}]", where) for i, v in enumerate(items))
    if origin is Mapping:
        table = _expect(value, dict, path, where, "an object")
        return {k: _parse(v, args[1], f"{path}.{k}", where) for k, v in table.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # JSON writes 1.0 as 1 sometimes
    if hint in (int, float) and isinstance(value, bool):
        _malformed(value, path, where, "a number")
    return _expect(value, hint, path, where, f"a {hint.__name__}")


def _record(record: Callable[..., Any], values: dict[str, Any]) -> Any:
    return record(**values)


def _expect(value: Any, kind: type, path: str, where: str, what: str) -> Any:
    if not isinstance(value, kind) or value is _MISSING:
        _malformed(value, path, where, what)
    return value


def _malformed(value: Any, path: str, where: str, what: str) -> NoReturn:
    got = "missing" if value is _MISSING else json.dumps(value)[:80]
    raise ProbeReportError(
        f"the probe in {where} printed a malformed report: {path.lstrip('.') or 'the report'} "
        f"should be {what}, and is {got}",
        FIX,
    )
