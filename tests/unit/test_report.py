from __future__ import annotations

from aibase.pipeline import RunReport
from aibase.report import render_markdown


def test_markdown_tables_are_well_formed_and_name_everything():
    report = RunReport(started="2026-11-27T06:00:00Z", revision="f" * 40, registry="localhost:5000",
                       repository="cerebral/ai-base", dry_run=False, base_mirror=None)
    report.cells = [{"variant": "cpu", "platform": "linux/amd64", "seconds": 12.5}]
    report.variants = {"cpu": {"platforms": {"linux/amd64": {
        "digest": "sha256:" + "a" * 64, "compressed_mb": 900.1, "smoke": [],
        "lock_sha256": "b" * 64, "sbom": "build/audit/cpu-linux-amd64.cdx.json"}},
        "promoted": {"tag": "localhost:5000/cerebral/ai-base:cpu", "digest": "sha256:" + "c" * 64,
                     "previous": None}}}
    report.steps = [("build cpu/linux/amd64", 12.5, "ok")]
    md = render_markdown(report)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header, row = rows[0], rows[1]
    assert header.count("|") == row.count("|")
    assert "| cpu | linux/amd64 | `sha256:" + "a" * 64 + "` | 900.1 | 12.5 | ok |" in row
    assert "`bbbbbbbbbbbb` (cpu-linux-amd64.cdx.json)" in row
    assert "`localhost:5000/cerebral/ai-base:cpu` -> `sha256:" + "c" * 64 in md
    assert "| build cpu/linux/amd64 | 12.5 | ok |" in md
