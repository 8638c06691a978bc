"""What can go wrong while syncing a source, as a small tree of exception types.

    SyncError                 any failure of a sync
    ├── RetriableError        429, 5xx, transport failure: the HTTP layer retries these
    ├── AuthError             the vendor refused our credentials (401/403): fix the setting
    ├── FatalError            anything else that retrying cannot fix (4xx, bad JSON, bad file)
    ├── PagingError           a page token came back twice: the loop would never end
    └── MappingError          one record cannot be mapped: it goes to quarantine, sync goes on

Messages are one line and never contain a secret; `scrub` removes known secret values from
any text that came from elsewhere (a vendor's error body, a driver's message).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AuthError",
    "FatalError",
    "MappingError",
    "PagingError",
    "RetriableError",
    "SyncError",
    "one_line",
    "scrub",
]


class SyncError(Exception):
    """Base of every error a sync raises on purpose."""


class RetriableError(SyncError):
    """A failure that may go away: rate limited, server error, network trouble."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class AuthError(SyncError):
    """The vendor rejected our credentials; the message names the setting to fix."""


class FatalError(SyncError):
    """A failure retrying cannot fix."""


class PagingError(SyncError):
    """The vendor handed back a page token it had already given: paging would loop."""


class MappingError(SyncError):
    """One vendor record cannot become a canonical record; the reason says why."""


def one_line(text: str, limit: int = 500) -> str:
    """Collapse whitespace and newlines, and cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret value replaced by `***`, on one line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return one_line(text)
