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

Methods: `auth.test`, `users.lookupByEmail`, `conversations.open`, `chat.postMessage`, and
the file upload of `WebClient.files_upload_v2`: `files.getUploadURLExternal` answers an
`upload_url` on the emulator itself (`http://127.0.0.1:<port>/.../upload/v1/<id>`, no token,
like Slack's pre-signed one) that takes the raw bytes in a POST, then
`files.completeUploadExternal` shares the file in `channel_id` (or `channels`). Shared files
are in `recorder.files` with their bytes.

`recorder.inject(method, status)` makes the next call(s) of a method (or `"upload"`, the
POST of the bytes) fail with an HTTP status (429 comes with `Retry-After`), to exercise a
client's retries.
`recorder.outage(503)` answers every call with that status until `recorder.outage(None)`:
Slack is down. `slack_app(..., timezones={email: "Europe/Berlin"})` gives users the
time zone `users.lookupByEmail` reports (UTC otherwise).

For interactivity it also speaks `users.info`, `chat.update` (which edits the message in
`recorder.messages`), `chat.postEphemeral` and `views.open`, and takes `response_url` posts
at `POST /hooks/<path>` (kept in `recorder.responses`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import mimetypes
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
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
    responses: list[dict[str, Any]] = field(default_factory=list)
    """What was posted to a `response_url`: `{"path": ..., "body": {...}}`, in order."""
    files: list[dict[str, Any]] = field(default_factory=list)
    """Files shared by `files.completeUploadExternal`: id, name, title, channel, user (of a
    DM), data (the bytes), initial_comment, thread_ts."""
    rate_limited: int = 0
    _faults: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _down: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def outage(self, status: int | None = 503) -> None:
        """Answer every call with HTTP `status` until `outage(None)`: Slack is down."""
        with self._lock:
            self._down = status

    def inject(self, method: str, status: int, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP `status`."""
        with self._lock:
            self._faults.setdefault(method, []).extend([(status, retry_after)] * times)

    def _fault(self, method: str) -> tuple[int, int] | None:
        with self._lock:
            if self._down is not None:
                return self._down, 1
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


@dataclass
class _Upload:
    """A file between `files.getUploadURLExternal` and `files.completeUploadExternal`."""

    file_id: str
    filename: str
    length: int
    alt_txt: str
    data: bytes | None = None
    completed: bool = False


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's header, as Slack reports them for images."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


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


def _tz_fields(name: str) -> dict[str, Any]:
    """A user's `tz`, `tz_label` and `tz_offset` (seconds east of UTC, as of now)."""
    now = datetime.now(ZoneInfo(name))
    offset = now.utcoffset()
    return {
        "tz": name,
        "tz_label": now.tzname() or name,
        "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
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
        self.uploads: dict[str, _Upload] = {}  # upload id (the upload URL's last part) -> file
        self.root_url = ""
        """Where the emulator is served, from the request being answered: upload URLs use it."""

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

    def _resolve_channel_id(self, channel: str) -> tuple[str, str | None]:
        """Like `_resolve_channel`, for methods that take ids only (a name is not found)."""
        if channel not in self.open_dms and channel not in self.by_id | self.channels:
            raise _SlackError("channel_not_found")
        return self._resolve_channel(channel)

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

    def files_get_upload_url_external(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = str(params.get("filename") or "").strip()
        try:
            length = int(str(params.get("length", "")))
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        if not filename or length < 1:
            raise _SlackError("invalid_arguments")
        alt_txt = str(params.get("alt_txt") or "")
        if len(alt_txt) > 1000:
            raise _SlackError("alt_txt_too_large")
        self.seq += 1
        file_id = _stable("F", f"file:{self.seq}:{filename}")
        upload_id = _stable("", f"upload:{file_id}").lower()
        self.uploads[upload_id] = _Upload(file_id, filename, length, alt_txt)
        return {"upload_url": f"{self.root_url}/upload/v1/{upload_id}", "file_id": file_id}

    def receive_upload(self, upload_id: str, data: bytes) -> tuple[int, str]:
        """The POST of the bytes: HTTP 200 with `OK - <length>` like Slack, else an error."""
        upload = self.uploads.get(upload_id)
        if upload is None or upload.completed:
            return 404, "Not Found"
        if len(data) != upload.length:
            return 400, f"Bad Request: {len(data)} bytes sent, {upload.length} announced"
        upload.data = data
        return 200, f"OK - {len(data)}"

    def files_complete_upload_external(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except json.JSONDecodeError:
                raise _SlackError("invalid_arguments") from None
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in files)
        ):
            raise _SlackError("invalid_arguments")
        by_id = {u.file_id: u for u in self.uploads.values() if not u.completed}
        if any(by_id.get(f["id"]) is None or by_id[f["id"]].data is None for f in files):
            raise _SlackError("file_not_found")
        named = [str(params.get("channel_id") or ""), *str(params.get("channels") or "").split(",")]
        targets = [self._resolve_channel_id(c.strip()) for c in named if c.strip()]
        shared = []
        for entry in files:
            upload = by_id[entry["id"]]
            upload.completed = True
            shared.append(self._share(upload, str(entry.get("title") or upload.filename), targets))
            self._record(upload, shared[-1]["title"], targets, params)
        return {"files": shared}

    def _record(
        self,
        upload: _Upload,
        title: str,
        targets: list[tuple[str, str | None]],
        params: dict[str, Any],
    ) -> None:
        """One entry in `recorder.files` per place the file went (channel None: kept private)."""
        places: list[tuple[str | None, str | None]] = list(targets) or [(None, None)]
        for channel, user in places:
            self.recorder.files.append(
                {
                    "id": upload.file_id,
                    "name": upload.filename,
                    "title": title,
                    "channel": channel,
                    "user": user,
                    "data": upload.data,
                    "initial_comment": params.get("initial_comment"),
                    "thread_ts": params.get("thread_ts"),
                }
            )

    def _share(
        self, upload: _Upload, title: str, targets: list[tuple[str, str | None]]
    ) -> dict[str, Any]:
        """The file object Slack answers (the fields its file object schema names)."""
        data = upload.data or b""
        extension = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        url = f"{self.root_url}/files-pri/{TEAM_ID}-{upload.file_id}/{upload.filename}"
        now = int(time.time())
        found: dict[str, Any] = {
            "id": upload.file_id,
            "created": now,
            "timestamp": now,
            "name": upload.filename,
            "title": title,
            "mimetype": mimetypes.guess_type(upload.filename)[0] or "application/octet-stream",
            "filetype": extension or "binary",
            "pretty_type": extension.upper() or "Binary",
            "user": BOT_USER_ID,
            "user_team": TEAM_ID,
            "editable": False,
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": any(user is None for _, user in targets),
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": url,
            "url_private_download": url.replace("/files-pri/", "/files-pri/download/"),
            "permalink": f"https://sandbox.slack.test/files/{BOT_USER_ID}/{upload.file_id}",
            "channels": [channel for channel, user in targets if user is None],
            "groups": [],
            "ims": [channel for channel, user in targets if user is not None],
            "comments_count": 0,
            "has_rich_preview": False,
        }
        if (size := _png_size(data)) is not None:
            found["original_w"], found["original_h"] = size
        return found


def _root_url(request: Request) -> str:
    """The emulator's own address (the socket it was reached on, and its mount path)."""
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    return f"http://{host}:{port}{request.scope.get('root_path', '')}"


def _checked_blocks(params: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The `blocks` parameter as a list, refused the way Slack refuses bad blocks."""
    blocks = params.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except json.JSONDecodeError:
            raise _SlackError("invalid_blocks") from None
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(
        isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks
    ):
        raise _SlackError("invalid_blocks")
    if len(blocks) > MAX_BLOCKS:
        raise _SlackError("invalid_blocks")
    if len(json.dumps(blocks)) > MAX_BLOCKS_CHARS:
        raise _SlackError("msg_blocks_too_long")
    return blocks


class _Interactive:
    """The methods interactive apps call: who clicked, edit a message, answer one person."""

    def __init__(self, slack: _Slack) -> None:
        self.slack = slack
        self.views = 0

    def users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.slack.by_id.get(str(params.get("user", "")).strip())
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": user}

    def chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, _ = self.slack._resolve_channel(str(params.get("channel", "")))
        ts = str(params.get("ts", ""))
        messages = self.slack.recorder.messages
        found = [m for m in messages if m["channel"] == channel and m["ts"] == ts]
        if not found:
            raise _SlackError("message_not_found")
        blocks = _checked_blocks(params)
        text = params.get("text")
        if text is None and blocks is None:
            raise _SlackError("no_text")
        message = found[0]
        if text is not None:
            message["text"] = str(text)
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = True
        shown: dict[str, Any] = {
            "type": "message",
            "text": message["text"],
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
        }
        if message["blocks"]:
            shown["blocks"] = message["blocks"]
        return {"channel": channel, "ts": ts, "text": message["text"], "message": shown}

    def chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        _, recipient = self.slack._resolve_channel(str(params.get("channel", "")))
        user = str(params.get("user", "")).strip()
        if user not in self.slack.by_id or (recipient is not None and recipient != user):
            raise _SlackError("user_not_in_channel")
        if not params.get("text") and not _checked_blocks(params):
            raise _SlackError("no_text")
        self.slack.seq += 1
        return {"message_ts": f"{int(time.time()):010d}.{self.slack.seq % 1_000_000:06d}"}

    def views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError:
                raise _SlackError("invalid_json") from None
        if not params.get("trigger_id") or not isinstance(view, dict):
            raise _SlackError("invalid_arguments")
        blocks = view.get("blocks")
        if view.get("type") != "modal" or not view.get("title") or not isinstance(blocks, list):
            raise _SlackError("invalid_arguments")
        if len(blocks) > 100:
            raise _SlackError("invalid_arguments")
        self.views += 1
        view_id = _stable("V", f"{params['trigger_id']}:{self.views}")
        return {"view": _opened_view(view, view_id)}


def _opened_view(view: dict[str, Any], view_id: str) -> dict[str, Any]:
    """A view as `views.open` answers it: what was sent, plus Slack's ids and state."""
    return {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": "modal",
        "title": view["title"],
        "blocks": view["blocks"],
        "close": view.get("close"),
        "submit": view.get("submit"),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{view_id[1:9].lower()}",
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "root_view_id": view_id,
        "previous_view_id": None,
        "app_id": "A0SANDAPP1",
        "bot_id": BOT_ID,
    }


def _interactive_methods(slack: _Slack) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    methods = _Interactive(slack)
    return {
        "users.info": methods.users_info,
        "chat.update": methods.chat_update,
        "chat.postEphemeral": methods.chat_post_ephemeral,
        "views.open": methods.views_open,
    }


def _hooks(recorder: SlackRecorder) -> Callable[[Request], Awaitable[PlainTextResponse]]:
    """`response_url` posts: JSON bodies, kept in order; Slack answers `ok`."""

    async def hook(request: Request) -> PlainTextResponse:
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return PlainTextResponse("no_text", status_code=400)
        recorder.responses.append({"path": request.path_params["path"], "body": body})
        return PlainTextResponse("ok")

    return hook


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
    timezones: Mapping[str, str] | None = None,
) -> Starlette:
    """The emulator: `users` are `(email, real name)`, `channels` public channel names.

    `timezones` maps some users' emails to their IANA time zone (the others are in UTC).

    `rate_limit=None` turns rate limiting off. What it saw is in `app.state.recorder`.
    """
    slack = _Slack(users, token, channels, rate_limit, clock)
    for email, tz in (timezones or {}).items():
        slack.users[email.strip().lower()].update(_tz_fields(tz))
    methods: dict[str, Callable[[dict[str, Any]], dict[str, Any] | int]] = {
        "auth.test": slack.auth_test,
        "users.lookupByEmail": slack.users_lookup_by_email,
        "conversations.open": slack.conversations_open,
        "chat.postMessage": slack.chat_post_message,
        "files.getUploadURLExternal": slack.files_get_upload_url_external,
        "files.completeUploadExternal": slack.files_complete_upload_external,
    }
    methods.update(_interactive_methods(slack))

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
            slack.root_url = _root_url(request)
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

    async def upload(request: Request) -> PlainTextResponse:
        fault = slack.recorder._fault("upload")
        if fault is not None:
            return PlainTextResponse("Service Unavailable", status_code=fault[0])
        status, body = slack.receive_upload(request.path_params["upload_id"], await request.body())
        return PlainTextResponse(body, status_code=status)

    app = Starlette(
        routes=[
            Route("/api/{method}", api, methods=["GET", "POST"]),
            Route("/upload/v1/{upload_id}", upload, methods=["POST"]),
            Route("/hooks/{path:path}", _hooks(slack.recorder), methods=["POST"]),
        ]
    )
    app.state.recorder = slack.recorder
    return app
