"""A Slack Web API emulator for the demo and the tests: a small Starlette app.

It speaks the few methods the agent uses, the way Slack does: `POST /api/<method>` with a
form-encoded or JSON body (or `GET` with a query string), `Authorization: Bearer <token>`,
API errors as HTTP 200 with `{"ok": false, "error": ...}`, and rate limiting as HTTP 429
with `Retry-After` once a channel's message budget is spent (about one message a second
with a small burst, like Slack). User and channel ids are derived from emails and names,
so they are the same on every run.

    app = slack_app([("jo@example.com", "Jo Park")], channels=["cs-alerts"])
    ... point WebClient(base_url="http://127.0.0.1:<port>/api/") at it ...
    app.state.recorder.messages  # [{"channel", "user", "text", "blocks", "ts"}, ...]

Methods: `auth.test`, `users.lookupByEmail`, `conversations.open`, `chat.postMessage`.
`recorder.inject(method, status)` makes the next call(s) of a method fail with an HTTP
status (429 comes with `Retry-After`), to exercise a client's retries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = [
    "BOT_USER_ID",
    "SLACK_BOT_TOKEN",
    "TEAM_ID",
    "RateLimit",
    "SlackRecorder",
    "channel_id",
    "dm_channel_id",
    "slack_app",
    "user_id",
]

SLACK_BOT_TOKEN = "xoxb-sandbox-token"  # noqa: S105  # the emulator's fixed, public test token
TEAM_ID = "T0SANDBOX1"
BOT_USER_ID = "U0SANDBOT1"
BOT_ID = "B0SANDBOT1"
MAX_BLOCKS = 50
MAX_BLOCKS_CHARS = 13_000
MAX_TEXT = 40_000


def _stable(prefix: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:10]


def user_id(email: str) -> str:
    """The emulator's user id for an email: `U` plus a stable hash."""
    return _stable("U", email.strip().lower())


def dm_channel_id(user: str) -> str:
    """The id of the direct-message channel with a user."""
    return _stable("D", user)


def channel_id(name: str) -> str:
    """The id of a public channel, from its name with or without `#`."""
    return _stable("C", name.lstrip("#").lower())


@dataclass(frozen=True)
class RateLimit:
    """Per-channel token bucket for `chat.postMessage`."""

    per_second: float = 1.0
    burst: int = 3


@dataclass
class SlackRecorder:
    """What the emulator saw and sent; safe to read from another thread."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rate_limited: int = 0
    _faults: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, method: str, status: int, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP `status`."""
        with self._lock:
            self._faults.setdefault(method, []).extend([(status, retry_after)] * times)

    def _fault(self, method: str) -> tuple[int, int] | None:
        with self._lock:
            queue = self._faults.get(method)
            return queue.pop(0) if queue else None

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


class _Buckets:
    def __init__(self, limit: RateLimit | None, clock: Callable[[], float]) -> None:
        self.limit, self.clock = limit, clock
        self.state: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)

    def take(self, channel: str) -> int:
        """0 when a message may go now, else the seconds to wait."""
        if self.limit is None:
            return 0
        now = self.clock()
        tokens, at = self.state.get(channel, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - at) * self.limit.per_second)
        if tokens >= 1:
            self.state[channel] = (tokens - 1, now)
            return 0
        self.state[channel] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.limit.per_second))


class _SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _user(email: str, real_name: str) -> dict[str, Any]:
    uid = user_id(email)
    handle = email.split("@")[0]
    return {
        "id": uid,
        "team_id": TEAM_ID,
        "name": handle,
        "deleted": False,
        "real_name": real_name,
        "tz": "UTC",
        "tz_label": "Coordinated Universal Time",
        "tz_offset": 0,
        "is_admin": False,
        "is_owner": False,
        "is_bot": False,
        "is_app_user": False,
        "updated": 1_700_000_000,
        "profile": {
            "email": email,
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": handle,
            "display_name_normalized": handle,
            "avatar_hash": uid[1:9].lower(),
            "title": "",
            "phone": "",
            "skype": "",
            "status_text": "",
            "status_emoji": "",
            "fields": {},
            "team": TEAM_ID,
        },
    }


