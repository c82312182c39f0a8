"""What a failed build's last lines say (pure text): a registry's 5xx during the push (worth
one retry), a registry that stopped answering (named, and a rerun resumes), and the last
`ERROR:` line buildx printed (for the one-line failure message)."""

from __future__ import annotations

import re

# A registry's 5xx while pushing is its own fault, not the build's: dockerd pushes a tag's
# manifests concurrently, and the filesystem registry (distribution 2.8) can read a tag link
# half-written and answer "500 invalid checksum digest format". One retry re-pushes the
# same cached build; any other failure, or a second 5xx, is the build's error.
REGISTRY_5XX = re.compile(r"unexpected (HTTP )?status\b[^\n]*: 5\d\d\b")

# A registry that went away mid-build: nothing listens any more (refused), or the connection
# it had dropped (reset, a broken pipe). buildx names the registry in the same line.
CONNECTION_LOST = re.compile(r"connection refused|connection reset by peer|broken pipe")


def registry_failed(output: str) -> bool:
    """True when the registry answered 5xx during the push."""
    return REGISTRY_5XX.search(output) is not None


def registry_stopped(output: str, registry: str) -> str | None:
    """How `registry` stopped answering ("connection refused", ...), or None when the
    output says nothing of the kind about it."""
    for line in reversed(output.splitlines()):
        found = CONNECTION_LOST.search(line)
        if found and registry in line:
            return found.group(0)
    return None


def last_error(output: str) -> str:
    """The last `ERROR:` line buildx printed, as `: <words>`, or ""."""
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    return f": {errors[-1].removeprefix('ERROR:').strip()[:300]}" if errors else ""
