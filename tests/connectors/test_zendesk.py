"""Zendesk: mappers on documented shapes, the export cursors, skipped offers, auth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.errors import AuthError, MappingError
from connectors.zendesk import map_organization, map_rating, map_ticket
from store.models import ExternalLink, SurveyResponse, SyncState, Ticket
from tests.connectors.fakes import load
from tests.connectors.worlds import zendesk_world


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def test_organization_maps_to_an_external_link() -> None:
    [link] = map_organization(load("zendesk", "organizations.json")[0])
    assert link.model is ExternalLink
    assert link.values == {
        "external_id": "361898904401",
        "kind": "organization",
        "name": "Acme Corp",
        "domain": "acme.com",
        "crm_hint": "5001",
        "deleted_at": None,
        "updated_at": datetime(2025, 6, 1, 10, tzinfo=UTC),
    }
    [deleted] = map_organization(load("zendesk", "organizations.json")[3])
    assert deleted.values["deleted_at"] == datetime(2025, 6, 4, 10, tzinfo=UTC)
    assert deleted.values["domain"] is None


def test_ticket_maps_status_priority_and_satisfaction() -> None:
    tickets = load("zendesk", "tickets.json")
    [solved] = map_ticket(tickets[1])
    assert solved.values["account_ref"] == "361898904401"
    assert (solved.values["status"], solved.values["priority"]) == ("solved", "normal")
    assert solved.values["satisfaction"] == "good"
    assert solved.values["deleted_at"] is None
    [unrated] = map_ticket(tickets[0])
    assert unrated.values["satisfaction"] is None
    [orphan] = map_ticket(tickets[3])
    assert orphan.values["account_ref"] is None
    [deleted] = map_ticket(tickets[4])
    assert deleted.values["deleted_at"] == datetime(2025, 6, 5, 9, tzinfo=UTC)


def test_ticket_without_timestamps_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="updated_at"):
        map_ticket({"id": 1, "status": "open", "created_at": "2025-01-01T00:00:00Z"})


def test_rating_scores_and_skips() -> None:
    ratings = load("zendesk", "satisfaction_ratings.json")
    [good] = map_rating(ratings[0])
    assert good.values == {
        "external_id": "7001",
        "ticket_ref": "1002",
        "kind": "csat",
        "score": 1,
        "scale_max": 1,
        "comment": "Quick fix, thanks",
        "responded_at": datetime(2025, 6, 2, 10, tzinfo=UTC),
    }
    [bad] = map_rating(ratings[1])
    assert bad.values["score"] == 0
    assert map_rating(ratings[2]) == []
    assert map_rating(ratings[3]) == []
    with pytest.raises(MappingError, match="not good or bad"):
        map_rating({**ratings[0], "score": "meh"})


def test_full_sync_keeps_the_ticket_cursor_and_counts_skipped_offers(engine: Engine) -> None:
    world = zendesk_world()
    results = world.sync(engine)
    assert {r.stream: (r.records, r.skipped) for r in results.values()} == {
        "organizations": (6, 0),  # the time-based export repeats each page's boundary record
        "tickets": (5, 0),
        "satisfaction_ratings": (3, 2),
    }
    assert len(_rows(engine, ExternalLink)) == 4
    tickets = {t.external_id: t for t in _rows(engine, Ticket)}
    assert tickets["1005"].deleted_at is not None
    assert len(_rows(engine, SurveyResponse)) == 3
    with Session(engine) as session:
        state = session.get(SyncState, ("zendesk", "tickets"))
    assert state is not None
    assert state.cursor == results["tickets"].cursor

    world.vendor.tickets[0]["updated_at"] = "2025-06-09T08:00:00Z"
    world.vendor.tickets[0]["status"] = "solved"
    again = world.sync(engine, ["tickets"])["tickets"]
    assert (again.records, again.pages) == (1, 1)
    assert {t.external_id: t for t in _rows(engine, Ticket)}["1001"].status == "solved"
    requests = [r for r in world.vendor.routes if r == "tickets"]
    assert len(requests) == 4


def test_wrong_token_names_both_variables(engine: Engine) -> None:
    secret = "zd-RECOGNISABLE-SECRET-0042"
    results = zendesk_world(token=secret).sync(engine)
    error = results["organizations"].exception
    assert isinstance(error, AuthError)
    assert str(error) == (
        "zendesk rejected the email or API token (HTTP 401): "
        "check ZENDESK__EMAIL and ZENDESK__API_TOKEN in .env"
    )
    assert secret not in str(error)
