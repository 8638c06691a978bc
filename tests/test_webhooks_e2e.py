"""End to end: `health-agent serve` in a process of its own receives Stripe's signed
`invoice.payment_failed`, and the account's CSM gets the DM in the Slack emulator.

The store is seeded (on SQLite and on PostgreSQL) with an account whose owner is a Slack
user of the emulator and whose Stripe customer is linked to it; nothing is scored yet. The
command runs as an admin would start it, with its settings in the environment, on
127.0.0.1 and a free port, and is stopped by its pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from sandbox.slack import SLACK_BOT_TOKEN, SlackRecorder, dm_channel_id, slack_app, user_id
from sandbox.webhooks import stripe_headers
from tests.notifications.conftest import CSMS
from tests.notifications.server import serve
from tests.test_webhooks import JO, STRIPE_SECRET, payment_failed_body, seed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DELIVERY_DEADLINE = 60.0
"""Seconds within which the CSM's DM must appear (the emulator is polled)."""
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "TEST_POSTGRES_URL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _answering(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        return True  # exited: the caller reports it
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackRecorder]]:
    """The Slack emulator on 127.0.0.1: its API URL and what it received."""
    app = slack_app(CSMS, rate_limit=None)
    with serve(app) as base_url:
        yield f"{base_url}/api/", app.state.recorder


@pytest.fixture
def agent(
    db_url: str, engine: Engine, slack: tuple[str, SlackRecorder], tmp_path: Path
) -> Iterator[str]:
    """`health-agent serve` on a free port of 127.0.0.1, over the seeded store."""
    seed(engine)
    port = _free_port()
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=db_url,
        SLACK__BOT_TOKEN=SLACK_BOT_TOKEN,
        SLACK__BASE_URL=slack[0],
        STRIPE__WEBHOOK_SECRET=STRIPE_SECRET,
        LOG_LEVEL="INFO",
    )
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        started = _wait(lambda: _answering(url, proc), 30)
        if not started or proc.poll() is not None:
            pytest.fail(f"health-agent serve did not start:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_failed_payment_reaches_the_csm_in_slack(
    agent: str, slack: tuple[str, SlackRecorder]
) -> None:
    _, recorder = slack
    body = payment_failed_body()
    response = httpx.post(
        f"{agent}/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )
    assert (response.status_code, response.json()) == (200, {"ok": True, "received": 1, "new": 1})
    dm = dm_channel_id(user_id(JO))

    def told() -> bool:
        return any(
            m["channel"] == dm and "invoice payment failed" in m["text"]
            for m in list(recorder.messages)
        )

    assert _wait(told, DELIVERY_DEADLINE), [m["text"] for m in recorder.messages]
    [message] = [m for m in recorder.messages if "invoice payment failed" in m["text"]]
    assert message["text"].startswith("Acme: invoice payment failed")
    replay = httpx.post(
        f"{agent}/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )
    assert replay.json() == {"ok": True, "received": 1, "new": 0}
