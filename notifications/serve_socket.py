"""`health-agent serve --socket-mode`: the same answers, over a socket the agent opens.

For installations without a public URL: slack_sdk's built-in Socket Mode client connects
out to Slack with the app-level token (`SLACK__APP_TOKEN`, `xapp-...`), and Slack sends
button clicks, form submissions and slash commands down that socket. Each envelope goes to
the same handlers as the HTTP app; it is acknowledged through the socket with the answer's
body (Slack's 3 seconds apply here too), and the remaining work runs after the
acknowledgement. There is no signature to check: only Slack can write to the socket.
"""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from sqlalchemy import Engine

from notifications.serve import required
from notifications.serve_context import Answer, SlackContext, make_context
from notifications.serve_handlers import handle
from notifications.slack import SlackError, error_code, make_slack_client
from settings import ConfigError, Settings

__all__ = ["route_request", "run_socket_mode", "socket_client"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def route_request(
    ctx: SlackContext, client: BaseSocketModeClient, request: SocketModeRequest
) -> None:
    """Answer one envelope: acknowledge it with the handler's answer, then do the rest."""
    try:
        answer = handle(ctx, request.type, request.payload)
    except Exception:
        log.exception("a Slack %s payload could not be handled", request.type)
        answer = Answer()
    client.send_socket_mode_response(
        SocketModeResponse(envelope_id=request.envelope_id, payload=answer.body)
    )
    answer.run_later()


def socket_client(
    engine: Engine, settings: Settings, client: WebClient | None = None
) -> SocketModeClient:
    """A Socket Mode client routing to the handlers; `SLACK__APP_TOKEN` is required."""
    token = required(
        settings.slack.app_token,
        "SLACK__APP_TOKEN",
        "Socket Mode connects with an app-level token (xapp-..., scope connections:write) "
        "made on the Slack app's Basic Information page",
    )
    if not token.startswith("xapp-"):
        raise ConfigError(
            "SLACK__APP_TOKEN is not an app-level token: it starts with xapp- "
            "(the bot token, xoxb-..., goes in SLACK__BOT_TOKEN)"
        )
    web = client or make_slack_client(settings)
    socket = SocketModeClient(app_token=token, web_client=web, auto_reconnect_enabled=True)
    ctx = make_context(engine, settings, web)
    socket.socket_mode_request_listeners.append(partial(route_request, ctx))
    return socket


def _connect(socket: SocketModeClient) -> None:
    try:
        socket.connect()
    except SlackApiError as exc:
        raise SlackError(
            f"Slack refused the app-level token ({error_code(exc)}): set SLACK__APP_TOKEN to "
            "an xapp-... token with the connections:write scope"
        ) from None
    except OSError as exc:
        raise SlackError(
            f"Slack is unreachable ({exc}): check the network and SLACK__BASE_URL"
        ) from None


def run_socket_mode(socket: SocketModeClient, stop: threading.Event | None = None) -> None:
    """Connect and answer until SIGINT or SIGTERM (or `stop` is set)."""
    stop = stop or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        _connect(socket)
        stop.wait()
    finally:
        socket.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
