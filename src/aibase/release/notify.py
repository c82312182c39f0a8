"""After a promotion, tell the services built on the base (the old guide's step 7): one POST
to a configured webhook, in the shape GitHub's `repository_dispatch` takes, so the same
setting can point at `https://api.github.com/repos/OWNER/REPO/dispatches`. Off by default."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

from aibase import log
from aibase.errors import NotifyError

EVENT = "ai-base-promoted"


@dataclass(frozen=True)
class Promoted:
    variant: str
    tag: str  # the floating tag's full reference
    digest: str
    previous: str | None
    revision: str


def payload(event: Promoted) -> bytes:
    return json.dumps({"event_type": EVENT, "client_payload": asdict(event)}).encode()


def send(event: Promoted, url: str, token: str = "", timeout: float = 30) -> None:
    """POST the event; a failure is an error of its own (the tag has moved already)."""
    headers = {"Content-Type": "application/json", "User-Agent": "ai-base"}
    if token:  # GitHub: a token allowed to dispatch to that repository
        headers |= {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    request = urllib.request.Request(url, data=payload(event), headers=headers, method="POST")
    log.info(f"notify: POST {url} ({EVENT}: {event.tag} = {event.digest})")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise NotifyError(
            f"{event.tag} was promoted to {event.digest}, but notifying {url} failed: {exc}",
            f"check --notify-url, then rerun invoke promote --variant {event.variant}: the tag "
            "is not moved again, only the notice is sent (or trigger the rebuilds by hand)",
        ) from None
    if status >= 300:
        raise NotifyError(
            f"{event.tag} was promoted, but {url} answered HTTP {status}",
            "check --notify-url and its token (AIBASE_NOTIFY_TOKEN), then rerun invoke promote "
            f"--variant {event.variant}: only the notice is sent again",
        )
