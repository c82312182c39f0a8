"""After a promotion, the dependents hear of it (a loopback receiver here): the event names the
promoted digest; the token is sent but printed nowhere; a failed notice is an error of its own."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aibase.errors import NotifyError

from .conftest import FIXTURE_CONFIG, env_for, floating_digest, invoke

pytestmark = pytest.mark.engine
REPO_NAME = "cerebral/ai-base-notify"


@contextmanager
def _receiver(received: list):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((json.loads(body), dict(self.headers)))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_a_promotion_notifies_the_dependents(standins: str, tmp_path: Path):
    received: list = []
    args = ("build-all", "--config", str(FIXTURE_CONFIG), "--repository", REPO_NAME)
    with _receiver(received) as url:
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
