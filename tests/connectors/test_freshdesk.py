"""Freshdesk: mappers on documented shapes, Link paging, updated_since, the page cap, auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors import freshdesk
from connectors.base import Request
from connectors.errors import AuthError, MappingError, PagingError
from connectors.freshdesk import (
    ITEMS,
    NEXT_LINK,
    LinkHeaderPaginator,
    UpdatedSincePaginator,
    map_company,
    map_deleted_ticket,
    map_ticket,
)
from connectors.identity import resolve_identities
from reports import unmatched
from settings import ConfigError, FreshdeskSettings, Settings
from store.models import ExternalLink, QuarantinedRecord, SyncState, Ticket
from tests.connectors.fake_freshdesk import DOMAIN, FakeFreshdesk
from tests.connectors.fakes import load
from tests.connectors.worlds import freshdesk_world


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _tickets() -> dict[int, dict[str, Any]]:
    return {t["id"]: t for t in load("freshdesk", "tickets.json")}


# Mappers -----------------------------------------------------------------------------------


def test_company_maps_to_an_external_link() -> None:
    companies = load("freshdesk", "companies.json")
    [acme] = map_company(companies[0])
    assert acme.model is ExternalLink
    assert acme.values == {
        "external_id": "48000512001",
        "kind": "company",
        "name": "Acme Corp",
        "domain": "acme.com",
        "crm_hint": "5001",
        "deleted_at": None,
        "updated_at": datetime(2025, 6, 1, 10, tzinfo=UTC),
    }
    [globex] = map_company(companies[1])
    assert (globex.values["domain"], globex.values["crm_hint"]) == ("globex.io", None)
    [initech] = map_company(companies[2])
    assert (initech.values["domain"], initech.values["crm_hint"]) == (None, "5003")
    [freelancers] = map_company(companies[4])
    assert freelancers.values["crm_hint"] is None
    [by_plan] = map_company(companies[0], crm_field="support_plan")
    assert by_plan.values["crm_hint"] == "premium"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": None}, "has no name"),
        ({"domains": "acme.com"}, "domains is not a list"),
        ({"custom_fields": ["crm_account_id"]}, "custom_fields is not an object"),
        ({"id": None}, "is not an id"),
        ({"updated_at": "yesterday"}, "not an ISO-8601 timestamp"),
    ],
)
def test_company_of_the_wrong_shape_is_a_mapping_error(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        map_company({**load("freshdesk", "companies.json")[0], **change})


@pytest.mark.parametrize(
    ("code", "status"), [(2, "open"), (3, "pending"), (4, "solved"), (5, "closed"), (6, "pending")]
)
def test_ticket_status_codes(code: int, status: str) -> None:
    [row] = map_ticket({**_tickets()[201], "status": code})
    assert row.values["status"] == status


@pytest.mark.parametrize(
    ("code", "priority"), [(1, "low"), (2, "normal"), (3, "high"), (4, "urgent")]
)
def test_ticket_priority_codes(code: int, priority: str) -> None:
    [row] = map_ticket({**_tickets()[201], "priority": code})
    assert row.values["priority"] == priority


def test_ticket_maps_to_a_ticket_row() -> None:
    tickets = _tickets()
    [row] = map_ticket(tickets[201])
    assert row.model is Ticket
    assert row.values == {
        "external_id": "201",
        "account_ref": "48000512001",
        "subject": "Cannot export reports",
        "status": "open",
        "priority": "high",
        "created_at": datetime(2025, 5, 1, 9, tzinfo=UTC),
        "updated_at": datetime(2025, 6, 1, 9, tzinfo=UTC),
        "solved_at": None,
        "deleted_at": None,
    }
    [resolved] = map_ticket(tickets[202])
    assert resolved.values["solved_at"] == datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
    [closed] = map_ticket(tickets[204])
    assert closed.values["account_ref"] is None
    assert closed.values["solved_at"] == datetime(2025, 6, 4, 8, tzinfo=UTC)
    [reopened] = map_ticket(tickets[205])  # custom status, resolved once, reopened since
    assert (reopened.values["status"], reopened.values["solved_at"]) == ("pending", None)
    [no_stats] = map_ticket({k: v for k, v in tickets[202].items() if k != "stats"})
    assert no_stats.values["solved_at"] is None


def test_deleted_ticket_is_soft_deleted_at_its_last_update() -> None:
    tickets = _tickets()
    [flagged] = map_ticket(tickets[207])
    assert flagged.values["deleted_at"] == datetime(2025, 6, 6, 9, tzinfo=UTC)
    [listed] = map_deleted_ticket({k: v for k, v in tickets[208].items() if k != "deleted"})
    assert listed.values["deleted_at"] == datetime(2025, 6, 7, 9, tzinfo=UTC)
    assert listed.values["status"] == "solved"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": 1}, "status 1 is not a Freshdesk status"),
        ({"status": "2"}, "status '2' is not a Freshdesk code"),
        ({"status": None}, "status None is not a Freshdesk code"),
        ({"priority": 5}, "priority 5 is not a Freshdesk priority"),
        ({"priority": True}, "priority True is not a Freshdesk code"),
        ({"updated_at": None}, "updated_at is missing"),
        ({"created_at": "05/01/2025"}, "not an ISO-8601 timestamp"),
        ({"company_id": {"id": 1}}, "company_id"),
        ({"id": None}, "is not an id"),
        ({"stats": ["resolved_at"]}, "stats is not an object"),
        ({"deleted": "yes"}, "deleted 'yes' is not a boolean"),
    ],
)
def test_ticket_of_the_wrong_shape_is_a_mapping_error(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        map_ticket({**_tickets()[202], **change})


# Paging ------------------------------------------------------------------------------------

FIRST = Request("GET", "/api/v2/tickets", {"updated_since": "2025-01-01T00:00:00Z"})
NEXT = (
    "https://northwind.freshdesk.com/api/v2/tickets?updated_since=2025-01-01T00%3A00%3A00Z&page=2"
)


def test_link_paginator_follows_the_query_and_keeps_the_path() -> None:
    paginator = LinkHeaderPaginator()
    paginator.update({ITEMS: [{}], NEXT_LINK: NEXT})
    assert paginator.has_more
    following = paginator.next_request(Request("GET", "/prefix/api/v2/tickets", FIRST.params))
    assert following.path == "/prefix/api/v2/tickets"
    assert following.params == {"updated_since": "2025-01-01T00:00:00Z", "page": "2"}
    paginator.update({ITEMS: [], NEXT_LINK: None})
    assert not paginator.has_more


def test_link_paginator_stops_on_a_repeated_link() -> None:
    paginator = LinkHeaderPaginator()
    paginator.update({ITEMS: [{}], NEXT_LINK: NEXT})
    with pytest.raises(PagingError, match="repeated"):
        paginator.update({ITEMS: [{}], NEXT_LINK: NEXT})


def test_updated_since_paginator_opens_a_window_per_page_and_pages_within_one_second() -> None:
    paginator = UpdatedSincePaginator(max_pages=3)
    page = {ITEMS: [{"updated_at": "2025-06-01T09:00:00Z"}], NEXT_LINK: NEXT}
    paginator.update(page)
    window = paginator.next_request(FIRST)
    assert window.params["updated_since"] == "2025-06-01T08:59:59Z"
    assert "page" not in window.params
    paginator.update(page)  # a whole page in the same second: page on within the window
    within = paginator.next_request(window)
    assert within.params["page"] == "2"
    paginator.update({**page, NEXT_LINK: NEXT.replace("page=2", "page=3")})
    with pytest.raises(PagingError, match="pages of tickets updated in one second"):
        paginator.update({**page, NEXT_LINK: NEXT.replace("page=2", "page=4")})


# Syncs into the store ----------------------------------------------------------------------


def test_full_sync_pages_and_always_sends_updated_since(engine: Engine) -> None:
    world = freshdesk_world()
    results = world.sync(engine)
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(results, "ok")
    assert (results["companies"].pages, results["companies"].records) == (3, 5)
    # each page is a fresh window opening a second before the last update read, so a ticket
    # at that second is read again: more records read than stored, none missed
    assert results["tickets"].records >= 7
    assert len(_rows(engine, ExternalLink)) == 5
    tickets = {t.external_id: t for t in _rows(engine, Ticket)}
    assert "206" in tickets, "a ticket older than 30 days needs updated_since"
    assert {k for k, t in tickets.items() if t.deleted_at is not None} == {"207", "208", "209"}
    assert tickets["201"].status == "open"
    assert tickets["201"].account_ref == "48000512001"

    vendor: FakeFreshdesk = world.vendor
    for route in ("tickets", "deleted_tickets"):
        sent = vendor.params(route)
        assert sent, route
        assert sent[0]["updated_since"] == "2000-01-01T00:00:00Z"
        windows = [params["updated_since"] for params in sent]
        assert windows == sorted(windows)
        assert len(set(windows)) == len(windows)  # every page opens a later window
        for params in sent:
            assert (params["order_by"], params["order_type"]) == ("updated_at", "asc")
            assert params["per_page"] == "2"
            assert "include" not in params
            assert "page" not in params  # no offsets to shift under a changing list
    assert all(p.get("filter") == "deleted" for p in vendor.params("deleted_tickets"))
    with Session(engine) as session:
        state = session.get(SyncState, ("freshdesk", "tickets"))
        deleted_state = session.get(SyncState, ("freshdesk", "deleted_tickets"))
    assert state is not None
    assert state.cursor == "2025-06-09T09:00:00+00:00"
    assert deleted_state is not None
    assert deleted_state.cursor == "2025-06-08T09:00:00+00:00"


def test_second_sync_fetches_nothing_new_then_picks_up_a_change(engine: Engine) -> None:
    world = freshdesk_world()
    world.sync(engine)
    before = {m: _count(engine, m) for m in (Ticket, ExternalLink)}
    again = world.sync(engine, ["tickets", "deleted_tickets"])
    assert {m: _count(engine, m) for m in (Ticket, ExternalLink)} == before
    assert {name: r.pages for name, r in again.items()} == {"tickets": 1, "deleted_tickets": 1}
    vendor: FakeFreshdesk = world.vendor
    # The committed cursor minus the ten-minute lookback.
    assert vendor.params("tickets")[-1]["updated_since"] == "2025-06-09T08:50:00Z"

    changed = next(t for t in vendor.tickets if t["id"] == 201)
    changed.update(status=4, updated_at="2025-06-10T08:00:00Z")
    third = world.sync(engine, ["tickets"])["tickets"]
    assert (third.records, third.cursor) == (2, "2025-06-10T08:00:00+00:00")
    tickets = {t.external_id: t for t in _rows(engine, Ticket)}
    assert tickets["201"].status == "solved"


def test_include_stats_gives_solve_times(engine: Engine) -> None:
    world = freshdesk_world(include_stats=True)
    world.sync(engine, ["tickets"])
    assert all(p["include"] == "stats" for p in world.vendor.params("tickets"))
    tickets = {t.external_id: t for t in _rows(engine, Ticket)}
    assert tickets["202"].solved_at == datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
    assert tickets["205"].solved_at is None


def test_rate_limit_is_waited_out_for_retry_after(engine: Engine) -> None:
    world = freshdesk_world()
    world.vendor.throttle["tickets"] = "7"
    result = world.sync(engine, ["tickets"])["tickets"]
    assert result.status == "ok", result.error
    assert world.sleeps == [7.0]
    assert world.vendor.calls("tickets") == result.pages + 1


def test_low_remaining_quota_slows_down(engine: Engine) -> None:
    world = freshdesk_world()
    world.vendor.response_headers["X-RateLimit-Remaining"] = "3"
    result = world.sync(engine, ["companies"])["companies"]
    assert result.status == "ok", result.error
    assert world.sleeps == [15.0, 15.0]  # a minute spread over the 3 left, before pages 2 and 3


def test_wrong_api_key_names_the_setting_and_never_the_key(engine: Engine) -> None:
    secret = "fd-RECOGNISABLE-SECRET-0042"
    world = freshdesk_world(token=secret)
    results = world.sync(engine)
    assert list(results) == ["companies"]  # an auth failure stops the source
    error = results["companies"].exception
    assert isinstance(error, AuthError)
    assert str(error) == (
        "freshdesk rejected the API key (HTTP 401): check FRESHDESK__API_KEY in .env"
    )
    assert "\n" not in str(error)
    assert secret not in str(error)
    assert secret not in repr(world.connector)


def test_a_ticket_changing_mid_sync_shifts_no_other_ticket_out_of_reach(engine: Engine) -> None:
    world = freshdesk_world()
    vendor: FakeFreshdesk = world.vendor
    serve = vendor.serve
    first = sorted(vendor.tickets, key=lambda t: t["updated_at"])[0]

    def changing(route: str, request: httpx.Request) -> httpx.Response:
        response = serve(route, request)
        if route == "tickets" and len(vendor.params("tickets")) == 1:
            first["updated_at"] = "2025-06-10T11:00:00Z"  # moves to the end of the list
        return response

    vendor.serve = changing  # type: ignore[method-assign]
    result = world.sync(engine, ["tickets"])["tickets"]
    assert result.status == "ok", result.error
    live = {t.external_id for t in _rows(engine, Ticket) if t.deleted_at is None}
    expected = {str(t["id"]) for t in vendor.tickets if not t.get("deleted") and not t.get("spam")}
    assert live == expected  # with offsets, the ticket sliding over a page boundary is lost


def test_page_cap_on_one_second_is_a_paging_error(engine: Engine) -> None:
    world = freshdesk_world(max_pages=2)
    for ticket in world.vendor.tickets:
        ticket["updated_at"] = "2025-06-01T10:00:00Z"
    result = world.sync(engine, ["tickets"])["tickets"]
    assert isinstance(result.exception, PagingError)


def test_ticket_of_the_wrong_shape_is_quarantined_and_the_rest_synced(engine: Engine) -> None:
    world = freshdesk_world()
    broken = next(t for t in world.vendor.tickets if t["id"] == 203)
    broken["priority"] = "high"
    result = world.sync(engine, ["tickets"])["tickets"]
    assert result.status == "ok"
    assert result.quarantined >= 1
    assert len([t for t in _rows(engine, Ticket) if t.deleted_at is None]) == 6
    [held] = _rows(engine, QuarantinedRecord)
    assert (held.stream, held.record_key) == ("tickets", "203")
    assert "priority 'high' is not a Freshdesk code" in (held.reason or "")


def test_build_refuses_missing_settings() -> None:
    settings = Settings(_env_file=None, freshdesk=FreshdeskSettings(domain=DOMAIN))
    with pytest.raises(ConfigError, match="FRESHDESK__API_KEY"):
        freshdesk.build(settings)


# Deletes: companies have no deleted filter, so complete listings reconcile them -----------


def test_a_reconcile_soft_deletes_a_vanished_company_and_readers_leave_it_out(
    engine: Engine,
) -> None:
    world = freshdesk_world()
    world.sync(engine)
    vendor: FakeFreshdesk = world.vendor
    vendor.companies = [c for c in vendor.companies if c["id"] != 48000512003]
    world.now += timedelta(days=1)
    results = world.sync(engine)
    assert {name: (r.status, r.reconciled) for name, r in results.items()} == {
        "companies": ("ok", 1),
        "tickets": ("ok", 0),
        "deleted_tickets": ("ok", 0),
    }
    links = {link.external_id: link.deleted_at for link in _rows(engine, ExternalLink)}
    assert {k for k, at in links.items() if at is not None} == {"48000512003"}
    assert links["48000512003"] == world.now
    with Session(engine) as session:
        assert sum(resolve_identities(session).values()) == 4
    assert "48000512003" not in {row["external_id"] for row in unmatched(engine)}


def test_an_empty_company_list_deletes_nothing_and_says_so(engine: Engine) -> None:
    world = freshdesk_world()
    world.sync(engine)
    world.vendor.companies = []  # e.g. an agent whose role no longer sees companies
    world.now += timedelta(days=1)
    result = world.sync(engine, ["companies"])["companies"]
    assert result.status == "refused"
    assert "showed 0 of 5 live rows" in (result.error or "")
    assert all(link.deleted_at is None for link in _rows(engine, ExternalLink))
