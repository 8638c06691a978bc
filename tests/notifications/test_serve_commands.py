"""The slash commands through the signed HTTP endpoint: `/health` answers at once with the
account's health, `/sentiment` records after the answer; bad input gets a usage line."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from notifications.serve_commands import HEALTH_USAGE, SENTIMENT_USAGE, parse_sentiment
from sandbox.slack import user_id
from store.db import session_scope
from store.models import Account, SentimentEntry
from tests.notifications.conftest import SandboxFactory
from tests.notifications.serve_world import JO, SAM, Asgi, World, build_world, sign


@pytest.fixture
def world(engine: Engine, slack_sandbox: SandboxFactory) -> World:
    return build_world(engine, slack_sandbox(rate_limit=None))


def _command(world: World, command: str, text: str, by: str = JO) -> Any:
    body = urlencode(world.command(command, text, by=by))
    response = Asgi(world.app).post("/slack/commands", content=body, headers=sign(body))
    assert response.status_code == 200
    return response.json() if response.content else None


def _entries(world: World) -> list[SentimentEntry]:
    with Session(world.engine) as session:
        return list(session.exec(select(SentimentEntry)).all())


def _texts(blocks: list[dict[str, Any]]) -> str:
    """Every piece of text in the blocks, one per line."""
    parts: list[str] = []
    for block in blocks:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                parts.append(block[key]["text"])
        parts.extend(f["text"] for f in block.get("fields") or [])
        parts.extend(e["text"] for e in block.get("elements") or [])
    return "\n".join(parts)


@pytest.mark.parametrize("needle", ["acme.com", "Acme Robotics", "crm-acme", "ACME ROBOTICS"])
def test_health_answers_with_score_trend_drivers_and_renewal(world: World, needle: str) -> None:
    answer = _command(world, "/health", needle)
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("Acme Robotics: 34 (red) as of 2026-03-02")
    blocks = answer["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Acme Robotics: 34 (red)"},
    }
    shown = _texts(blocks)
    assert "*Trend*\n7 d -18 · 30 d -44 · 90 d -51" in shown
    assert "*Renewal*\n2026-05-01" in shown
    assert "*ARR*\n$120,000" in shown
    assert f"*Owner*\n{JO}" in shown
    assert "*Top drivers*\n• Seat use fell to 20%" in shown
    assert "As of 2026-03-02 · confidence 90% · scorecard test-1" in shown
    assert "Moved most in 30 days: seat_utilisation -36, ticket_volume -2" in shown
    assert world.slack.recorder.calls[-1][0] == "chat.postMessage"  # no Web API call needed


def test_health_by_id_and_with_the_latest_sentiment(world: World) -> None:
    _command(world, "/sentiment", "acme.com yellow renewal call went fine")
    answer = _command(world, "/health", str(world.account_id))
    assert "*CSM sentiment*\nyellow on " in _texts(answer["blocks"])
    assert "renewal call went fine" in _texts(answer["blocks"])


def test_health_of_an_account_without_scores(world: World) -> None:
    with session_scope(world.engine) as session:
        session.add(Account(source="crm", external_id="crm-new", name="New & Co", domain="new.co"))
    answer = _command(world, "/health", "new.co")
    assert answer["text"] == "New & Co has no health score yet."
    assert "No health score yet" in _texts(answer["blocks"])
    assert "*Trend*\nno earlier score yet" in _texts(answer["blocks"])
    assert "*Owner*\n(unowned)" in _texts(answer["blocks"])


def test_health_bad_input(world: World) -> None:
    assert _command(world, "/health", "   ") == {"response_type": "ephemeral", "text": HEALTH_USAGE}
    missing = _command(world, "/health", "globex <b>")
    assert missing["text"] == (
        "No account matches “globex &lt;b&gt;”: type /health followed by an account id, "
        "CRM id, domain or exact name, e.g. acme.com"
    )
    assert "\n" not in missing["text"]


def test_health_names_the_ids_when_a_name_is_ambiguous(world: World) -> None:
    with session_scope(world.engine) as session:
        session.add(Account(source="crm", external_id="crm-2", name="Acme Robotics"))
    answer = _command(world, "/health", "acme robotics")
    assert "matches several accounts" in answer["text"]
    assert f"(id {world.account_id})" in answer["text"]


def test_sentiment_is_recorded_after_the_answer_and_confirmed(world: World) -> None:
    assert _command(world, "/sentiment", "Acme Robotics RED champion left, budget cut") is None
    [entry] = _entries(world)
    assert (entry.account_id, entry.sentiment, entry.note) == (
        world.account_id,
        "red",
        "champion left, budget cut",
    )
    assert (entry.origin, entry.author_email) == ("slack", JO)
    [reply] = world.slack.recorder.responses
    assert reply["path"].startswith("commands/")
    assert reply["body"]["response_type"] == "ephemeral"
    assert reply["body"]["text"] == "Recorded red for Acme Robotics: champion left, budget cut"


def test_sentiment_by_someone_slack_has_no_email_for(world: World) -> None:
    form = world.command("/sentiment", "acme.com green")
    form["user_id"] = "U0NOEMAIL1"
    body = urlencode(form)
    Asgi(world.app).post("/slack/commands", content=body, headers=sign(body))
    [entry] = _entries(world)
    assert (entry.sentiment, entry.note, entry.author_email) == ("green", "", "U0NOEMAIL1")


@pytest.mark.parametrize(
    "text", ["", "acme.com", "acme.com purple it is", "green", "acme.com greenish mood"]
)
def test_sentiment_bad_input_gets_the_usage_line(world: World, text: str) -> None:
    answer = _command(world, "/sentiment", text)
    assert answer == {"response_type": "ephemeral", "text": SENTIMENT_USAGE}
    assert _entries(world) == []


def test_sentiment_for_an_unknown_account(world: World) -> None:
    answer = _command(world, "/sentiment", "globex.com red lost the champion", by=SAM)
    assert answer["text"].startswith("No account matches “globex.com”: type /sentiment")
    assert _entries(world) == []
    assert world.slack.recorder.responses == []


def test_a_reply_url_not_from_slack_is_not_followed(world: World) -> None:
    form = world.command("/sentiment", "acme.com yellow")
    form["response_url"] = "http://169.254.169.254/latest/meta-data"
    body = urlencode(form)
    Asgi(world.app).post("/slack/commands", content=body, headers=sign(body))
    assert len(_entries(world)) == 1
    [told] = world.calls("chat.postEphemeral")
    assert (told["channel"], told["user"]) == (world.channel, user_id(JO))


def test_slacks_certificate_check_gets_an_empty_answer(world: World) -> None:
    body = urlencode({"ssl_check": "1", "token": "legacy-verification-token"})
    response = Asgi(world.app).post("/slack/commands", content=body, headers=sign(body))
    assert (response.status_code, response.content) == (200, b"")


def test_other_commands_are_declined(world: World) -> None:
    answer = _command(world, "/deploy", "production")
    assert answer["text"] == "This app answers /health and /sentiment, not /deploy."


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("acme.com red", ("acme.com", "red", "")),
        (
            "Green Energy Inc yellow renewal at risk",
            ("Green Energy Inc", "yellow", "renewal at risk"),
        ),
        ("Acme  Robotics GREEN  all good\nreally", ("Acme  Robotics", "green", "all good\nreally")),
        ("red red", ("red", "red", "")),
        ("acme.com", None),
        ("yellow", None),
        ("acme.com reddish", None),
    ],
)
def test_parse_sentiment(text: str, parsed: tuple[str, str, str] | None) -> None:
    assert parse_sentiment(text) == parsed
