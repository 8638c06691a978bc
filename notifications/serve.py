"""`health-agent serve`: the small web app Slack calls when people click and type.

    POST /slack/actions    interactivity: button clicks (`block_actions`) and form
                           submissions (`view_submission`), form-encoded as `payload=<json>`
    POST /slack/commands   the slash commands /health and /sentiment, form-encoded
    GET  /healthz          {"ok": true, "database": "reachable"} (503 when it is not)

Every Slack request's signature (`X-Slack-Signature`, an HMAC of the timestamp and the raw
body with the app's signing secret, at most 300 s old) is checked by slack_sdk's
`SignatureVerifier` before anything in the body is read: a request that fails gets 401
and changes nothing. Slack wants an answer within 3 seconds, so each request is answered
with what the handler knows at once; Web API calls and the writes that follow run as
background tasks after the response has gone out.

Socket Mode (no public URL) routes the same payloads to the same handlers:
see `notifications.serve_socket`.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.signature import Clock, SignatureVerifier
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from notifications.serve_commands import handle_command
from notifications.serve_context import Answer, SlackContext, make_context
from notifications.serve_handlers import handle_interaction
from notifications.slack import make_slack_client
from settings import ConfigError, Settings

__all__ = [
    "MAX_BODY_BYTES",
    "create_app",
    "database_reachable",
    "health_routes",
    "http_app",
    "read_body",
    "required",
    "run_http",
    "slack_routes",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
"""Slack's payloads are a few kilobytes; anything this large is not from Slack."""


def required(secret: SecretStr | None, variable: str, what: str) -> str:
    """The secret's value, or a `ConfigError` naming the variable to set."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    if not value:
        raise ConfigError(f"{variable} is not set: {what}; add it to .env or the environment")
    return value


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The raw body, or None when it is larger than `limit` (by default, than any Slack
    request); read as it streams in, so an oversized body is never held whole."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _signed(verifier: SignatureVerifier, body: bytes, request: Request) -> bool:
    try:
        return verifier.is_valid(
            body=body,
            timestamp=request.headers.get("x-slack-request-timestamp"),
            signature=request.headers.get("x-slack-signature"),
        )
    except (ValueError, UnicodeDecodeError):  # a timestamp that is no number, a body not UTF-8
        return False


def _refused() -> JSONResponse:
    return JSONResponse({"ok": False, "error": "invalid_signature"}, status_code=401)


def _bad_request(error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=400)


def _form(body: bytes) -> dict[str, str]:
    """Form fields, first value each (Slack never repeats one)."""
    fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _interaction(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(_form(body).get("payload", ""))
    except json.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _respond(answer: Answer) -> Response:
    """Slack's answer now; the handler's remaining work after it has been sent."""
    later = BackgroundTask(answer.run_later) if answer.later else None
    if answer.body is None:
        return Response(status_code=200, background=later)
    return JSONResponse(answer.body, background=later)


def database_reachable(engine: Engine) -> bool:
    """True when a trivial query answers."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("database unreachable: %s", type(exc).__name__)
        return False
    return True


def slack_routes(
    ctx: SlackContext, signing_secret: str, *, clock: Clock | None = None
) -> list[BaseRoute]:
    """`/slack/actions` and `/slack/commands`; `clock` is the signature check's, for tests."""
    verifier = SignatureVerifier(signing_secret, clock or Clock())

    async def verified(request: Request) -> bytes | Response:
        body = await read_body(request)
        if body is None:
            return JSONResponse({"ok": False, "error": "too_large"}, status_code=413)
        if not _signed(verifier, body, request):
            log.warning("refused a request to %s: bad signature", request.url.path)
            return _refused()
        return body

    async def actions(request: Request) -> Response:
        body = await verified(request)
        if isinstance(body, Response):
            return body
        payload = _interaction(body)
        if payload is None:
            return _bad_request("payload_expected")
        return _respond(await run_in_threadpool(handle_interaction, ctx, payload))

    async def commands(request: Request) -> Response:
        body = await verified(request)
        if isinstance(body, Response):
            return body
        return _respond(await run_in_threadpool(handle_command, ctx, _form(body)))

    return [
        Route("/slack/actions", actions, methods=["POST"]),
        Route("/slack/commands", commands, methods=["POST"]),
    ]


def health_routes(engine: Engine) -> list[BaseRoute]:
    """`/healthz`: whether the database answers."""

    async def healthz(request: Request) -> Response:
        ok = await run_in_threadpool(database_reachable, engine)
        status = "reachable" if ok else "unreachable"
        return JSONResponse({"ok": ok, "database": status}, status_code=200 if ok else 503)

    return [Route("/healthz", healthz, methods=["GET"])]


def create_app(ctx: SlackContext, signing_secret: str, *, clock: Clock | None = None) -> Starlette:
    """The Starlette app; `clock` is the signature check's (its 300 s window), for tests."""
    return Starlette(
        routes=[*slack_routes(ctx, signing_secret, clock=clock), *health_routes(ctx.engine)]
    )


def http_app(engine: Engine, settings: Settings, client: WebClient | None = None) -> Starlette:
    """The app as configured: `SLACK__SIGNING_SECRET` and `SLACK__BOT_TOKEN` are required."""
    secret = required(
        settings.slack.signing_secret,
        "SLACK__SIGNING_SECRET",
        "the Slack app's signing secret (Basic Information page) checks every request "
        "`health-agent serve` answers; or use --socket-mode with SLACK__APP_TOKEN",
    )
    client = client or make_slack_client(settings)
    return create_app(make_context(engine, settings, client), secret)


def run_http(app: Starlette, host: str, port: int, log_level: str = "warning") -> None:
    """Serve until SIGINT or SIGTERM; uvicorn's own lines go through the agent's logging
    (JSON off a terminal, secrets redacted) rather than uvicorn's default handlers."""
    uvicorn.run(
        app, host=host, port=port, log_level=log_level.lower(), lifespan="off", log_config=None
    )
