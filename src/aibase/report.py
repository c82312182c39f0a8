"""The run report, a typed record: JSON for machines, Markdown to paste into a PR."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aibase import github, log
from aibase.log import Step
from aibase.state import write_atomic


@dataclass(frozen=True)
class PlatformRow:
    variant: str
    platform: str
    digest: str
    compressed_mb: float
    build_seconds: float | None  # None: not built in this run
    smoke: tuple[str, ...] | None  # problems; () passed; None: not smoke-tested
    skipped: tuple[str, ...]  # checks not run here, with the reason (e.g. no GPU)
    lock: str
    lock_sha256: str | None  # the image's lock label
    sbom: str  # where `invoke audit` writes that lock's CycloneDX SBOM


@dataclass(frozen=True)
class PromotionRow:
    variant: str
    tag: str
    digest: str
    previous: str | None


@dataclass
class RunReport:
    """Filled in as the run goes; `result` stays "failed" unless the run reached its end."""

    started: str
    revision: str
    registry: str
    repository: str
    dry_run: bool
    base_mirror: str | None
    settings: tuple[tuple[str, str, str], ...] = ()  # (name, value, source)
    variants: list[str] = field(default_factory=list)
    indexes: dict[str, str] = field(default_factory=dict)  # variant -> merged index digest
    tags: dict[str, list[str]] = field(default_factory=dict)  # variant -> its immutable tags
    platforms: list[PlatformRow] = field(default_factory=list)
    promotions: list[PromotionRow] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    result: str = "failed"
    error: str | None = None


def render_markdown(report: RunReport) -> str:
    lines = [
        f"## ai-base build {report.started}",
        "",
        f"- revision: `{report.revision}`",
        f"- registry: `{report.registry}/{report.repository}`",
    ]
    if report.base_mirror:
        lines.append(f"- bases from mirror `{report.base_mirror}`")
    failed = f"FAILED: {(report.error or 'interrupted').splitlines()[0]}"
    lines.append(f"- result: {'ok' if report.result == 'ok' else failed}")
    lines += [
        "",
        "| variant | platform | digest | compressed MB | build s | smoke | lock (SBOM) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.platforms:
        smoke = "-" if row.smoke is None else ("; ".join(row.smoke) or "ok")
        if row.skipped:
            smoke += " (" + "; ".join(row.skipped) + ")"
        lock = f"`{(row.lock_sha256 or '?')[:12]}` ({Path(row.sbom).name})"
        seconds = "-" if row.build_seconds is None else row.build_seconds
        lines.append(
            f"| {row.variant} | {row.platform} | `{row.digest}` | {row.compressed_mb} | "
            f"{seconds} | {smoke} | {lock} |"
        )
    promoted = {p.variant: p for p in report.promotions}
    for name in report.variants:
        if name in promoted:
            p = promoted[name]
            lines.append(f"\n`{p.tag}` -> `{p.digest}` (was `{p.previous}`)")
        else:
            lines.append(f"\n{name}: floating tag not moved")
    lines += ["", "| step | seconds | status |", "|---|---|---|"]
    lines += [f"| {s.name} | {s.seconds:.1f} | {s.status} |" for s in report.steps]
    if report.settings:
        lines += ["", "| setting | value | source |", "|---|---|---|"]
        lines += [f"| {n} | `{v or '-'}` | {src} |" for n, v, src in report.settings]
    return "\n".join(lines) + "\n"


def write_report(report: RunReport, directory: Path) -> tuple[Path, Path]:
    stamp = report.started.replace(":", "").replace("-", "")
    js, md = directory / f"build-{stamp}.json", directory / f"build-{stamp}.md"
    write_atomic(js, json.dumps(asdict(report), indent=2, sort_keys=True))
    markdown = render_markdown(report)
    write_atomic(md, markdown)
    github.add_summary(markdown)  # the job summary, on GitHub Actions
    log.info(f"report: {md} and {js}")
    return js, md
