"""The Slack server over HTTP: signatures checked before anything, answers within Slack's
3 seconds with the slow part afterwards, a health check, and its configuration."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import Clock
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner

from cli import app as cli_app
from notifications.messages import ACTION_ACKNOWLEDGE
from notifications.serve import create_app, http_app
from notifications.serve_context import make_context
from notifications.serve_socket import socket_client
from sandbox.slack import SLACK_BOT_TOKEN, slack_app
from settings import ConfigError, Settings, SlackSettings
from store.db import make_engine
from store.models import Alert, SentimentEntry
from tests.notifications.conftest import SandboxFactory, SlackSandbox
from tests.notifications.serve_world import SECRET, Asgi, World, build_world, form, sign
from tests.notifications.server import serve


@pytest.fixture
def world(engine: Engine, slack_sandbox: SandboxFactory) -> World:
    return build_world(engine, slack_sandbox(rate_limit=None))


def _state(world: World) -> tuple[Any, ...]:
    """Everything a Slack request could change: the alert, sentiment, calls to Slack."""
    with Session(world.engine) as session:
        alert = session.get(Alert, world.alert_id)
        assert alert is not None
        entries = session.exec(select(func.count()).select_from(SentimentEntry)).one()
        acked = (alert.acknowledged_at, alert.acknowledged_by)
    recorder = world.slack.recorder
    return acked, entries, len(recorder.calls), len(recorder.responses)


def _acknowledge_body(world: World) -> str:
    return form(world.click(ACTION_ACKNOWLEDGE))


def _sentiment_body(world: World) -> str:
    return urlencode(world.command("/sentiment", "acme.com red champion left"))


BODIES: dict[str, Callable[[World], str]] = {
    "/slack/actions": _acknowledge_body,
    "/slack/commands": _sentiment_body,
}


def _tampered(body: str) -> tuple[str, dict[str, str]]:
    changed = body.replace("red", "green")
    assert changed != body
    return changed, sign(body)


def _stale(body: str) -> tuple[str, dict[str, str]]:
    return body, sign(body, timestamp=int(time.time()) - 360)


def _future(body: str) -> tuple[str, dict[str, str]]:
    return body, sign(body, timestamp=int(time.time()) + 360)


def _no_headers(body: str) -> tuple[str, dict[str, str]]:
    return body, {"Content-Type": "application/x-www-form-urlencoded"}


def _no_signature(body: str) -> tuple[str, dict[str, str]]:
    headers = sign(body)
    del headers["X-Slack-Signature"]
    return body, headers


def _no_timestamp(body: str) -> tuple[str, dict[str, str]]:
    headers = sign(body)
    del headers["X-Slack-Request-Timestamp"]
    return body, headers


def _other_secret(body: str) -> tuple[str, dict[str, str]]:
    return body, sign(body, secret="not-the-signing-secret")


def _garbage_timestamp(body: str) -> tuple[str, dict[str, str]]:
    return body, {**sign(body), "X-Slack-Request-Timestamp": "yesterday"}


REFUSED = {
    "tampered body": _tampered,
    "stale timestamp": _stale,
    "timestamp from the future": _future,
    "missing headers": _no_headers,
    "missing signature": _no_signature,
    "missing timestamp": _no_timestamp,
    "another secret": _other_secret,
    "timestamp not a number": _garbage_timestamp,
}


@pytest.mark.parametrize("path", sorted(BODIES))
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsigned_requests_get_401_and_change_nothing(world: World, path: str, case: str) -> None:
    body, headers = REFUSED[case](BODIES[path](world))
    before = _state(world)
    response = Asgi(world.app).post(path, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error": "invalid_signature"}
    assert _state(world) == before


@pytest.mark.parametrize("path", sorted(BODIES))
def test_signed_requests_are_answered(world: World, path: str) -> None:
    body = BODIES[path](world)
    before = _state(world)
    response = Asgi(world.app).post(path, content=body, headers=sign(body))
    assert response.status_code == 200
    assert _state(world) != before


class _Clock(Clock):
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def test_the_signature_window_is_300_seconds(world: World) -> None:
    clock = _Clock(1_772_443_200.0)
    app = Asgi(create_app(world.ctx, SECRET, clock=clock))
    body = urlencode(world.command("/health", "acme.com"))
    for age, status in ((301, 401), (-301, 401), (300, 200), (-300, 200), (0, 200)):
        headers = sign(body, timestamp=int(clock.at) - age)
        assert app.post("/slack/commands", content=body, headers=headers).status_code == status


def test_a_signed_body_that_is_not_slacks_is_refused(world: World) -> None:
    client = Asgi(world.app)
    for body in ("payload=not-json", "payload=%5B1%2C2%5D", "nothing=here"):
        assert client.post("/slack/actions", content=body, headers=sign(body)).status_code == 400
    huge = "payload=" + "x" * 1_000_001
    assert client.post("/slack/actions", content=huge, headers=sign(huge)).status_code == 413


def test_healthz_says_whether_the_database_answers(world: World, tmp_path: Path) -> None:
    response = Asgi(world.app).get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True, "database": "reachable"})
    gone = make_engine(f"sqlite:///{tmp_path}/missing/dir/store.db")
    broken = create_app(make_context(gone, SlackSettings(), world.ctx.client), SECRET)
    response = Asgi(broken).get("/healthz")
    assert (response.status_code, response.json()) == (
        503,
        {"ok": False, "database": "unreachable"},
    )
    gone.dispose()


def test_healthz_needs_no_signature_and_only_get(world: World) -> None:
    client = Asgi(world.app)
    assert client.post("/healthz").status_code == 405
    assert client.get("/slack/actions").status_code == 405


class _Gate:
    """Holds the emulator's `chat.update` until `open` is set: the follow-up waits on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open = threading.Event()
        self.reached = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat.update"):
            self.reached.set()
            await anyio.to_thread.run_sync(self.open.wait)
        await self.app(scope, receive, send)


