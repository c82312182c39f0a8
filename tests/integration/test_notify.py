"""After a promotion, the dependents hear of it (a loopback receiver here): the event names the
promoted digest; the token is sent but printed nowhere; a failed notice is an error of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibase.errors import NotifyError

from .conftest import FIXTURE_CONFIG, Notice, env_for, floating_digest, invoke, notice_receiver

pytestmark = pytest.mark.engine
REPO_NAME = "cerebral/ai-base-notify"


@pytest.mark.usefixtures("standins")
def test_a_promotion_notifies_the_dependents(tmp_path: Path) -> None:
    received: list[Notice] = []
    args = ("build-all", "--config", str(FIXTURE_CONFIG), "--repository", REPO_NAME)
    with notice_receiver(received) as url:
        env = env_for(tmp_path / "a", AIBASE_NOTIFY_URL=url, AIBASE_NOTIFY_TOKEN="t0k3n-x")
        run = invoke(*args, env=env)
    assert run.returncode == 0, run.output[-3000:]
    ((payload, headers),) = received
    assert payload["event_type"] == "ai-base-promoted"
    event = payload["client_payload"]
    assert event["digest"] == floating_digest(REPO_NAME, "fixture")
    assert event["tag"] == f"localhost:5000/{REPO_NAME}:fixture" and event["variant"] == "fixture"
    assert headers["Authorization"] == "Bearer t0k3n-x"
    assert "t0k3n-x" not in run.output  # the settings block shows ***
    dead = env_for(tmp_path / "b", AIBASE_NOTIFY_URL="http://127.0.0.1:9/hook")
    failed = invoke(*args, env=dead)
    assert failed.returncode == NotifyError.exit_code
    assert "was promoted to" in failed.output and "but notifying http://127.0.0.1:9/hook" in (
        failed.output
    )
