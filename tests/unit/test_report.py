from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from aibase.log import Step
from aibase.release.report import (
    PlatformRow,
    PromotionRow,
    RunReport,
    render_markdown,
    write_report,
)

from .conftest import REPO


def _report(settings: tuple[tuple[str, str, str], ...] = ()) -> RunReport:
    report = RunReport(
        started="2026-11-27T06:00:00Z",
        revision="f" * 40,
        registry="localhost:5000",
        repository="cerebral/ai-base",
        dry_run=False,
        base_mirror=None,
        variants=["cpu"],
        settings=settings,
    )
    report.platforms.append(
        PlatformRow(
            variant="cpu",
            platform="linux/amd64",
            digest="sha256:" + "a" * 64,
            compressed_mb=900.1,
            build_seconds=12.5,
            smoke=(),
            skipped=(),
            lock="requirements/locks/cpu-linux-amd64.txt",
            lock_sha256="b" * 64,
        )
    )
    report.steps.append(Step("build cpu/linux/amd64", 12.5, "ok"))
    return report


def test_markdown_tables_are_well_formed_and_name_everything() -> None:
    report = _report(settings=(("registry", "localhost:5000", "file"),))
    report.promotions.append(
        PromotionRow("cpu", "localhost:5000/cerebral/ai-base:cpu", "sha256:" + "c" * 64, None)
    )
    report.result = "ok"
    md = render_markdown(report)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header, row = rows[0], rows[1]
    assert header.count("|") == row.count("|")
    assert "| cpu | linux/amd64 | `sha256:" + "a" * 64 + "` | 900.1 | 12.5 | ok |" in row
    assert "`bbbbbbbbbbbb` (cpu-linux-amd64.txt)" in row
    assert "`localhost:5000/cerebral/ai-base:cpu` -> `sha256:" + "c" * 64 in md
    assert "| build cpu/linux/amd64 | 12.5 | ok |" in md
    assert "- result: ok" in md
    assert "| registry | `localhost:5000` | file |" in md


def test_a_report_is_failed_unless_the_run_said_otherwise() -> None:
    md = render_markdown(_report())  # e.g. written from `finally` after a crash
    assert "- result: FAILED: interrupted" in md
    assert "cpu: floating tag not moved" in md


def test_steps_fold_on_github_without_nesting(capsys: pytest.CaptureFixture[str]) -> None:
    from aibase import log

    log.configure(debug=False, github=True)
    try:
        with log.step("build-all", fold=False), log.step("build x"), log.step("inner"):
            pass
    finally:
        log.configure(debug=False, github=False)
    err = capsys.readouterr().err
    assert err.count("::group::") == 1 and err.count("::endgroup::") == 1
    assert "::group::build x" in err
    assert "<== inner: ok" in err and "<== build-all: ok" in err


