"""The Slack emulator: it answers slack_sdk's requests like Slack, in Slack's documented shapes.

Response shapes are checked against Slack's published OpenAPI description, read from
`VENDOR_SPECS_DIR` (default: the `shared/vendor-specs` folder beside the repository).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from notifications.slack import SlackAuthError, check_auth
from sandbox.slack import SLACK_BOT_TOKEN, RateLimit, channel_id, dm_channel_id, user_id
from tests.notifications.conftest import SandboxFactory
from tests.specs import VENDOR_SPECS

SLACK_SPEC = VENDOR_SPECS / "slack" / "slack.com.json"
# the spec wraps these objects in a bare `items`, which checks nothing on an object
USER_SCHEMA = "#/components/schemas/objs_user/items/anyOf/0"
DM_SCHEMA = (
    "#/paths/~1conversations.open/post/responses/200/content/application~1json"
    "/schema/properties/channel/items/anyOf/1"
)


@cache
def _registry() -> Registry[Any]:
    spec = json.loads(SLACK_SPEC.read_text())
    return Registry().with_resource("urn:slack", DRAFT4.create_resource(spec))


def _check(pointer: str, body: dict[str, Any]) -> None:
    if not SLACK_SPEC.exists():
        pytest.skip(f"Slack OpenAPI spec not found at {SLACK_SPEC}; set VENDOR_SPECS_DIR")
    validator = Draft4Validator({"$ref": f"urn:slack{pointer}"}, registry=_registry())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], f"{pointer} does not match Slack's spec"


def conforms(path: str, verb: str, status: str, body: dict[str, Any]) -> None:
    """Fail unless `body` matches the spec's response schema for `path`/`verb`/`status`."""
    route = "/".join(["#", "paths", path.replace("/", "~1"), verb, "responses", status])
    pointer = f"{route}/content/application~1json/schema"
    _check(pointer, body)


def _data(response: SlackResponse) -> dict[str, Any]:
    assert isinstance(response.data, dict)
    return response.data


def test_conformance_check_catches_wrong_shapes() -> None:
    with pytest.raises(AssertionError):
        conforms("/chat.postMessage", "post", "200", {"ok": True, "channel": "D1", "ts": "1"})
    with pytest.raises(AssertionError):
        _check(USER_SCHEMA, {"id": "U1"})


def test_ids_are_stable_and_slack_shaped() -> None:
    assert user_id("Jo@Example.com ") == user_id("jo@example.com")
    assert user_id("jo@example.com") != user_id("sam@example.com")
    assert user_id("jo@example.com").startswith("U")
    assert dm_channel_id(user_id("jo@example.com")).startswith("D")
    assert channel_id("#cs-alerts") == channel_id("cs-alerts")


def test_responses_match_the_slack_spec(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    client = slack.client()
    conforms("/auth.test", "get", "200", check_auth(client))
    found = client.users_lookupByEmail(email="jo@example.com")
    assert found["user"]["id"] == user_id("jo@example.com")
    conforms("/users.lookupByEmail", "get", "200", _data(found))
    _check(USER_SCHEMA, found["user"])
    opened = client.conversations_open(users=found["user"]["id"])
    assert opened["channel"]["id"] == dm_channel_id(user_id("jo@example.com"))
    conforms("/conversations.open", "post", "200", _data(opened))
    _check(DM_SCHEMA, opened["channel"])
    again = client.conversations_open(users=found["user"]["id"])
    assert again["already_open"] is True
    conforms("/conversations.open", "post", "200", _data(again))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    posted = client.chat_postMessage(channel=opened["channel"]["id"], text="hi", blocks=blocks)
    conforms("/chat.postMessage", "post", "200", _data(posted))
    for call, kwargs, path, verb in [
        (
            client.users_lookupByEmail,
            {"email": "nobody@example.com"},
            "/users.lookupByEmail",
            "get",
        ),
        (client.chat_postMessage, {"channel": "C404", "text": "x"}, "/chat.postMessage", "post"),
        (client.conversations_open, {"users": "U404"}, "/conversations.open", "post"),
    ]:
        with pytest.raises(SlackApiError) as info:
            call(**kwargs)
        assert info.value.response.status_code == 200
        conforms(path, verb, "default", dict(info.value.response.data))
    assert slack.recorder.messages == [
        {
            "channel": opened["channel"]["id"],
            "user": user_id("jo@example.com"),
            "text": "hi",
            "blocks": blocks,
            "ts": posted["ts"],
        }
    ]


def test_form_encoded_requests_and_errors(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    auth = {"Authorization": f"Bearer {SLACK_BOT_TOKEN}"}
    url = slack.api_url
    form = httpx.post(
        f"{url}chat.postMessage",
        data={"channel": "#cs-alerts", "text": "hello", "blocks": '[{"type": "divider"}]'},
        headers=auth,
    )
    assert form.status_code == 200
    assert form.json()["channel"] == channel_id("cs-alerts")
    assert slack.recorder.messages[-1]["blocks"] == [{"type": "divider"}]
    bad_blocks = httpx.post(
        f"{url}chat.postMessage", data={"channel": "cs-alerts", "blocks": '{"a": 1}'}, headers=auth
    )
    assert bad_blocks.json() == {"ok": False, "error": "invalid_blocks"}
    query = httpx.get(
        f"{url}users.lookupByEmail", params={"email": "sam@example.com"}, headers=auth
    )
    assert query.json()["user"]["real_name"] == "Sam Reyes"
    as_param = httpx.post(f"{url}auth.test", data={"token": SLACK_BOT_TOKEN})
    assert as_param.json()["ok"] is True
    assert httpx.post(f"{url}auth.test").json() == {"ok": False, "error": "not_authed"}
    wrong = httpx.post(f"{url}auth.test", headers={"Authorization": "Bearer xoxb-wrong"})
    assert (wrong.status_code, wrong.json()) == (200, {"ok": False, "error": "invalid_auth"})
    empty = httpx.post(f"{url}chat.postMessage", data={"channel": "cs-alerts"}, headers=auth)
    assert empty.json()["error"] == "no_text"


def test_rate_limit_per_channel(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox(rate_limit=RateLimit(per_second=0.5, burst=2))
    auth = {"Authorization": f"Bearer {SLACK_BOT_TOKEN}"}

    def post(channel: str) -> httpx.Response:
        body = {"channel": channel, "text": "x"}
        return httpx.post(f"{slack.api_url}chat.postMessage", json=body, headers=auth)

    assert [post("cs-alerts").status_code for _ in range(2)] == [200, 200]
    limited = post("cs-alerts")
    assert limited.status_code == 429
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    assert int(limited.headers["Retry-After"]) >= 1
    assert post(user_id("jo@example.com")).status_code == 200  # other channels have budget
    assert slack.recorder.rate_limited == 1
    assert len(slack.recorder.messages) == 3


def test_refused_token_is_one_clear_line_without_the_secret(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    with pytest.raises(SlackAuthError) as info:
        check_auth(slack.client(token="xoxb-not-the-right-one"))
    message = str(info.value)
    assert "SLACK__BOT_TOKEN" in message
    assert "invalid_auth" in message
    assert "xoxb-not-the-right-one" not in message
    assert "\n" not in message
    assert info.value.__suppress_context__