@pytest.fixture
def gated(engine: Engine) -> Iterator[tuple[World, _Gate, str]]:
    """The world with a gated emulator, and the Slack server on real HTTP."""
    emulator = slack_app([("jo@example.com", "Jo Park")], rate_limit=None)
    gate = _Gate(emulator)
    with serve(gate) as slack_url:
        sandbox = SlackSandbox(base_url=slack_url, recorder=emulator.state.recorder)
        world = build_world(engine, sandbox)
        try:
            with serve(world.app) as app_url:
                yield world, gate, app_url
        finally:
            gate.open.set()


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_answer_goes_out_before_the_slow_follow_up(
    gated: tuple[World, _Gate, str],
) -> None:
    world, gate, app_url = gated
    body = _acknowledge_body(world)
    response = httpx.post(f"{app_url}/slack/actions", content=body, headers=sign(body))
    assert response.status_code == 200
    assert response.content == b""
    assert "edited" not in world.message  # the message update is still held at the gate
    assert _wait_for(gate.reached.is_set)  # ...because it is being made, after the answer
    gate.open.set()
    assert _wait_for(lambda: bool(world.message.get("edited")))
    assert world.message["blocks"][-1]["elements"][0]["text"].startswith("Acknowledged by <@")


def test_http_mode_requires_the_signing_secret(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox()
    settings = Settings(
        slack=SlackSettings(bot_token=SecretStr(SLACK_BOT_TOKEN), base_url=slack.api_url)
    )
    with pytest.raises(ConfigError, match="SLACK__SIGNING_SECRET is not set"):
        http_app(engine, settings)
    settings.slack.signing_secret = SecretStr(SECRET)
    assert http_app(engine, settings).routes


def test_socket_mode_requires_an_app_token(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    settings = Settings(
        slack=SlackSettings(bot_token=SecretStr(SLACK_BOT_TOKEN), base_url=slack.api_url)
    )
    with pytest.raises(ConfigError, match="SLACK__APP_TOKEN is not set"):
        socket_client(engine, settings)
    settings.slack.app_token = SecretStr(SLACK_BOT_TOKEN)
    with pytest.raises(ConfigError, match="starts with xapp-"):
        socket_client(engine, settings)


def test_serve_command_names_the_missing_secret(sqlite_url: str) -> None:
    env = {
        "DATABASE_URL": sqlite_url,
        "SLACK__BOT_TOKEN": SLACK_BOT_TOKEN,
        "SLACK__SIGNING_SECRET": "",
        "SLACK__APP_TOKEN": "",
    }
    runner = CliRunner()
    http = runner.invoke(cli_app, ["serve", "--port", "0"], env=env)
    assert http.exit_code == 1
    assert "SLACK__SIGNING_SECRET is not set" in http.stderr
    socket = runner.invoke(cli_app, ["serve", "--socket-mode"], env=env)
    assert socket.exit_code == 1
    assert "SLACK__APP_TOKEN is not set" in socket.stderr


def test_signed_requests_arrive_over_real_http(gated: tuple[World, _Gate, str]) -> None:
    world, gate, app_url = gated
    gate.open.set()
    body = form(world.click(ACTION_ACKNOWLEDGE))
    stale = sign(body, timestamp=int(time.time()) - 3600)
    assert httpx.post(f"{app_url}/slack/actions", content=body, headers=stale).status_code == 401
    assert httpx.post(f"{app_url}/slack/actions", content=body, headers=sign(body)).is_success
    assert _wait_for(lambda: bool(world.message.get("edited")))
    with Session(world.engine) as session:
        acked = session.exec(
            select(Alert.acknowledged_by).where(col(Alert.id) == world.alert_id)
        ).one()
    assert acked == "jo@example.com"
