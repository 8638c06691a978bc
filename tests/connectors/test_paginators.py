"""Paging strategies: tokens read, tokens placed, the end recognised, repeats refused."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Request
from connectors.errors import PagingError
from connectors.paginators import (
    CursorAfterPaginator,
    Paginator,
    SinglePagePaginator,
    StripeEndingBeforePaginator,
    StripeStartingAfterPaginator,
    ZendeskCursorExportPaginator,
    ZendeskCursorListPaginator,
    ZendeskTimeExportPaginator,
)

GET = Request("GET", "/items", {"limit": 2, "start_time": 100})
POST = Request("POST", "/search", json={"limit": 2})


def _walk(paginator: Paginator, first: Request, *bodies: dict[str, Any]) -> list[Request]:
    sent = [first]
    for body in bodies:
        paginator.update(body)
        if not paginator.has_more:
            break
        sent.append(paginator.next_request(sent[-1]))
    return sent


def test_cursor_after_in_query_and_in_body() -> None:
    pages: tuple[dict[str, Any], ...] = (
        {"paging": {"next": {"after": "2"}}},
        {"paging": {"next": {"after": "4"}}},
        {},
    )
    sent = _walk(CursorAfterPaginator(), GET, *pages)
    assert [r.params.get("after") for r in sent] == [None, "2", "4"]
    sent = _walk(CursorAfterPaginator(), POST, *pages)
    assert [(r.json or {}).get("after") for r in sent] == [None, "2", "4"]


def test_zendesk_cursor_export_swaps_start_time_for_cursor() -> None:
    pages = (
        {"after_cursor": "c1", "end_of_stream": False},
        {"after_cursor": "c2", "end_of_stream": True},
    )
    sent = _walk(ZendeskCursorExportPaginator(), GET, *pages)
    assert len(sent) == 2
    assert sent[1].params == {"limit": 2, "cursor": "c1"}


def test_zendesk_time_export_moves_start_time_to_end_time() -> None:
    pages = ({"end_time": 200, "end_of_stream": False}, {"end_time": 300, "end_of_stream": True})
    sent = _walk(ZendeskTimeExportPaginator(), GET, *pages)
    assert [r.params["start_time"] for r in sent] == [100, 200]


def test_zendesk_cursor_list_uses_page_after() -> None:
    pages = (
        {"meta": {"has_more": True, "after_cursor": "a1"}},
        {"meta": {"has_more": False, "after_cursor": "a2"}},
    )
    sent = _walk(ZendeskCursorListPaginator(), GET, *pages)
    assert [r.params.get("page[after]") for r in sent] == [None, "a1"]


def test_starting_after_uses_the_last_id() -> None:
    pages = (
        {"data": [{"id": "c9"}, {"id": "c8"}], "has_more": True},
        {"data": [{"id": "c7"}], "has_more": False},
    )
    sent = _walk(StripeStartingAfterPaginator(), GET, *pages)
    assert [r.params.get("starting_after") for r in sent] == [None, "c8"]


def test_ending_before_walks_forward_from_the_newest_id() -> None:
    pages = (
        {"data": [{"id": "e5"}, {"id": "e4"}], "has_more": True},
        {"data": [{"id": "e7"}, {"id": "e6"}], "has_more": True},
        {"data": [], "has_more": False},
    )
    sent = _walk(StripeEndingBeforePaginator(), GET, *pages)
    assert [r.params.get("ending_before") for r in sent] == [None, "e5", "e7"]


def test_single_page() -> None:
    paginator = SinglePagePaginator()
    paginator.update({"rows": []})
    assert not paginator.has_more


@pytest.mark.parametrize(
    ("paginator", "body"),
    [
        (CursorAfterPaginator(), {"paging": {"next": {"after": "2"}}}),
        (ZendeskCursorExportPaginator(), {"after_cursor": "c1", "end_of_stream": False}),
        (ZendeskTimeExportPaginator(), {"end_time": 5, "end_of_stream": False}),
        (ZendeskCursorListPaginator(), {"meta": {"has_more": True, "after_cursor": "x"}}),
        (StripeStartingAfterPaginator(), {"data": [{"id": "c1"}], "has_more": True}),
        (StripeEndingBeforePaginator(), {"data": [{"id": "e1"}], "has_more": True}),
    ],
    ids=lambda p: type(p).__name__ if isinstance(p, Paginator) else "",
)
def test_a_repeated_token_raises_paging_error(paginator: Paginator, body: dict[str, Any]) -> None:
    paginator.update(body)
    with pytest.raises(PagingError, match="repeated"):
        paginator.update(body)


def test_more_without_a_token_is_a_paging_error() -> None:
    with pytest.raises(PagingError, match="without a token"):
        StripeStartingAfterPaginator().update({"data": [], "has_more": True})


def test_no_next_request_after_the_end() -> None:
    paginator = CursorAfterPaginator()
    paginator.update({})
    with pytest.raises(PagingError):
        paginator.next_request(GET)
