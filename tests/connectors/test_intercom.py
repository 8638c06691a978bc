"""Intercom: mappers on documented shapes, fixtures and fake against the 2.11 description,
syncs into the store with several pages, the search overlap, 429s, auth and paging loops."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors import intercom
from connectors.base import Request, StartContext
from connectors.errors import AuthError, MappingError, PagingError
from connectors.identity import resolve_identities
from connectors.intercom import (
    IntercomOptions,
    ScrollPaginator,
    StartingAfterPaginator,
    map_company,
    map_conversation,
)
from reports import unmatched
from scoring.measures import ticket_volume
from settings import ConfigError, IntercomSettings, Settings
from store.models import (
    Account,
    ExternalLink,
    QuarantinedRecord,
    SurveyResponse,
    SyncState,
    Ticket,
)
from tests.connectors.fake_intercom import NOW, TOKEN, FakeIntercom
from tests.connectors.fakes import load
from tests.connectors.worlds import intercom_world
from tests.specs import specs_dir

SPEC = "intercom/api.intercom.io.2.11.yaml"
ACME, GLOBEX, INITECH, UMBRELLA, HOOLI = (f"6657a1c08a68186f43bafa0{n}" for n in range(1, 6))


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def _conversation(index: int, *companies: str) -> dict[str, Any]:
    return {**load("intercom", "conversations.json")[index], "company_ids": list(companies)}


# Mappers -------------------------------------------------------------------------------


def test_company_maps_to_an_external_link() -> None:
    companies = load("intercom", "companies.json")
    [link] = map_company(companies[0])
    assert link.model is ExternalLink
    assert link.values == {
        "external_id": ACME,
        "kind": "company",
        "name": "Acme Corp",
        "domain": "acme.com",
        "crm_hint": "5001",
        "deleted_at": None,
        "updated_at": _at("2025-06-01T10:00"),
    }
    assert map_company(companies[2])[0].values["domain"] is None  # website ""
    umbrella = map_company(companies[3])[0].values
    assert (umbrella["crm_hint"], umbrella["domain"]) == ("cust_8812", "umbrella.example")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "has no id"),
        ({"website": 42}, "website 42 is not text"),
        ({"company_id": {"crm": "5001"}}, "is not an id"),
        ({"updated_at": "yesterday"}, "not a Unix time"),
    ],
)
def test_company_of_a_bad_shape_is_a_mapping_error(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        map_company({**load("intercom", "companies.json")[0], **change})


def test_conversation_maps_state_priority_solved_at_and_company() -> None:
    [open_] = map_conversation(_conversation(0, ACME))
    assert open_.model is Ticket
    assert open_.values == {
        "external_id": "101",
        "account_ref": ACME,
        "subject": "Cannot export reports",
        "status": "open",
        "priority": "high",
        "satisfaction": None,
        "created_at": _at("2025-05-28T09:00"),
        "updated_at": _at("2025-06-02T10:00"),
        "solved_at": None,
        "deleted_at": None,
    }
    closed, _ = map_conversation(_conversation(1, ACME))
    assert closed.values["status"] == "closed"
    assert closed.values["solved_at"] == _at("2025-06-03T09:30")  # the last close, not the first
    assert closed.values["subject"] is None  # no title, empty source subject
    [snoozed] = map_conversation(_conversation(2, GLOBEX))
    assert (snoozed.values["status"], snoozed.values["priority"]) == ("pending", None)
    no_stats, _ = map_conversation(_conversation(3, UMBRELLA, HOOLI))
    assert no_stats.values["solved_at"] is None  # scoring falls back to updated_at
    assert no_stats.values["account_ref"] == UMBRELLA
    [unknown] = map_conversation(_conversation(4))
    assert unknown.values["account_ref"] is None


def test_rating_becomes_a_csat_survey_response_keyed_by_conversation() -> None:
    ticket, answer = map_conversation(_conversation(1, ACME))
    assert ticket.values["satisfaction"] == "good"
    assert answer.model is SurveyResponse
    assert answer.values == {
        "external_id": "102",
        "account_ref": ACME,
        "ticket_ref": "102",
        "kind": "csat",
        "score": 5,
        "scale_max": 5,
        "comment": "Quick fix, thanks",
        "responded_at": _at("2025-06-03T10:00"),
    }
    ticket, answer = map_conversation(_conversation(3, UMBRELLA))
    assert (ticket.values["satisfaction"], answer.values["score"]) == ("bad", 2)
    assert answer.values["comment"] is None  # an empty remark


@pytest.mark.parametrize("rating", [None, {}, {"rating": None}])
def test_unrated_conversation_has_no_survey_response(rating: Any) -> None:
    [ticket] = map_conversation({**_conversation(1), "conversation_rating": rating})
    assert ticket.values["satisfaction"] is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"state": "archived"}, "state 'archived' is not open, closed or snoozed"),
        ({"priority": "urgent"}, "priority 'urgent'"),
        ({"updated_at": None}, "updated_at is missing"),
        ({"created_at": "2025-06-01"}, "not a Unix time"),
        ({"statistics": []}, "statistics is not an object"),
        ({"conversation_rating": {"rating": 7}}, "rating 7 is not 1 to 5"),
        ({"conversation_rating": {"rating": True}}, "rating True is not 1 to 5"),
        ({"company_ids": "6657"}, "company_ids is not a list"),
    ],
)
def test_conversation_of_a_bad_shape_is_a_mapping_error(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MappingError, match=reason):
        map_conversation({**_conversation(1, ACME), **change})


# Paginators ----------------------------------------------------------------------------


def test_starting_after_goes_into_the_search_pagination_and_stops_on_a_repeat() -> None:
    paginator = StartingAfterPaginator()
    first = Request(
        "POST", "/conversations/search", json={"query": {}, "pagination": {"per_page": 2}}
    )
    paginator.update({"pages": {"next": {"per_page": 2, "starting_after": "WzEsMl0="}}})
    second = paginator.next_request(first)
    assert second.json == {"query": {}, "pagination": {"per_page": 2, "starting_after": "WzEsMl0="}}
    with pytest.raises(PagingError, match="repeated"):
        paginator.update({"pages": {"next": {"per_page": 2, "starting_after": "WzEsMl0="}}})
    paginator.update({"pages": {"type": "pages", "next": None}})
    assert not paginator.has_more


def test_scroll_keeps_one_param_and_ends_on_an_empty_page() -> None:
    paginator = ScrollPaginator()
    request = Request("GET", "/companies/scroll")
    paginator.update({"data": [{"id": "a"}], "scroll_param": "s-1"})
    assert paginator.next_request(request).params == {"scroll_param": "s-1"}
    paginator.update({"data": [{"id": "b"}], "scroll_param": "s-1"})  # same param, new page
    with pytest.raises(PagingError, match="repeated"):
        paginator.update({"data": [{"id": "b"}], "scroll_param": "s-1"})
    paginator.update({"data": [], "scroll_param": "s-1"})
    assert not paginator.has_more


# The 2.11 description ------------------------------------------------------------------


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` as JSON Schema: the schema or null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [{"type": "null"}, converted]}
    return converted


@cache
def _components() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (to read the Intercom spec) is not installed")
    components: dict[str, Any] = _nullable(yaml.safe_load((specs_dir() / SPEC).read_text()))[
        "components"
    ]
    # The 2.11 description refers to custom_attributes without defining it.
    components["schemas"].setdefault("custom_attributes", {"type": "object"})
    return components


def _validate(schema: str, instance: Any) -> None:
    root = {"$ref": f"#/components/schemas/{schema}", "components": _components()}
    jsonschema.Draft202012Validator(root).validate(instance)


@pytest.mark.parametrize(
    ("schema", "fixture"),
    [
        ("company", "companies.json"),
        ("contact", "contacts.json"),
        ("conversation_list_item", "conversations.json"),
    ],
)
def test_fixtures_match_the_spec(schema: str, fixture: str) -> None:
    for item in load("intercom", fixture):
        _validate(schema, item)


def _answer(
    vendor: FakeIntercom, method: str, path: str, body: Any = None, token: str = TOKEN
) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Intercom-Version": "2.11"}
    request = httpx.Request(method, f"https://api.intercom.io{path}", json=body, headers=headers)
    return vendor.handle(request).json()


def test_connector_requests_and_fake_answers_match_the_spec() -> None:
    world = intercom_world()
    vendor: FakeIntercom = world.vendor
    companies, conversations = (world.connector.stream(n) for n in ("companies", "conversations"))
    start = StartContext(None, None, NOW, {})
    fetcher = world.connector.open()
    try:
        opening, request = companies.first_request(start), conversations.first_request(start)
        assert opening is not None
        assert request is not None
        scroll = fetcher.fetch(opening)
        first = fetcher.fetch(request)
        paginator = conversations.paginator()
        paginator.update(first)
        second = fetcher.fetch(paginator.next_request(request))
        assert conversations.enrich is not None
        conversations.enrich(fetcher, first["conversations"])
    finally:
        fetcher.close()
    _validate("company_scroll", scroll)
    _validate("paginated_conversation_response", first)
    _validate("paginated_conversation_response", second)
    assert [route for route, _ in vendor.bodies] == ["conversations", "conversations", "contacts"]
    for _route, body in vendor.bodies:
        _validate("search_request", body)
    contacts = _answer(vendor, "POST", "/contacts/search", vendor.bodies[-1][1])
    assert len(contacts["data"]) == 2
    _validate("contact_list", contacts)
    _validate("error", _answer(vendor, "GET", "/companies/scroll", token="wrong"))
    _validate("error", vendor.rate_limited("7").json())


# Syncs ---------------------------------------------------------------------------------


def test_full_sync_maps_companies_conversations_and_ratings(engine: Engine) -> None:
    world = intercom_world()
    results = world.sync(engine)
    assert {r.stream: (r.status, r.records, r.pages) for r in results.values()} == {
        "companies": ("ok", 5, 4),  # three pages of companies, then the empty end of the scroll
        "conversations": ("ok", 6, 3),
    }
    vendor = world.vendor
    assert vendor.versions == {"2.11"}
    params = vendor.scroll_params
    assert params[0] is None
    assert len(set(params[1:])) == 1  # one scroll_param for the whole scroll
    assert vendor.calls("contacts") == 3  # one contact lookup per page of conversations
    links = {link.external_id: link for link in _rows(engine, ExternalLink)}
    assert (links[ACME].crm_hint, links[ACME].domain) == ("5001", "acme.com")
    tickets = {t.external_id: t for t in _rows(engine, Ticket)}
    assert {k: t.account_ref for k, t in tickets.items()} == {
        "101": ACME,
        "102": ACME,
        "103": GLOBEX,
        "104": UMBRELLA,  # the contact's first company
        "105": None,  # a contact without a company
        "106": INITECH,
    }
    assert tickets["103"].status == "pending"
    assert tickets["102"].solved_at == _at("2025-06-03T09:30")
    answers = {
        a.external_id: (a.score, a.scale_max, a.ticket_ref) for a in _rows(engine, SurveyResponse)
    }
    assert answers == {"102": (5, 5, "102"), "104": (2, 5, "104"), "106": (4, 5, "106")}
    with Session(engine) as session:
        state = session.get(SyncState, ("intercom", "conversations"))
        assert state is not None
        assert state.cursor == NOW.isoformat()

        session.add(
            Account(source="hubspot", external_id="5001", name="Acme Corp", domain="acme.com")
        )
        session.commit()
        resolve_identities(session)
        session.commit()
        acme = session.scalars(select(Account)).one()
    assert {t.external_id for t in _rows(engine, Ticket) if t.account_id == acme.id} == {
        "101",
        "102",
    }
    assert [a.account_id for a in _rows(engine, SurveyResponse) if a.external_id == "102"] == [
        acme.id
    ]

    again = world.sync(engine)
    assert (again["conversations"].records, again["conversations"].pages) == (0, 1)
    assert len(_rows(engine, Ticket)) == 6


@pytest.mark.parametrize(
    ("overlap", "status"), [(timedelta(days=1), "closed"), (timedelta(0), "open")]
)
def test_search_starts_a_day_early_so_day_granular_filters_miss_nothing(
    engine: Engine, overlap: timedelta, status: str
) -> None:
    """Intercom may match `updated_at >` by calendar day: from the cursor's own day on, a
    conversation updated later that same day is missed without the overlap."""
    world = intercom_world(options=IntercomOptions(search_overlap=overlap))
    world.sync(engine, ["conversations"])
    world.now = world.vendor.now = NOW + timedelta(hours=6)
    changed = next(c for c in world.vendor.conversations if c["id"] == "105")
    changed.update(
        state="closed", open=False, updated_at=int((NOW + timedelta(minutes=30)).timestamp())
    )
    world.sync(engine, ["conversations"])
    searches = [body for route, body in world.vendor.bodies if route == "conversations"]
    since = NOW - timedelta(minutes=10) - overlap  # the committed cursor, the lookback, the overlap
    assert searches[-1]["query"] == {
        "field": "updated_at",
        "operator": ">",
        "value": int(since.timestamp()),
    }
    assert {t.external_id: t.status for t in _rows(engine, Ticket)}["105"] == status


def test_rate_limit_is_waited_out_then_retried(engine: Engine) -> None:
    world = intercom_world()
    world.vendor.throttle["conversations"] = "7"
    result = world.sync(engine, ["conversations"])["conversations"]
    assert result.status == "ok", result.error
    assert world.vendor.calls("conversations") == 4  # three pages and one retry
    assert world.sleeps == [7.0]  # waited until X-RateLimit-Reset, once


def test_wrong_token_is_one_line_naming_the_setting(engine: Engine) -> None:
    secret = "dG9rOlJFQ09HTklTQUJMRS1TRUNSRVQtMDA0Mg=="
    results = intercom_world(token=secret).sync(engine)
    error = results["companies"].exception
    assert isinstance(error, AuthError)
    assert str(error) == (
        "intercom rejected the access token (HTTP 401): check INTERCOM__ACCESS_TOKEN in .env"
    )
    assert secret not in str(error)
    assert "conversations" not in results  # the source stops at the first refusal


@pytest.mark.parametrize("stream", ["companies", "conversations"])
def test_a_page_that_comes_back_is_a_paging_error(engine: Engine, stream: str) -> None:
    world = intercom_world()
    world.vendor.stuck.add(stream)
    result = world.sync(engine, [stream])[stream]
    assert isinstance(result.exception, PagingError)
    assert "repeated" in str(result.exception)


def test_a_conversation_of_a_bad_shape_is_quarantined(engine: Engine) -> None:
    world = intercom_world()
    world.vendor.conversations[0] = deepcopy(world.vendor.conversations[0]) | {"state": "archived"}
    result = world.sync(engine, ["conversations"])["conversations"]
    assert (result.status, result.records, result.quarantined) == ("ok", 5, 1)
    [held] = _rows(engine, QuarantinedRecord)
    assert (held.record_key, held.stream) == ("101", "conversations")
    assert "archived" in held.reason


def test_build_without_a_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="INTERCOM__ACCESS_TOKEN"):
        intercom.build(Settings(_env_file=None, intercom=IntercomSettings()))


# Deletes: Intercom has no tombstones, so complete listings reconcile them ------------------


def test_a_reconcile_soft_deletes_vanished_companies_and_conversations(engine: Engine) -> None:
    world = intercom_world()
    first = world.sync(engine)
    assert {r.reconciled for r in first.values()} == {0}
    vendor: FakeIntercom = world.vendor
    vendor.companies = [c for c in vendor.companies if c["id"] != GLOBEX]
    vendor.conversations = [c for c in vendor.conversations if c["id"] != "101"]

    early = world.sync(engine)  # the same day: no reconcile is due yet
    assert {r.reconciled for r in early.values()} == {0}
    world.now += timedelta(days=1)
    results = world.sync(engine)
    assert {name: (r.status, r.reconciled) for name, r in results.items()} == {
        "companies": ("ok", 1),
        "conversations": ("ok", 1),
    }
    searches = [  # the first request of each sync's search
        b["query"]["value"]
        for r, b in vendor.bodies
        if r == "conversations" and "starting_after" not in b["pagination"]
    ]
    assert len(searches) == 3
    assert searches[-2] > 0, "a sync between reconciles searches from its cursor"
    assert searches[-1] == 0, "a reconcile searches from start_time: every conversation"
    links = {link.external_id: link.deleted_at for link in _rows(engine, ExternalLink)}
    assert links == {ACME: None, GLOBEX: world.now, INITECH: None, UMBRELLA: None, HOOLI: None}
    tickets = {t.external_id: t.deleted_at for t in _rows(engine, Ticket)}
    assert {k for k, at in tickets.items() if at is not None} == {"101"}


def test_scores_and_reports_leave_reconciled_deletes_out(engine: Engine) -> None:
    world = intercom_world()
    world.sync(engine)
    with Session(engine) as session:
        session.add(
            Account(source="hubspot", external_id="5001", name="Acme Corp", domain="acme.com")
        )
        session.commit()
        before = resolve_identities(session)
        session.commit()
        acme = session.scalars(select(Account)).one().id
        assert ticket_volume(session, NOW.date())[acme].details["recent"] == 2
    assert any(row["external_id"] == GLOBEX for row in unmatched(engine))

    vendor: FakeIntercom = world.vendor
    vendor.companies = [c for c in vendor.companies if c["id"] != GLOBEX]
    vendor.conversations = [c for c in vendor.conversations if c["id"] != "101"]
    world.now += timedelta(days=1)
    world.sync(engine)
    with Session(engine) as session:
        after = resolve_identities(session)
        session.commit()
        assert ticket_volume(session, NOW.date())[acme].details["recent"] == 1
    assert sum(after.values()) == sum(before.values()) - 1
    assert all(row["external_id"] != GLOBEX for row in unmatched(engine))


def test_a_company_that_comes_back_is_live_again(engine: Engine) -> None:
    world = intercom_world()
    world.sync(engine, ["companies"])
    vendor: FakeIntercom = world.vendor
    globex = next(c for c in vendor.companies if c["id"] == GLOBEX)
    vendor.companies = [c for c in vendor.companies if c["id"] != GLOBEX]
    world.now += timedelta(days=1)
    assert world.sync(engine, ["companies"])["companies"].reconciled == 1
    vendor.companies.append(globex)
    world.now += timedelta(hours=1)
    world.sync(engine, ["companies"])
    assert {link.external_id: link.deleted_at for link in _rows(engine, ExternalLink)}[
        GLOBEX
    ] is None
