"""What must hold before a promoted tag moves. Pure: it reads the run's records and what
the caller read from the registry, and refuses.

The gate: the run recorded a merged index of this checkout and config, verified, and
smoke-tested on every platform it holds and every one images.toml requires; the guards:
no GPU check skipped when one is required, no build input uncommitted; and forward only:
a tag never loses a platform or moves back in history unless asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aibase.build.plan import floating_tag
from aibase.config.model import Config, VariantConfig
from aibase.errors import PromoteError
from aibase.state import MergeRecord, VariantState, VerifyRecord


def check_gate(
    config: Config, variant: VariantConfig, state: VariantState | None, revision: str
) -> tuple[MergeRecord, VerifyRecord]:
    """What must be on record before the registry is even asked. Pure."""
    name = variant.name
    if state is None or state.merged is None:
        raise PromoteError(
            f"promote {name}: no merged index recorded", f"run invoke merge --variant {name} first"
        )
    merged, verified = state.merged, state.verified
    expected = {
        "registry": config.registry,
        "repository": config.repository,
        "revision": revision,
        "config_digest": config.config_digest,
    }
    foreign = [k for k, v in expected.items() if getattr(merged, k) != v]
    if foreign:
        raise PromoteError(
            f"promote {name}: the recorded index is from another run (its {', '.join(foreign)}: "
            "not this checkout's; --debug shows both)",
            f"merge and verify in this checkout first: invoke merge / verify --variant {name}",
            details=tuple(
                f"{k}: recorded {getattr(merged, k)!r}, this run {expected[k]!r}" for k in expected
            ),
        )
    if verified is None or verified.index_digest != merged.index_digest:
        raise PromoteError(
            f"promote {name}: index {merged.index_digest} was never verified",
            f"run invoke verify --variant {name} (it also smoke-tests)",
        )
    platforms = dict.fromkeys([*config.required_platforms, *verified.platforms])
    failed = []
    for platform in platforms:
        smoke = state.smoke.get(platform)
        if smoke is None or not smoke.ok or smoke.digest != verified.platforms.get(platform):
            failed.append(platform)
    if failed:
        raise PromoteError(
            f"promote {name}: {', '.join(failed)} not smoke-tested or failed; "
            f"{config.image}:{floating_tag(variant)} left untouched",
            f"fix the image and rerun invoke verify --variant {name}",
        )
    return merged, verified


@dataclass(frozen=True)
class Guards:
    """What promote may do besides moving a tag forward, and what it knows of history."""

    allow_rollback: bool = False
    allow_narrowing: bool = False
    require_gpu: bool = False  # a smoke test that skipped its GPU checks does not count
    uncommitted: tuple[str, ...] = ()  # build inputs that are not what the commit holds
    is_ancestor: Callable[[str, str], bool | None] = field(default=lambda *_: None)


FORWARD_ONLY = Guards()  # no rollback, no narrowing, history unknown


def check_promotable(
    config: Config,
    variant: VariantConfig,
    state: VariantState | None,
    revision: str,
    guards: Guards,
) -> tuple[MergeRecord, VerifyRecord]:
    """The gate (`check_gate`), and what the guards refuse: a GPU check that was skipped
    when one is required, build inputs that are not what the commit holds. Pure."""
    merged, verified = check_gate(config, variant, state, revision)
    skipped = [n for s in (state.smoke.values() if state else ()) for n in s.skipped]
    if guards.require_gpu and skipped:
        raise PromoteError(
            f"promote {variant.name} with --require-gpu: {'; '.join(skipped)}",
            "smoke-test the CUDA platforms on a GPU runner: invoke smoke --variant V "
            "--platform P --require-gpu (its result file reaches promote with the others)",
        )
    if guards.uncommitted:
        raise PromoteError(
            f"promote {variant.name}: built from files that are not what commit {revision[:12]} "
            f"holds: {', '.join(guards.uncommitted)}; a tag every build uses must come from a "
            "commit",
            "commit them (or build in a clean clone), then rerun build-all",
        )
    return merged, verified


@dataclass(frozen=True)
class Serving:
    platforms: set[str]
    revision: str
    created: str


def check_forward(tag: str, theirs: Serving, ours: Serving, guards: Guards) -> None:
    """Refuse to narrow the platforms a tag serves, or to move it back in history."""
    lost = sorted(theirs.platforms - ours.platforms)
    if lost and not guards.allow_narrowing:
        raise PromoteError(
            f"{tag} serves {', '.join(sorted(theirs.platforms))}; this index lacks "
            f"{', '.join(lost)}: promoting it would narrow the tag every build uses",
            "add the platforms back to images.toml, or pass --allow-narrowing after review",
        )
    if guards.allow_rollback or not theirs.revision or theirs.revision == ours.revision:
        return  # a rebuild of the same commit (OS updates) moves forward in time only
    older = guards.is_ancestor(ours.revision, theirs.revision)
    newer = guards.is_ancestor(theirs.revision, ours.revision)
    if older is None or newer is None:  # history unknown here (a shallow clone): use time
        back = bool(ours.created and theirs.created and ours.created < theirs.created)
    else:
        back = not newer
    if back:
        raise PromoteError(
            f"{tag} serves commit {theirs.revision[:12]} (created {theirs.created}); this index "
            f"is commit {ours.revision[:12]}, not a descendant of it: that would be a rollback",
            "pass --allow-rollback to move the tag back deliberately",
        )
