"""What a failed Slack call means for an alert: try later, wait for a fix, or give up.

    DeferError        nothing was posted and Slack may answer later (rate limited past the
                      retries, 5xx, unreachable): the alert goes back to pending and the run
                      stops, so alerts still go out oldest first once Slack is back
    HeldError         nothing was posted and an admin must fix a setting first (a channel
                      that does not exist or the bot is not in): pending, with one line
                      naming the setting; the run goes on with other alerts
    UndeliverableError  this alert will not go out (`unroutable`, `failed`), with the reason

A refused token is `SlackAuthError` (from `notifications.slack`): nothing can go out until
SLACK__BOT_TOKEN is fixed, so the run stops and the alert stays pending. Messages never
contain the token.
"""

from __future__ import annotations

from socket import gaierror
from urllib.error import URLError

from slack_sdk.errors import SlackApiError

from notifications.slack import error_code, raise_for_auth

__all__ = [
    "CHANNEL_ERRORS",
    "DeferError",
    "HeldError",
    "UndeliverableError",
    "from_api_error",
    "from_transport_error",
]

CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


class DeferError(Exception):
    """Nothing was posted and trying later may work: back to pending, stop this run."""


class HeldError(Exception):
    """Nothing was posted and a setting must be fixed first: pending, with the fix."""


class UndeliverableError(Exception):
    """This alert will not go out; `status` is `unroutable` or `failed`."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def from_api_error(exc: SlackApiError, what: str, fix: str | None = None) -> Exception:
    """The outcome of Slack answering `ok: false` while doing `what`.

    `fix` is the setting to name when the channel is the problem (None: not a setting's
    fault, the alert fails).
    """
    raise_for_auth(exc)
    code = error_code(exc)
    status = exc.response.status_code
    if status == 429:
        return DeferError("Slack kept rate limiting; will retry on the next run")
    if status >= 500:
        return DeferError(f"Slack answered HTTP {status} {what}; will retry on the next run")
    if code in CHANNEL_ERRORS and fix is not None:
        return HeldError(f"Slack cannot post {what} ({code}): {fix}")
    return UndeliverableError("failed", f"{what}: {code}")


def _refused(exc: OSError) -> bool:
    """True when the connection was never made (so nothing can have been posted)."""
    reason = exc.reason if isinstance(exc, URLError) else exc
    return isinstance(reason, ConnectionRefusedError | gaierror)


def from_transport_error(exc: OSError, what: str, *, posting: bool) -> Exception:
    """The outcome of Slack not answering while doing `what`.

    Before anything was posted, or when the connection was refused, trying later is safe.
    A post whose answer was lost may have gone out: it is never sent again.
    """
    if not posting or _refused(exc):
        return DeferError(f"Slack unreachable {what}: {exc}; will retry on the next run")
    return UndeliverableError("failed", f"delivery uncertain, not retried: {exc}")
