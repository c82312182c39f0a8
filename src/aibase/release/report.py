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
    layers_mb: tuple[float, ...] = ()  # compressed size of each layer, base first
    accepted: str | None = None  # the image's accepted-vulnerabilities label (allowlist ids)
    layer_names: tuple[str, ...] = ()  # each layer's group or Dockerfile step; () unknown
    stand_in_of: str | None = None  # built on a STAND-IN for this base (its label)
    sbom: str | None = None  # the SBOM artifact verify checked against the layers
    provenance: str | None = None  # the attestation manifest of its checked provenance

    @property
    def image(self) -> str:
        """`variant platform`, and that it stands on a stand-in wherever it is named."""
        return f"{self.variant} {self.platform}" + (" (STAND-IN base)" if self.stand_in_of else "")


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
    previous: dict[str, float] = field(default_factory=dict)  # "variant platform" -> MB, last run
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
    stand_ins = sorted({(r.variant, r.stand_in_of) for r in report.platforms if r.stand_in_of})
    lines += [
        f"- **STAND-IN base** under {variant}: Debian 12 from bases-bootstrap, NOT {real} "
        "(a test fixture: never a release)"
        for variant, real in stand_ins
    ]
    failed = f"FAILED: {(report.error or 'interrupted').splitlines()[0]}"
    lines.append(f"- result: {'ok' if report.result == 'ok' else failed}")
    lines += [
        "",
        "| variant | platform | digest | compressed MB | build s | smoke | lock |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.platforms:
        smoke = "-" if row.smoke is None else ("; ".join(row.smoke) or "ok")
        if row.skipped:
            smoke += " (" + "; ".join(row.skipped) + ")"
        lock = f"`{(row.lock_sha256 or '?')[:12]}` ({Path(row.lock).name})"
        seconds = "-" if row.build_seconds is None else row.build_seconds
        variant = row.variant + (" (STAND-IN base)" if row.stand_in_of else "")
        lines.append(
            f"| {variant} | {row.platform} | `{row.digest}` | {row.compressed_mb} | "
            f"{seconds} | {smoke} | {lock} |"
        )
    lines += [
        f"\n{row.image} carries accepted vulnerabilities: {row.accepted} "
        "(audit-allowlist.toml says who accepted each, until when, and the mitigation)"
        for row in report.platforms
        if row.accepted
    ]
    lines += _attestations(report)
    promoted = {p.variant: p for p in report.promotions}
    for name in report.variants:
        if name in promoted:
            p = promoted[name]
            was = f"was `{p.previous}`" if p.previous else "a new tag"
            built_on = {r.stand_in_of for r in report.platforms if r.variant == name} - {None}
            warn = " — built on a STAND-IN base" if built_on else ""
            lines.append(f"\n`{p.tag}` -> `{p.digest}` ({was}){warn}")
        else:
            lines.append(f"\n{name}: floating tag not moved")
    lines += _size_trend(report) + _layer_charts(report)
    lines += ["", "| step | seconds | status |", "|---|---|---|"]
    lines += [f"| {s.name} | {s.seconds:.1f} | {s.status} |" for s in report.steps]
    if report.settings:
        lines += ["", "| setting | value | source |", "|---|---|---|"]
        lines += [f"| {n} | `{v or '-'}` | {src} |" for n, v, src in report.settings]
    return "\n".join(lines) + "\n"


def _attestations(report: RunReport) -> list[str]:
    """Where each image's checked SBOM and provenance are (registry references, nothing on
    disk); images without either are left out, never named with a placeholder."""
    rows = [r for r in report.platforms if r.sbom or r.provenance]
    if not rows:
        return []
    at = f"{report.registry}/{report.repository}@"
    header = "| image | SBOM (CycloneDX, refers to the image) | provenance (SLSA, in the index) |"
    lines = ["", header, "|---|---|---|"]
    for r in rows:
        sbom = f"`{at}{r.sbom}`" if r.sbom else "-"
        provenance = f"`{at}{r.provenance}`" if r.provenance else "-"
        lines.append(f"| {r.image} | {sbom} | {provenance} |")
    lines.append(f"\nread one: `./ai inspect {at}<the image's digest> --sbom`")
    return lines


def _size_trend(report: RunReport) -> list[str]:
    """Each image's compressed size against the last report's (what a reviewer watches)."""
    if not report.platforms:
        return []
    lines = ["", "| image | last run MB | this run MB | change |", "|---|---|---|---|"]
    for row in report.platforms:
        before = report.previous.get(f"{row.variant} {row.platform}")
        change = "new" if before is None else f"{row.compressed_mb - before:+.1f} MB"
        lines.append(
            f"| {row.image} | {'-' if before is None else before} | {row.compressed_mb} | "
            f"{change} |"
        )
    return lines


def _layer_charts(report: RunReport) -> list[str]:
    """One bar chart per image: the compressed size of each layer, base first, named by its
    group or Dockerfile step (Mermaid, which GitHub renders in pull requests and job
    summaries). Layers under 0.05 MB are left out of the chart and named below it."""
    lines = []
    for row in report.platforms:
        if not row.layers_mb:
            continue
        names = row.layer_names
        if len(names) != len(row.layers_mb):
            names = tuple(f"layer {i}" for i in range(1, len(row.layers_mb) + 1))
        shown = [(n, mb) for n, mb in zip(names, row.layers_mb, strict=True) if mb > 0]
        small = [n for n, mb in zip(names, row.layers_mb, strict=True) if mb <= 0]
        axis = ", ".join(f'"{n}"' for n, _ in shown)
        bars = ", ".join(f"{mb}" for _, mb in shown)
        title = f"{row.image}: compressed MB per layer"
        chart = ["xychart-beta", f'    title "{title}"', f"    x-axis [{axis}]", '    y-axis "MB"']
        lines += ["", "```mermaid", *chart, f"    bar [{bars}]", "```"]
        if small:
            lines.append(f"\nunder 0.05 MB, not charted: {', '.join(small)}")
    return lines


def previous_sizes(directory: Path) -> dict[str, float]:
    """The image sizes of the newest report already in the folder ({} when there is none)."""
    for path in sorted(directory.glob("build-*.json"), reverse=True):
        try:
            rows = json.loads(path.read_text()).get("platforms") or []
            if rows:  # a failed run measured nothing: look further back
                return {f"{r['variant']} {r['platform']}": float(r["compressed_mb"]) for r in rows}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a report of another shape: look further back
    return {}


def write_report(report: RunReport, directory: Path) -> tuple[Path, Path]:
    stamp = report.started.replace(":", "").replace("-", "")
    js, md = directory / f"build-{stamp}.json", directory / f"build-{stamp}.md"
    report.previous = previous_sizes(directory)
    write_atomic(js, json.dumps(asdict(report), indent=2, sort_keys=True))
    markdown = render_markdown(report)
    write_atomic(md, markdown)
    github.add_summary(markdown)  # the job summary, on GitHub Actions
    log.info(f"report: {md} and {js}")
    return js, md
