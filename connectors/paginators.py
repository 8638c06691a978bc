"""Paging strategies: how to get from one page of a vendor's list to the next.

Each paginator does three things: `update` reads the next token from a response body,
`next_request` places that token in the following request, and `has_more` says whether
there is a following request at all. Computing a token is kept apart from placing it.
Every paginator remembers the tokens it has seen and raises `PagingError` when one comes
back, so a vendor that loops can never make a sync loop forever.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import Request
from connectors.errors import PagingError

__all__ = [
    "CursorAfterPaginator",
    "Paginator",
    "SinglePagePaginator",
    "StripeEndingBeforePaginator",
    "StripeStartingAfterPaginator",
    "ZendeskCursorExportPaginator",
    "ZendeskCursorListPaginator",
    "ZendeskTimeExportPaginator",
]


def _dig(body: Mapping[str, Any], *path: str) -> Any:
    value: Any = body
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _ids(body: Mapping[str, Any], key: str = "data") -> Sequence[Any]:
    items = body.get(key)
    return [item.get("id") for item in items if isinstance(item, Mapping)] if items else []


class Paginator(ABC):
    """The paging strategy of one stream for one sync; make a fresh one per sync."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._token: str | None = None
        self._more = True

    @abstractmethod
    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Whether the vendor has more after `body`, and the token that leads there."""

    @abstractmethod
    def place_token(self, request: Request, token: str) -> Request:
        """The request for the next page: `request` with `token` placed where it belongs."""

    def update(self, body: Mapping[str, Any]) -> None:
        """Read the next token from a response; raise PagingError when it repeats."""
        more, token = self.read_token(body)
        if more:
            if token is None:
                raise PagingError(f"{type(self).__name__}: more pages announced without a token")
            if token in self._seen:
                raise PagingError(f"{type(self).__name__}: page token {token[:80]!r} repeated")
            self._seen.add(token)
        self._more, self._token = more, token

    @property
    def has_more(self) -> bool:
        return self._more

    def next_request(self, request: Request) -> Request:
        if not self._more or self._token is None:
            raise PagingError(f"{type(self).__name__}: no next page to request")
        return self.place_token(request, self._token)


class SinglePagePaginator(Paginator):
    """Everything comes in one response."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        return False, None

    def place_token(self, request: Request, token: str) -> Request:
        return request


class CursorAfterPaginator(Paginator):
    """`paging.next.after` in the body; sent back as `after` (query for GET, body for POST)."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        after = _dig(body, "paging", "next", "after")
        return after is not None, None if after is None else str(after)

    def place_token(self, request: Request, token: str) -> Request:
        if request.method == "POST":
            return request.with_json({"after": token})
        return request.with_params({"after": token})


class ZendeskCursorExportPaginator(Paginator):
    """Cursor-based incremental export: `after_cursor` until `end_of_stream`, sent as `cursor`."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        cursor = body.get("after_cursor")
        return body.get("end_of_stream") is False, None if cursor is None else str(cursor)

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"cursor": token}, drop=("start_time",))


class ZendeskTimeExportPaginator(Paginator):
    """Time-based incremental export: `end_time` until `end_of_stream`, sent as `start_time`."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        end_time = body.get("end_time")
        return body.get("end_of_stream") is False, None if end_time is None else str(end_time)

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"start_time": int(token)})


class ZendeskCursorListPaginator(Paginator):
    """Cursor pagination of lists: `meta.has_more` and `meta.after_cursor` as `page[after]`."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        cursor = _dig(body, "meta", "after_cursor")
        return _dig(body, "meta", "has_more") is True, None if cursor is None else str(cursor)

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"page[after]": token})


class StripeStartingAfterPaginator(Paginator):
    """Lists newest first: while `has_more`, ask for the objects after the page's last id."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        ids = _ids(body)
        return body.get("has_more") is True, str(ids[-1]) if ids else None

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"starting_after": token}, drop=("ending_before",))


class StripeEndingBeforePaginator(Paginator):
    """Walk forward in time: `ending_before` the page's first (newest) id while `has_more`."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        ids = _ids(body)
        return body.get("has_more") is True, str(ids[0]) if ids else None

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"ending_before": token}, drop=("starting_after",))
