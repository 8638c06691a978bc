"""The Slack Web API client the agent posts with, and the errors it turns Slack's into.

`make_slack_client` builds a `slack_sdk.WebClient` from settings with retries that the SDK
leaves out by default: HTTP 429 is waited out for `Retry-After`, 500/503 and dropped
connections are retried. Slack reports API errors as `ok: false`; the ones that mean the
bot token is wrong become `SlackAuthError`, one printable line naming `SLACK__BOT_TOKEN`
and never the token itself.

    SlackError
     +-- SlackNotConfiguredError   no bot token set
     +-- SlackAuthError            Slack refused the token (invalid_auth, not_authed...)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from settings import Settings, SlackSettings

__all__ = [
    "AUTH_ERRORS",
    "SlackAuthError",
    "SlackError",
    "SlackNotConfiguredError",
    "check_auth",
    "error_code",
    "make_slack_client",
    "raise_for_auth",
]

AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


class SlackError(Exception):
    """Slack cannot be used as configured; the message is one line, fit to print."""


class SlackNotConfiguredError(SlackError):
    """No bot token is configured."""


class SlackAuthError(SlackError):
    """Slack refused the bot token."""

    def __init__(self, code: str) -> None:
        super().__init__(
            f"Slack refused the bot token ({code}): set SLACK__BOT_TOKEN to the bot token "
            "(xoxb-...) of the installed Slack app, in .env or the environment"
        )
        self.code = code


ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`...), or `http_<status>` without one.

    Only a short snake_case word counts as a code: whatever else an answer carries (a proxy's
    page, a body repeating the request) is never repeated in errors, where a token could hide.
    """
    response: Any = exc.response
    data = response.data if isinstance(response.data, dict) else {}
    code = data.get("error")
    if isinstance(code, str) and ERROR_CODE.fullmatch(code):
        return code
    return f"http_{response.status_code}"


def raise_for_auth(exc: SlackApiError) -> None:
    """Raise `SlackAuthError` (without the SDK's traceback) when `exc` is about the token."""
    code = error_code(exc)
    if code in AUTH_ERRORS:
        raise SlackAuthError(code) from None


@contextmanager
def _auth_errors() -> Iterator[None]:
    try:
        yield
    except SlackApiError as exc:
        raise_for_auth(exc)
        raise


def make_slack_client(
    settings: Settings | SlackSettings,
    *,
    rate_limit_retries: int = 3,
    server_error_retries: int = 2,
    connection_retries: int = 2,
    backoff_seconds: float = 0.5,
    timeout: int = 30,
) -> WebClient:
    """A WebClient for the configured workspace (or emulator), with bounded retries attached.

    429 waits for `Retry-After` (`rate_limit_retries` times); HTTP 500/503 and dropped or
    refused connections are retried with exponential backoff from `backoff_seconds`.
    """
    slack = settings.slack if isinstance(settings, Settings) else settings
    token = slack.bot_token.get_secret_value() if slack.bot_token is not None else ""
    if not token:
        raise SlackNotConfiguredError(
            "Slack is not configured: set SLACK__BOT_TOKEN in .env or the environment"
        )
    base_url = slack.base_url if slack.base_url.endswith("/") else slack.base_url + "/"
    backoff = BackoffRetryIntervalCalculator(backoff_factor=backoff_seconds)
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(connection_retries, backoff),
            RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
            ServerErrorRetryHandler(server_error_retries, backoff),
        ],
    )


def check_auth(client: WebClient) -> dict[str, Any]:
    """Call `auth.test`: the bot's identity, or `SlackAuthError` for a refused token."""
    with _auth_errors():
        response = client.auth_test()
    data = response.data
    return dict(data) if isinstance(data, dict) else {}