class _Slack:
    """The emulator's state and its API methods."""

    def __init__(
        self,
        users: Iterable[tuple[str, str]],
        token: str,
        channels: Iterable[str],
        rate_limit: RateLimit | None,
        clock: Callable[[], float],
    ) -> None:
        self.users = {email.strip().lower(): _user(email, name) for email, name in users}
        self.by_id = {u["id"]: u for u in self.users.values()}
        self.channels = {channel_id(name): name.lstrip("#") for name in channels}
        self.token = token
        self.open_dms: dict[str, str] = {}  # channel id -> user id
        self.buckets = _Buckets(rate_limit, clock)
        self.recorder = SlackRecorder()
        self.seq = 0

    def auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://sandbox.slack.test/",
            "team": "Sandbox",
            "user": "health-agent",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = str(params.get("email", "")).strip().lower()
        if not email:
            raise _SlackError("invalid_arguments")
        if email not in self.users:
            raise _SlackError("users_not_found")
        return {"user": self.users[email]}

    def conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users", "")).split(",") if u.strip()]
        if not users:
            raise _SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise _SlackError("too_many_users")
        uid = users[0].strip()
        if uid not in self.by_id:
            raise _SlackError("user_not_found")
        channel = dm_channel_id(uid)
        if channel in self.open_dms:
            return {"no_op": True, "already_open": True, "channel": {"id": channel}}
        self.open_dms[channel] = uid
        return {"channel": {"id": channel}}

    def _resolve_channel(self, channel: str) -> tuple[str, str | None]:
        if channel in self.open_dms:
            return channel, self.open_dms[channel]
        if channel in self.by_id:  # posting to a user id lands in the app's DM with them
            return dm_channel_id(channel), channel
        if channel in self.channels:
            return channel, None
        named = channel_id(channel)
        if named in self.channels:
            return named, None
        raise _SlackError("channel_not_found")

    def chat_post_message(self, params: dict[str, Any]) -> dict[str, Any] | int:
        channel, recipient = self._resolve_channel(str(params.get("channel", "")))
        text = str(params.get("text") or "")
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except json.JSONDecodeError:
                raise _SlackError("invalid_blocks") from None
        if blocks is not None:
            if not isinstance(blocks, list) or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks
            ):
                raise _SlackError("invalid_blocks")
            if len(blocks) > MAX_BLOCKS:
                raise _SlackError("invalid_blocks")
            if len(json.dumps(blocks)) > MAX_BLOCKS_CHARS:
                raise _SlackError("msg_blocks_too_long")
        if not text and not blocks:
            raise _SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise _SlackError("msg_too_long")
        wait = self.buckets.take(channel)
        if wait:
            return wait
        self.seq += 1
        ts = f"{int(time.time()):010d}.{self.seq % 1_000_000:06d}"
        message: dict[str, Any] = {
            "type": "message",
            "text": text,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "ts": ts,
        }
        if blocks:
            message["blocks"] = blocks
        self.recorder.messages.append(
            {"channel": channel, "user": recipient, "text": text, "blocks": blocks, "ts": ts}
        )
        return {"channel": channel, "ts": ts, "message": message}


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return params
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" and body:
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            raise _SlackError("invalid_json") from None
        if not isinstance(data, dict):
            raise _SlackError("json_not_object")
        params.update(data)
    elif body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def slack_app(
    users: Iterable[tuple[str, str]],
    token: str = SLACK_BOT_TOKEN,
    *,
    channels: Iterable[str] = ("cs-alerts",),
    rate_limit: RateLimit | None = RateLimit(),
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The emulator: `users` are `(email, real name)`, `channels` public channel names.

    `rate_limit=None` turns rate limiting off. What it saw is in `app.state.recorder`.
    """
    slack = _Slack(users, token, channels, rate_limit, clock)
    methods: dict[str, Callable[[dict[str, Any]], dict[str, Any] | int]] = {
        "auth.test": slack.auth_test,
        "users.lookupByEmail": slack.users_lookup_by_email,
        "conversations.open": slack.conversations_open,
        "chat.postMessage": slack.chat_post_message,
    }

    async def api(request: Request) -> JSONResponse:
        method = request.path_params["method"]
        fault = slack.recorder._fault(method)
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": str(retry_after)} if status == 429 else {}
            error = "ratelimited" if status == 429 else "internal_error"
            return JSONResponse({"ok": False, "error": error}, status_code=status, headers=headers)
        try:
            params = await _params(request)
            slack.recorder.calls.append((method, {k: v for k, v in params.items() if k != "token"}))
            header = request.headers.get("authorization", "")
            given = header.removeprefix("Bearer ").strip() if header else params.get("token")
            if not given:
                raise _SlackError("not_authed")
            if given != slack.token:
                raise _SlackError("invalid_auth")
            if method not in methods:
                raise _SlackError("unknown_method")
            result = methods[method](params)
        except _SlackError as exc:
            return JSONResponse({"ok": False, "error": exc.error})
        if isinstance(result, int):
            slack.recorder.rate_limited += 1
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(result)},
            )
        return JSONResponse({"ok": True, **result})

    app = Starlette(routes=[Route("/api/{method}", api, methods=["GET", "POST"])])
    app.state.recorder = slack.recorder
    return app
