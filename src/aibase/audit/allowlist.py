"""The audit policy: `audit-allowlist.toml` entries and what they do to findings.

Entries need an id, package, reason, owner and expiry; an expired entry stops suppressing;
an entry that matches nothing in the whole audit is reported as stale.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from aibase.errors import AuditError
from aibase.names import normalize_name

DEFAULT_ALLOWLIST = "audit-allowlist.toml"


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    vuln_id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def ids(self) -> set[str]:
        return {self.vuln_id, *self.aliases}


@dataclass(frozen=True)
class AllowEntry:
    id: str
    package: str
    reason: str
    owner: str
    expires: date


@dataclass(frozen=True)
class PolicyResult:
    blocking: tuple[Finding, ...]
    suppressed: tuple[tuple[Finding, AllowEntry], ...]
    expired: tuple[AllowEntry, ...]  # matched a finding but no longer suppresses it

    @property
    def ok(self) -> bool:
        return not self.blocking


def load_allowlist(path: Path) -> tuple[AllowEntry, ...]:
    """[[allow]] tables: id, package, reason, owner, expires (YYYY-MM-DD); all required."""
    if not path.exists():
        return ()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AuditError(f"{path}: not valid TOML: {exc}", "fix the syntax") from None
    entries: list[AllowEntry] = []
    for i, raw in enumerate(data.get("allow", [])):
        where = f"{path}: allow[{i}]"
        missing = [k for k in ("id", "package", "reason", "owner", "expires") if not raw.get(k)]
        if missing:
            raise AuditError(
                f"{where} ({raw.get('id', '?')}): missing {', '.join(missing)}",
                "every exception needs an id, package, reason, owner and expiry date",
            )
        expires = raw["expires"]
        if not isinstance(expires, date):
            raise AuditError(
                f"{where}: expires must be a date, got {expires!r}",
                "write it unquoted: expires = 2027-01-31",
            )
        unknown = set(raw) - {"id", "package", "reason", "owner", "expires"}
        if unknown:
            raise AuditError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                "allowed: id, package, reason, owner, expires",
            )
        entries.append(
            AllowEntry(
                raw["id"], normalize_name(raw["package"]), raw["reason"], raw["owner"], expires
            )
        )
    return tuple(entries)


def apply_policy(
    findings: Sequence[Finding], allowlist: Sequence[AllowEntry], today: date
) -> PolicyResult:
    blocking: list[Finding] = []
    suppressed: list[tuple[Finding, AllowEntry]] = []
    expired: list[AllowEntry] = []
    for finding in findings:
        package = normalize_name(finding.package)
        entry = next((e for e in allowlist if e.id in finding.ids() and e.package == package), None)
        if entry is None:
            blocking.append(finding)
            continue
        if entry.expires < today:
            blocking.append(finding)
            if entry not in expired:
                expired.append(entry)
        else:
            suppressed.append((finding, entry))
    return PolicyResult(tuple(blocking), tuple(suppressed), tuple(expired))


def stale_entries(
    allowlist: Sequence[AllowEntry], results: Sequence[PolicyResult]
) -> tuple[AllowEntry, ...]:
    """Entries that matched no finding in any target of the audit: remove them."""
    used = {e for r in results for _, e in r.suppressed} | {e for r in results for e in r.expired}
    return tuple(e for e in allowlist if e not in used)
