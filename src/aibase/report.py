"""The build report: JSON for machines, Markdown to paste into a PR."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from aibase import log

if TYPE_CHECKING:
    from aibase.pipeline import RunReport


def render_markdown(report: RunReport) -> str:
    lines = [
        f"## ai-base build {report.started}",
        "",
        f"- revision: `{report.revision}`",
        f"- registry: `{report.registry}/{report.repository}`",
    ]
    if report.base_mirror:
        lines.append(f"- bases from mirror `{report.base_mirror}`")
    lines.append(f"- result: {'FAILED: ' + report.error.splitlines()[0] if report.error else 'ok'}")
    lines += [
        "",
        "| variant | platform | digest | compressed MB | build s | smoke | lock (SBOM) |",
        "|---|---|---|---|---|---|---|",
    ]
    seconds = {(c["variant"], c["platform"]): c["seconds"] for c in report.cells}
    for name, v in report.variants.items():
        for platform, p in v.get("platforms", {}).items():
            smoke = "ok" if p.get("smoke") == [] else ("; ".join(p.get("smoke") or []) or "-")
            lock = f"`{(p.get('lock_sha256') or '?')[:12]}` ({Path(p.get('sbom', '-')).name})"
            lines.append(
                f"| {name} | {platform} | `{p['digest']}` | {p['compressed_mb']} | "
                f"{seconds.get((name, platform), '-')} | {smoke} | {lock} |"
            )
        if v.get("promoted"):
            pr = v["promoted"]
            lines.append(f"\n`{pr['tag']}` -> `{pr['digest']}` (was `{pr['previous']}`)")
        else:
            lines.append(f"\n{name}: floating tag not moved")
    lines += ["", "| step | seconds | status |", "|---|---|---|"]
    lines += [f"| {n} | {s:.1f} | {st} |" for n, s, st in report.steps]
    return "\n".join(lines) + "\n"


def write_report(report: RunReport, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = report.started.replace(":", "").replace("-", "")
    js, md = directory / f"build-{stamp}.json", directory / f"build-{stamp}.md"
    js.write_text(json.dumps(asdict(report), indent=2, sort_keys=True, default=str))
    md.write_text(render_markdown(report))
    log.info(f"report: {md} and {js}")
    return js, md
