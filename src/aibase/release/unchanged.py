"""Whether a new index holds what the promoted one already serves (the gate's last question).

The weekly schedule rebuilds the OS stage so apt's updates land; when apt brought nothing
new, promoting the result would only ask a reviewer to approve the same image again. Layer
digests cannot tell: apt's layer never reproduces byte for byte. What can: the revision label
(everything committed: Dockerfiles, locks, pinned bases, the installer) and the OS package list
each image carries in its last layer (`/opt/ai-base/os-packages.txt`, written by the
Dockerfiles' final step). Same revision and same list on every platform the new index holds,
and both promoted tags on one index: unchanged. Anything unreadable counts as changed, so
the worst a surprise can do is ask for an approval.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aibase.build.plan import promoted_tags
from aibase.config.model import Config, VariantConfig
from aibase.errors import RegistryError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, entry_platform, is_attestation
from aibase.registry.refs import parse_ref
from aibase.release.verify import FetchedIndex, fetch_index

OS_PACKAGES = "opt/ai-base/os-packages.txt"
REVISION = "org.opencontainers.image.revision"
SMALL_LAYER = 1 << 20  # the list's layer is a few kB; never download a big one to look
LAST_LAYERS = 3  # it is the last layer; a little slack for a step added after it


@dataclass(frozen=True)
class Verdict:
    unchanged: bool
    reason: str  # one line for the log and the job summary
    promoted: str | None = None  # the index the floating tag serves


def read_os_packages(client: RegistryClient, repo: str, image: Manifest) -> str | None:
    """The OS package list in one of an image's last small layers; None when there is none
    (an image from before the list existed) or the layer cannot be read (e.g. zstd, which
    Python 3.11 cannot open): the caller treats that as changed."""
    for layer in reversed(image.json.get("layers", [])[-LAST_LAYERS:]):
        if int(layer.get("size", 0)) > SMALL_LAYER:
            continue
        blob = client.get_blob(repo, layer["digest"], limit=SMALL_LAYER)
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
                member = tar.extractfile(OS_PACKAGES)
                if member is not None:
                    return member.read().decode()
        except (tarfile.TarError, KeyError, UnicodeDecodeError):
            continue
    return None


def _platform_images(fetched: FetchedIndex) -> dict[str, str]:
    """platform -> image manifest digest, attestations left out."""
    return {
        entry_platform(e): e["digest"]
        for e in fetched.index.json.get("manifests", [])
        if not is_attestation(e)
    }


def compare_indexes(
    new: FetchedIndex,
    old: FetchedIndex,
    read_packages: Callable[[Manifest], str | None],
) -> Verdict:
    """Pure but for `read_packages` (one small blob per image). `old` is what is promoted."""
    promoted = old.index.digest
    if new.index.digest == promoted:
        return Verdict(True, f"the promoted tags already serve {promoted}", promoted)
    ours, theirs = _platform_images(new), _platform_images(old)
    if set(ours) != set(theirs):
        return Verdict(False, f"platforms differ: {sorted(ours)} vs promoted {sorted(theirs)}")
    for platform in sorted(ours):
        difference = _compare_images(
            (new, new.manifests[ours[platform]]),
            (old, old.manifests[theirs[platform]]),
            read_packages,
        )
        if difference:
            return Verdict(False, f"{platform}: {difference}")
    platforms = ", ".join(sorted(ours))
    return Verdict(
        True, f"same revision and OS packages on {platforms} as the promoted {promoted}", promoted
    )


def _compare_images(
    new: tuple[FetchedIndex, Manifest],
    old: tuple[FetchedIndex, Manifest],
    read_packages: Callable[[Manifest], str | None],
) -> str | None:
    """What differs between two platform images (None: nothing that counts)."""
    ours, theirs = (_revision(f.configs.get(m.digest)) for f, m in (new, old))
    if ours is None or ours != theirs:
        return f"revision {ours} vs promoted {theirs}"
    new_list, old_list = read_packages(new[1]), read_packages(old[1])
    if new_list is None or old_list is None:
        return f"no readable {OS_PACKAGES} to compare"
    if new_list != old_list:
        return f"OS packages differ ({_first_difference(new_list, old_list)})"
    return None


def _revision(config: Mapping[str, Any] | None) -> str | None:
    labels = ((config or {}).get("config") or {}).get("Labels") or {}
    value = labels.get(REVISION)
    return value if isinstance(value, str) and value else None


def _first_difference(new: str, old: str) -> str:
    added = sorted(set(new.splitlines()) - set(old.splitlines()))
    gone = sorted(set(old.splitlines()) - set(new.splitlines()))
    return ", ".join([*(f"+{a}" for a in added[:2]), *(f"-{g}" for g in gone[:2])]) or "order"


def check_unchanged(
    client: RegistryClient, config: Config, variant: VariantConfig, index_digest: str
) -> Verdict:
    """The registry side: what the promoted tags serve, read and compared with `index_digest`."""
    repo = config.repository
    try:
        served = {tag: client.head_manifest(repo, tag) for tag in promoted_tags(variant)}
        digests = set(served.values())
        if None in digests:
            return Verdict(False, "nothing promoted yet")
        if len(digests) != 1:
            return Verdict(False, f"the promoted tags serve different indexes: {served}")
        new = fetch_index(client, parse_ref(f"{config.image}@{index_digest}"))
        old = fetch_index(client, parse_ref(f"{config.image}@{digests.pop()}"))
        return compare_indexes(new, old, lambda image: read_os_packages(client, repo, image))
    except RegistryError as exc:
        return Verdict(False, f"cannot compare with the promoted index: {exc.message}")
