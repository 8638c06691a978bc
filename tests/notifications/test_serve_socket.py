"""Socket Mode: synthetic envelopes routed to the same handlers, acknowledged through the
socket before the follow-up work, with no network but the local Slack emulator."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from sqlalchemy import Engine
from sqlmodel import Session, select

from notifications import serve_socket
from notifications.messages import ACTION_ACKNOWLEDGE, ACTION_LOG_SENTIMENT
from notifications.serve_socket import route_request, run_socket_mode, socket_client
from notifications.slack import SlackError
from sandbox.slack import SLACK_BOT_TOKEN, user_id
from settings import Settings, SlackSettings
from store.models import Alert, SentimentEntry
from tests.notifications.conftest import SandboxFactory
from tests.notifications.serve_world import JO, World, build_world


class FakeSocket(BaseSocketModeClient):
    """Keeps the acknowledgements, each with the Web API methods called before it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.acks: list[tuple[dict[str, Any], list[str]]] = []

    def send_socket_mode_response(self, response: dict[str, Any] | SocketModeResponse) -> None:
        assert isinstance(response, SocketModeResponse)
        self.acks.append((response.to_dict(), self.world.slack.recorder.methods()))


@pytest.fixture
def world(engine: Engine, slack_sandbox: SandboxFactory) -> World:
    return build_world(engine, slack_sandbox(rate_limit=None))


def _envelope(kind: str, payload: dict[str, Any], envelope_id: str = "env-1") -> SocketModeRequest:
    request = SocketModeRequest.from_dict(
        {
            "type": kind,
            "envelope_id": envelope_id,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
        }
    )
    assert request is not None
    return request


def test_a_click_is_acknowledged_before_the_message_is_updated(world: World) -> None:
    socket = FakeSocket(world)
    route_request(world.ctx, socket, _envelope("interactive", world.click(ACTION_ACKNOWLEDGE)))
    [(ack, called_before)] = socket.acks
    assert ack == {"envelope_id": "env-1"}
    assert "users.info" not in called_before
    assert "chat.update" not in called_before
    with Session(world.engine) as session:
        alert = session.get(Alert, world.alert_id)
        assert alert is not None
        assert alert.acknowledged_by == JO
    assert world.message["blocks"][-1]["elements"][0]["text"] == f"Acknowledged by <@{user_id(JO)}>"


def test_a_slash_command_is_answered_in_the_acknowledgement(world: World) -> None:
    socket = FakeSocket(world)
    route_request(
        world.ctx, socket, _envelope("slash_commands", world.command("/health", "acme.com"))
    )
    [(ack, _)] = socket.acks
    assert ack["envelope_id"] == "env-1"
    assert ack["payload"]["response_type"] == "ephemeral"
    assert ack["payload"]["blocks"][0]["text"]["text"] == "Acme Robotics: 34 (red)"


def test_the_sentiment_form_over_the_socket(world: World) -> None:
    socket = FakeSocket(world)
    route_request(world.ctx, socket, _envelope("interactive", world.click(ACTION_LOG_SENTIMENT)))
    [opened] = world.calls("views.open")
    empty = world.submission(opened["view"], None, None)
    route_request(world.ctx, socket, _envelope("interactive", empty, "env-2"))
    filled = world.submission(opened["view"], "yellow", "quiet quarter")
    route_request(world.ctx, socket, _envelope("interactive", filled, "env-3"))
    acks = [ack for ack, _ in socket.acks]
    assert acks[0] == {"envelope_id": "env-1"}
    assert acks[1]["payload"]["response_action"] == "errors"
    assert acks[2] == {"envelope_id": "env-3"}
    with Session(world.engine) as session:
        [entry] = session.exec(select(SentimentEntry)).all()
    assert (entry.sentiment, entry.note, entry.origin, entry.author_email) == (
        "yellow",
        "quiet quarter",
        "slack",
        JO,
    )


def test_other_envelopes_are_acknowledged_only(world: World) -> None:
    socket = FakeSocket(world)
    calls = len(world.slack.recorder.calls)
    route_request(world.ctx, socket, _envelope("events_api", {"event": {"type": "app_mention"}}))
    route_request(world.ctx, socket, _envelope("hello", {}, "env-2"))
    assert [ack for ack, _ in socket.acks] == [{"envelope_id": "env-1"}, {"envelope_id": "env-2"}]
    assert len(world.slack.recorder.calls) == calls


def test_a_failing_handler_still_acknowledges(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(serve_socket, "handle", broken)
    socket = FakeSocket(world)
    route_request(world.ctx, socket, _envelope("interactive", world.click(ACTION_ACKNOWLEDGE)))
    assert [ack for ack, _ in socket.acks] == [{"envelope_id": "env-1"}]
    assert "could not be handled" in caplog.text


def test_the_configured_client_routes_to_the_handlers(world: World) -> None:
    settings = Settings(
        slack=SlackSettings(
            bot_token=SecretStr(SLACK_BOT_TOKEN),
            base_url=world.slack.api_url,
            app_token=SecretStr("xapp-1-A0SANDAPP1-1-abc"),
        )
    )
    client = socket_client(world.engine, settings, world.ctx.client)
    try:
        assert client.app_token == "xapp-1-A0SANDAPP1-1-abc"
        [listener] = client.socket_mode_request_listeners
        socket = FakeSocket(world)
        command = world.command("/health", "acme.com")
        listener(socket, _envelope("slash_commands", command))  # type: ignore[call-arg]
    finally:
        client.close()
    [(ack, _)] = socket.acks
    assert ack["payload"]["text"].startswith("Acme Robotics: 34 (red)")


def test_connecting_with_a_refused_token_or_no_slack_is_one_clear_error(world: World) -> None:
    settings = SlackSettings(
        bot_token=SecretStr(SLACK_BOT_TOKEN),
        base_url=world.slack.api_url,
        app_token=SecretStr("xapp-1-A0SANDAPP1-1-abc"),
    )
    before = signal.getsignal(signal.SIGINT)
    refused = socket_client(world.engine, Settings(slack=settings), world.ctx.client)
    with pytest.raises(SlackError, match="SLACK__APP_TOKEN"):
        run_socket_mode(refused, threading.Event())  # the emulator has no apps.connections.open
    nowhere = settings.model_copy(update={"base_url": "http://127.0.0.1:9/api/"})
    client = WebClient(token=SLACK_BOT_TOKEN, base_url=nowhere.base_url, retry_handlers=[])
    unreachable = socket_client(world.engine, Settings(slack=nowhere), client)
    with pytest.raises(SlackError, match="Slack is unreachable"):
        run_socket_mode(unreachable, threading.Event())
    assert signal.getsignal(signal.SIGINT) is before
