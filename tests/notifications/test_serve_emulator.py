"""The Slack emulator's interactive methods answer in the shapes of Slack's published spec."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError

from notifications.serve_blocks import sentiment_modal
from sandbox.slack import user_id
from tests.notifications.conftest import SandboxFactory
from tests.notifications.test_slack_emulator import conforms

JO = "jo@example.com"


def _error(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return str(caught.value.response["error"])


def test_users_info_answers_the_profile_with_its_email(slack_sandbox: SandboxFactory) -> None:
    client = slack_sandbox().client()
    found = client.users_info(user=user_id(JO))
    assert isinstance(found.data, dict)
    conforms("/users.info", "get", "200", found.data)
    assert found["user"]["profile"]["email"] == JO
    assert _error(lambda: client.users_info(user="U0NOBODY00")) == "user_not_found"


def test_chat_update_edits_the_posted_message(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    client = slack.client()
    dm = client.conversations_open(users=user_id(JO))["channel"]["id"]
    posted = client.chat_postMessage(channel=dm, text="Acme dropped to red")
    updated = client.chat_update(channel=dm, ts=posted["ts"], text="Acme dropped (acknowledged)")
    assert isinstance(updated.data, dict)
    conforms("/chat.update", "post", "200", updated.data)
    [message] = slack.recorder.messages
    assert (message["text"], message["edited"]) == ("Acme dropped (acknowledged)", True)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]
    # the SDK warns about blocks without text, so these go as raw calls
    client.api_call("chat.update", json={"channel": dm, "ts": posted["ts"], "blocks": blocks})
    assert (message["text"], message["blocks"]) == ("Acme dropped (acknowledged)", blocks)
    missing = _error(lambda: client.chat_update(channel=dm, ts="1.000001", text="x"))
    assert missing == "message_not_found"
    bare = {"channel": dm, "ts": posted["ts"]}
    assert _error(lambda: client.api_call("chat.update", json=bare)) == "no_text"
    odd = {**bare, "text": "x", "blocks": [{"x": 1}]}
    wrong = _error(lambda: client.api_call("chat.update", json=odd))
    assert wrong == "invalid_blocks"


def test_chat_post_ephemeral_needs_the_user_in_the_channel(slack_sandbox: SandboxFactory) -> None:
    client = slack_sandbox().client()
    dm = client.conversations_open(users=user_id(JO))["channel"]["id"]
    told = client.chat_postEphemeral(channel=dm, user=user_id(JO), text="Recorded red")
    assert isinstance(told.data, dict)
    conforms("/chat.postEphemeral", "post", "200", told.data)
    other = user_id("sam@example.com")
    not_in = _error(lambda: client.chat_postEphemeral(channel=dm, user=other, text="x"))
    assert not_in == "user_not_in_channel"
    bare = {"channel": dm, "user": user_id(JO)}  # raw: the SDK warns about a missing text
    assert _error(lambda: client.api_call("chat.postEphemeral", json=bare)) == "no_text"


def test_views_open_answers_the_view_with_its_ids(slack_sandbox: SandboxFactory) -> None:
    client = slack_sandbox().client()
    modal = sentiment_modal(7, "Acme Robotics", 3, "D123")
    opened = client.views_open(trigger_id="123.456.abc", view=modal)
    assert isinstance(opened.data, dict)
    conforms("/views.open", "get", "200", opened.data)
    view = opened["view"]
    assert view["id"].startswith("V")
    assert (view["callback_id"], view["private_metadata"]) == (
        "log_sentiment",
        modal.private_metadata,
    )
    assert view["state"] == {"values": {}}
    home = {"type": "home", "blocks": []}
    assert _error(lambda: client.views_open(trigger_id="1.2.3", view=home)) == "invalid_arguments"
    assert _error(lambda: client.views_open(trigger_id="", view=modal)) == "invalid_arguments"


def test_response_urls_are_kept_in_order(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    url = f"{slack.base_url}/hooks/commands/T0SANDBOX1/1/abc"
    assert httpx.post(url, json={"text": "first"}).text == "ok"
    assert httpx.post(url, json={"blocks": [{"type": "divider"}]}).status_code == 200
    assert httpx.post(url, json={"response_type": "ephemeral"}).status_code == 400
    assert httpx.post(url, content=b"not json").status_code == 400
    assert [r["body"] for r in slack.recorder.responses] == [
        {"text": "first"},
        {"blocks": [{"type": "divider"}]},
    ]
    assert slack.recorder.responses[0]["path"] == "commands/T0SANDBOX1/1/abc"
