"""`health-agent sources check`: can the agent read each source, and how much quota is left.

For every stream of every source, the first request a sync would send is sent once, with
retries cut short: a stream that answers is readable; one that refuses names the setting
or the permission to fix; one that cannot be reached says so. Then the quota the vendor
reported is shown, so an admin sees headroom before a large backfill. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.base import Connector, StartContext
from connectors.errors import AuthError, RetriableError, SyncError
from connectors.http import AllocationExhaustedError, HttpClient
from store.types import utcnow

__all__ = ["CheckLine", "check_connector"]


@dataclass(frozen=True)
class CheckLine:
    """One check: what was checked, whether it passed, and the detail or the fix."""

    source: str
    check: str
    ok: bool
    detail: str


def check_connector(connector: Connector, now: datetime | None = None) -> list[CheckLine]:
    """Try the first request of each stream of `connector`; one line per check."""
    now = now or utcnow()
    ctx = StartContext(cursor=None, since=now - timedelta(days=1), now=now, source_cursors={})
    lines: list[CheckLine] = []
    fetcher = connector.open()
    try:
        for spec in connector.streams:
            request = spec.first_request(ctx)
            if request is None:
                continue
            name = f"read {spec.name}"
            try:
                fetcher.fetch(request)
            except AuthError as exc:
                lines.append(CheckLine(connector.source, name, False, str(exc)))
                if "(HTTP 403)" not in str(exc):
                    break  # a rejected credential or login fails every stream the same way
                continue
            except RetriableError as exc:
                detail = f"unreachable or failing: {exc}; check the base URL and the network"
                lines.append(CheckLine(connector.source, name, False, detail))
                break
            except SyncError as exc:
                lines.append(CheckLine(connector.source, name, False, str(exc)))
                if isinstance(exc, AllocationExhaustedError):
                    break  # the vendor's allocation is spent for every stream
                continue
            lines.append(CheckLine(connector.source, name, True, "readable"))
        if isinstance(fetcher, HttpClient) and (quota := fetcher.quota_remaining()):
            left = ", ".join(f"{header} {value:g}" for header, value in sorted(quota.items()))
            lines.append(CheckLine(connector.source, "quota headroom", True, left))
    finally:
        fetcher.close()
    return lines