def test_layer_charts_and_the_size_trend_against_the_last_report(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict, replace

    from aibase.release.report import previous_sizes, write_report

    last = _report()
    last.platforms[0] = replace(last.platforms[0], compressed_mb=850.0)
    (tmp_path / "build-20261126T060000Z.json").write_text(json.dumps(asdict(last)))
    (tmp_path / "build-20261126T070000Z.json").write_text('{"platforms": []}')  # a failed run
    assert previous_sizes(tmp_path) == {"cpu linux/amd64": 850.0}
    now = _report()
    now.platforms[0] = replace(now.platforms[0], layers_mb=(30.5, 800.0, 69.6))
    _, md_path = write_report(now, tmp_path)
    md = md_path.read_text()
    assert "| cpu linux/amd64 | 850.0 | 900.1 | +50.1 MB |" in md
    assert "```mermaid\nxychart-beta" in md
    # a row without names (an older record) still charts, by position
    assert '    x-axis ["layer 1", "layer 2", "layer 3"]' in md
    assert "    bar [30.5, 800.0, 69.6]" in md


def test_the_report_names_the_accepted_vulnerabilities_an_image_carries() -> None:
    report = _report()
    assert "accepted vulnerabilities" not in render_markdown(report)
    row = report.platforms[0]
    report.platforms[0] = PlatformRow(**{**row.__dict__, "accepted": "CVE-2025-32434"})
    md = render_markdown(report)
    assert "cpu linux/amd64 carries accepted vulnerabilities: CVE-2025-32434" in md


def test_the_report_names_no_sbom_it_did_not_write_and_no_none() -> None:
    """build-all writes no SBOM (`invoke audit` does): the report must not name one; a tag
    promoted for the first time was nothing before, not `None`."""
    report = _report()
    report.promotions.append(
        PromotionRow("cpu", "localhost:5000/cerebral/ai-base:cpu", "sha256:" + "c" * 64, None)
    )
    md = render_markdown(report)
    assert ".cdx.json" not in md and "SBOM" not in md
    assert "None" not in md
    assert "`localhost:5000/cerebral/ai-base:cpu` -> `sha256:" + "c" * 64 + "` (a new tag)" in md


def test_the_layer_chart_names_each_layer_and_leaves_out_the_empty_ones() -> None:
    report = _report()
    names = ("stand-in base", "RUN apt-get install", "WORKDIR /app", "group numpy", "group bin-02")
    report.platforms[0] = replace(
        report.platforms[0], layers_mb=(89.9, 126.4, 0.0, 22.5, 0.0), layer_names=names
    )
    md = render_markdown(report)
    assert '    x-axis ["stand-in base", "RUN apt-get install", "group numpy"]' in md
    assert "    bar [89.9, 126.4, 22.5]" in md
    assert "0.0" not in md.split("```mermaid")[1].split("```")[0]
    assert "under 0.05 MB, not charted: WORKDIR /app, group bin-02" in md


def test_a_stand_in_is_named_wherever_the_image_is_shown() -> None:
    report = _report()
    report.base_mirror = "localhost:5000/mirror"
    report.platforms[0] = replace(
        report.platforms[0], stand_in_of="python:3.11-slim", layers_mb=(89.9,), layer_names=("x",)
    )
    report.promotions.append(
        PromotionRow("cpu", "localhost:5000/cerebral/ai-base:cpu", "sha256:" + "c" * 64, None)
    )
    md = render_markdown(report)
    assert (
        "- **STAND-IN base** under cpu: Debian 12 from bases-bootstrap, NOT python:3.11-slim" in md
    )
    assert "| cpu (STAND-IN base) | linux/amd64 |" in md  # the platform table
    assert "| cpu linux/amd64 (STAND-IN base) | - | 900.1 | new |" in md  # the size trend
    assert 'title "cpu linux/amd64 (STAND-IN base): compressed MB per layer"' in md
    assert "(a new tag) — built on a STAND-IN base" in md


def test_the_report_names_each_image_s_checked_sbom_and_provenance_where_they_are() -> None:
    """Registry references, never a file: the digests verify checked."""
    report = _report()
    sbom, provenance = "sha256:" + "5" * 64, "sha256:" + "6" * 64
    report.platforms[0] = replace(report.platforms[0], sbom=sbom, provenance=provenance)
    md = render_markdown(report)
    assert (
        f"| cpu linux/amd64 | `localhost:5000/cerebral/ai-base@{sbom}` | "
        f"`localhost:5000/cerebral/ai-base@{provenance}` |" in md
    )
    assert ".cdx.json" not in md
    assert (
        "read one: `./ai inspect localhost:5000/cerebral/ai-base@<the image's digest> --sbom`" in md
    )


# a file name as a report would write one: name.ext, with or without a folder
FILE_NAME = re.compile(r"[\w./-]+\.(?:json|md|txt|toml|yaml|yml|html|spdx|sbom|log)\b")


def test_every_file_the_report_names_exists_once_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Everything a report can show (SBOM and provenance digests, accepted vulnerabilities,
    layers, a stand-in, a promotion): each file it names, in the Markdown, the job summary or
    the log, is one that exists once the report is written: the report's own files, the
    image's lock, the repository's allowlist. Digests are links to the registry; an SBOM or
    audit result that was never written must never be named."""
    lock = tmp_path / "locks" / "cpu-linux-amd64.txt"
    lock.parent.mkdir()
    lock.write_text("x==1\n")
    report = _report()
    report.platforms[0] = replace(
        report.platforms[0],
        lock=str(lock),
        sbom="sha256:" + "5" * 64,
        provenance="sha256:" + "6" * 64,
        accepted="CVE-2025-32434",
        layers_mb=(89.9, 0.0),
        layer_names=("base", "group torch"),
        stand_in_of="python:3.11-slim",
    )
    report.promotions.append(
        PromotionRow("cpu", "localhost:5000/cerebral/ai-base:cpu", "sha256:" + "c" * 64, None)
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "reports"
    out.mkdir()
    js, md = write_report(report, out)
    shown = md.read_text() + summary.read_text() + "".join(capsys.readouterr())
    named = set(FILE_NAME.findall(shown))
    assert {js.name, md.name, lock.name, "audit-allowlist.toml"} <= {Path(n).name for n in named}
    for name in named:
        places = (Path(name), out / name, lock.parent / name, REPO / name)
        assert any(p.is_file() for p in places), f"the report names {name}, never written"
