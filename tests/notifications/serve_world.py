"""A small world for the Slack server's tests: one red account with history, its alert
posted to the owner's DM through the Slack emulator, and payloads shaped like Slack's.

Payload shapes follow Slack's documentation of `block_actions`, `view_submission` and slash
command requests; `sign` signs a body the way Slack does (HMAC-SHA256 of
`v0:{timestamp}:{body}` with the signing secret).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.types import ASGIApp

from notifications.messages import AlertFacts, build_alert_message
from notifications.serve import create_app
from notifications.serve_context import SlackContext, make_context
from sandbox.slack import BOT_ID, BOT_USER_ID, SLACK_BOT_TOKEN, TEAM_ID, user_id
from settings import SlackSettings
from store.db import session_scope
from store.models import Account, Alert, HealthScore
from tests.notifications.conftest import SlackSandbox

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JO, SAM = "jo@example.com", "sam@example.com"
AS_OF = date(2026, 3, 2)
TRIGGER = "13345224609.738474920.8088930838d88f008e0"
HISTORY = {
    0: (34.0, "red", 20.0, 55.0),
    7: (52.0, "yellow", 50.0, 58.0),
    30: (78.0, "green", 80.0, 60.0),
    90: (85.0, "green", 90.0, 62.0),
}
"""Days before AS_OF -> (score, band, seat_utilisation score, ticket_volume score)."""


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


def form(payload: dict[str, Any]) -> str:
    """An interactivity request's body: `payload=<json>`, form-encoded."""
    return urlencode({"payload": json.dumps(payload)})


class Asgi:
    """Requests to an ASGI app in process (httpx's `ASGITransport`); each returns once the
    app is done, background tasks included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
                return await client.request(method, path, **kwargs)

        return anyio.run(send)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)


def _components(usage: float, tickets: float) -> dict[str, Any]:
    def measure(name: str, score: float, weight: float) -> dict[str, Any]:
        entry = {"value": score / 100, "score": score, "effective_weight": weight, "details": {}}
        return {"score": score, "measures": {name: entry}}

    return {
        "usage": measure("seat_utilisation", usage, 0.6),
        "support": measure("ticket_volume", tickets, 0.4),
    }


def _seed(engine: Engine) -> tuple[int, int, AlertFacts]:
    with session_scope(engine) as session:
        account = Account(
            source="crm",
            external_id="crm-acme",
            name="Acme Robotics",
            domain="acme.com",
            owner_email=JO,
            renewal_date=AS_OF + timedelta(days=60),
            arr_minor=120_000_00,
        )
        session.add(account)
        session.flush()
        assert account.id is not None
        for days, (score, band, usage, tickets) in HISTORY.items():
            session.add(
                HealthScore(
                    account_id=account.id,
                    as_of=AS_OF - timedelta(days=days),
                    score=score,
                    band=band,
                    confidence=0.9,
                    components=_components(usage, tickets),
                    drivers=[{"text": "Seat use fell to 20%", "direction": "negative"}],
                    scorecard_version="test-1",
                )
            )
        facts = AlertFacts(
            account_name="Acme Robotics",
            score=34,
            band="red",
            previous_score=52,
            previous_band="yellow",
            as_of=AS_OF,
            drivers=["Seat use fell to 20%"],
        )
        alert = Alert(
            fingerprint=f"band_drop:{account.id}",
            account_id=account.id,
            rule="band_drop",
            severity="critical",
            recipient_email=JO,
            status="sent",
            text="Acme Robotics dropped from yellow (52) to red (34)",
            payload=facts.to_payload(),
        )
        session.add(alert)
        session.flush()
        assert alert.id is not None
        return account.id, alert.id, facts


@dataclass
class World:
    engine: Engine
    slack: SlackSandbox
    ctx: SlackContext
    app: Starlette
    account_id: int
    alert_id: int
    channel: str
    ts: str

    @property
    def message(self) -> dict[str, Any]:
        """The alert's message as the emulator holds it now."""
        [found] = [m for m in self.slack.recorder.messages if m["ts"] == self.ts]
        return found

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.slack.recorder.calls if name == method]

    def hook(self, kind: str) -> str:
        return f"{self.slack.base_url}/hooks/{kind}/{TEAM_ID}/1234/abcd"

    def _user(self, email: str) -> dict[str, Any]:
        handle = email.split("@")[0]
        return {"id": user_id(email), "username": handle, "name": handle, "team_id": TEAM_ID}

    def click(
        self,
        action_id: str,
        value: int | str | None = None,
        *,
        by: str = JO,
        block_id: str | None = None,
    ) -> dict[str, Any]:
        """A `block_actions` payload: `by` pressed a button of the alert's message."""
        message = self.message
        value = self.alert_id if value is None else value
        return {
            "type": "block_actions",
            "user": self._user(by),
            "api_app_id": "A0SANDAPP1",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": self.ts,
                "channel_id": self.channel,
                "is_ephemeral": False,
            },
            "trigger_id": TRIGGER,
            "team": {"id": TEAM_ID, "domain": "sandbox"},
            "channel": {"id": self.channel, "name": "directmessage"},
            "message": {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "ts": self.ts,
                "text": message["text"],
                "blocks": message["blocks"],
            },
            "response_url": self.hook("actions"),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id or f"alert:{self.alert_id}",
                    "text": {"type": "plain_text", "text": "Button"},
                    "value": str(value),
                    "type": "button",
                    "action_ts": "1772443200.000100",
                }
            ],
        }

    def submission(
        self, view: dict[str, Any], value: str | None, note: str | None, *, by: str = JO
    ) -> dict[str, Any]:
        """A `view_submission` payload for the opened sentiment form `view`."""
        chosen = (
            None
            if value is None
            else {"text": {"type": "plain_text", "text": value}, "value": value}
        )
        values = {
            "sentiment": {"sentiment_value": {"type": "static_select", "selected_option": chosen}},
            "note": {"note_value": {"type": "plain_text_input", "value": note}},
        }
        return {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "sandbox"},
            "user": self._user(by),
            "api_app_id": "A0SANDAPP1",
            "token": "legacy-verification-token",
            "trigger_id": TRIGGER,
            "view": {**view, "state": {"values": values}},
            "response_urls": [],
            "is_enterprise_install": False,
        }

    def command(self, command: str, text: str, *, by: str = JO) -> dict[str, str]:
        """A slash command's form fields."""
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "sandbox",
            "channel_id": self.channel,
            "channel_name": "directmessage",
            "user_id": user_id(by),
            "user_name": by.split("@")[0],
            "command": command,
            "text": text,
            "api_app_id": "A0SANDAPP1",
            "is_enterprise_install": "false",
            "response_url": self.hook("commands"),
            "trigger_id": TRIGGER,
        }


def build_world(engine: Engine, slack: SlackSandbox) -> World:
    """Seed the store, post the alert to Jo's DM through the emulator, build the app."""
    account_id, alert_id, facts = _seed(engine)
    settings = SlackSettings(bot_token=SecretStr(SLACK_BOT_TOKEN), base_url=slack.api_url)
    client = slack.client()
    message = build_alert_message(facts, alert_id)
    dm = client.conversations_open(users=user_id(JO))["channel"]["id"]
    posted = client.chat_postMessage(channel=dm, **message.as_kwargs())
    channel, ts = str(posted["channel"]), str(posted["ts"])
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert.channel, alert.message_ts = channel, f"{channel} {ts}"
        session.add(alert)
    ctx = make_context(engine, settings, client)
    app = create_app(ctx, SECRET)
    return World(engine, slack, ctx, app, account_id, alert_id, channel, ts)
