"""What a failed Docker SDK call means: only a wait past its limit is a Timeout.

docker-py reports a read past its timeout as requests' ReadTimeout, or, reading a response
over the unix socket, as a ConnectionError around urllib3's ReadTimeoutError
(docker/docker-py#1966). Every other failure (the engine went away, refused, reset) is the
engine's, and says so.
"""

from __future__ import annotations

from requests.exceptions import RequestException
from requests.exceptions import Timeout as RequestTimeout
from urllib3.exceptions import TimeoutError as ReadTimedOut

from aibase.errors import AibaseError, EngineError, Timeout


def wait_failed(exc: RequestException, what: str, timeout: float, slow: str) -> AibaseError:
    """The error for `what` (e.g. "the probe in REF (PLATFORM)") whose wait raised `exc`;
    `slow` says what to do when it really ran past `timeout`."""
    cause = exc.args[0] if exc.args else None
    if isinstance(exc, RequestTimeout) or isinstance(cause, ReadTimedOut):
        return Timeout(f"{what} did not finish within {timeout:.0f} s (stopped)", slow)
    return EngineError(
        f"the Docker Engine stopped answering while {what} ran: {exc}",
        "check the engine (`docker info`, ./ai doctor), then run it again",
    )
