"""The fetch loop itself, on a toy connector: quarantine, failures, progress, cursors."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session

import connectors
from connectors.base import (
    Connector,
    CursorKind,
    Record,
    StreamSpec,
    max_timestamp,
    parse_iso,
    validate_record,
)
from connectors.errors import FatalError, MappingError
from connectors.http import BearerAuth, ClientOptions, HttpClient, HttpSource
from connectors.paginators import CursorAfterPaginator
from connectors.sync import ProgressEvent, SyncOptions, _advance, sync_connector
from store.models import ExternalLink, QuarantinedRecord, SyncRun, SyncState, Ticket

SECRET = "toy-secret-token-0042"
T0 = "2025-06-01T00:00:00Z"
PAGES = {
    None: {"items": [{"id": 1, "updated_at": T0}, {"id": 2}], "paging": {"next": {"after": "p2"}}},
    "p2": {"items": [{"id": 3, "updated_at": "2025-06-02T00:00:00Z"}, "not an object"]},
}


def _ticket(raw: Mapping[str, Any]) -> list[Record]:
    stamp = raw["updated_at"]  # KeyError for records of unexpected shape
    values = {"external_id": str(raw["id"]), "status": "open", "created_at": parse_iso(stamp)}
    return [Record(Ticket, {**values, "updated_at": parse_iso(stamp)})]


def _toy(mapper: Any = _ticket, pages: dict[str | None, Any] = PAGES, **spec: Any) -> Connector:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    http = HttpSource(
        source="toy",
        base_url="https://toy.test",
        auth=BearerAuth(SecretStr(SECRET)),
        credential="the token",
        settings_hint="TOY__TOKEN",
        secrets=(SecretStr(SECRET),),
    )
    options = ClientOptions(transport=httpx.MockTransport(handler), sleep=lambda _: None)
    stream = StreamSpec(
        name="tickets",
        path="/tickets",
        records_key="items",
        paginator=CursorAfterPaginator,
        mapper=mapper,
        cursor_kind=CursorKind.TIMESTAMP,
        cursor=max_timestamp(lambda r: parse_iso(r.get("updated_at"))),
        **spec,
    )
    broken = StreamSpec(
        name="broken",
        path="/tickets",
        records_key="nothing_here",
        paginator=CursorAfterPaginator,
        mapper=mapper,
    )
    return Connector(
        "toy",
        (broken, stream),
        open=lambda: HttpClient(http, options),
        secrets=(SecretStr(SECRET),),
    )


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def test_unexpected_shapes_are_quarantined_and_a_fatal_stream_does_not_stop_the_next(
    engine: Engine,
) -> None:
    events: list[ProgressEvent] = []
    results = {r.stream: r for r in sync_connector(engine, _toy(), progress=events.append)}
    broken, tickets = results["broken"], results["tickets"]
    assert broken.status == "failed"
    assert isinstance(broken.exception, FatalError)
    assert broken.error == "the broken response has no list under 'nothing_here'"
    assert (tickets.status, tickets.records, tickets.quarantined, tickets.pages) == ("ok", 2, 2, 2)
    reasons = {q.record_key: q.reason for q in _rows(engine, QuarantinedRecord)}
    assert reasons["2"] == "KeyError: 'updated_at'"
    assert any("value" in q.payload for q in _rows(engine, QuarantinedRecord))
    assert [(e.stream, e.pages, e.records, e.done) for e in events] == [
        ("broken", 0, 0, True),
        ("tickets", 1, 1, False),
        ("tickets", 2, 2, False),
        ("tickets", 2, 2, True),
    ]
    runs = {r.stream: r for r in _rows(engine, SyncRun)}
    assert (runs["tickets"].status, runs["tickets"].records, runs["tickets"].quarantined) == (
        "ok",
        2,
        2,
    )
    assert runs["tickets"].finished_at is not None
    with Session(engine) as session:
        state = session.get(SyncState, ("toy", "tickets"))
    assert state is not None
    assert state.cursor == "2025-06-02T00:00:00+00:00"


def test_a_bug_in_a_mapper_is_recorded_without_secrets_and_raised(engine: Engine) -> None:
    def buggy(raw: Mapping[str, Any]) -> list[Record]:
        raise RuntimeError(f"cannot talk to https://toy.test with {SECRET}")

    with pytest.raises(RuntimeError):
        sync_connector(engine, _toy(buggy), streams=["tickets"])
    [run] = _rows(engine, SyncRun)
    assert run.status == "failed"
    assert run.error == "RuntimeError: cannot talk to https://toy.test with ***"


def test_a_page_keeps_the_last_state_of_each_record_whatever_its_shape(engine: Engine) -> None:
    def links(raw: Mapping[str, Any]) -> list[Record]:
        values: dict[str, Any] = {"external_id": "c1", "kind": "customer"}
        if raw.get("gone"):
            values["deleted_at"] = datetime(2025, 6, 3, tzinfo=UTC)
        else:
            values.update(name=raw["name"], deleted_at=None)
        return [Record(ExternalLink, values)]

    pages: dict[str | None, Any] = {
        None: {
            "items": [{"id": 1, "name": "Old"}, {"id": 2, "gone": True}, {"id": 3, "name": "New"}]
        }
    }
    sync_connector(engine, _toy(links, pages), streams=["tickets"])
    [link] = _rows(engine, ExternalLink)
    assert (link.name, link.deleted_at) == ("New", None)


def test_validation_catches_what_the_table_would_refuse() -> None:
    with pytest.raises(MappingError, match="unknown columns"):
        validate_record(Record(Ticket, {"external_id": "1", "colour": "red"}))
    with pytest.raises(MappingError, match=r"tickets\.status is required"):
        validate_record(Record(Ticket, {"source": "x", "external_id": "1", "status": None}))
    with pytest.raises(MappingError, match=r"tickets\.created_at is required"):
        validate_record(Record(Ticket, {"source": "x", "external_id": "1", "status": "open"}))
    naive = datetime(2025, 1, 1)  # the point of the test
    with pytest.raises(MappingError, match="naive"):
        validate_record(
            Record(
                Ticket,
                {
                    "source": "x",
                    "external_id": "1",
                    "status": "open",
                    "created_at": naive,
                    "updated_at": naive,
                },
            )
        )


def test_timestamp_cursors_never_move_backwards() -> None:
    later, earlier = "2025-06-02T00:00:00+00:00", "2025-06-01T00:00:00+00:00"
    assert _advance(CursorKind.TIMESTAMP, later, earlier) is None
    assert _advance(CursorKind.TIMESTAMP, later, later) is None
    assert _advance(CursorKind.TIMESTAMP, earlier, later) == later
    assert _advance(CursorKind.TIMESTAMP, None, earlier) == earlier
    assert _advance(CursorKind.OPAQUE, "b", "a") == "a"


def test_lookback_restarts_timestamp_cursors_earlier(engine: Engine) -> None:
    seen: list[str | None] = []

    def query(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.since.isoformat() if ctx.since else None)
        return {}

    toy = _toy(query=query)
    options = SyncOptions(lookback=timedelta(hours=1))
    sync_connector(engine, toy, streams=["tickets"], options=options)
    sync_connector(engine, toy, streams=["tickets"], options=options)
    assert seen == [None, "2025-06-01T23:00:00+00:00"]


def test_public_names_are_exported() -> None:
    for name in connectors.__all__:
        assert hasattr(connectors, name), name
    for module in (
        "base",
        "errors",
        "http",
        "paginators",
        "sync",
        "identity",
        "registry",
        "hubspot",
        "zendesk",
        "stripe",
        "usage_file",
    ):
        loaded = importlib.import_module(f"connectors.{module}")
        assert loaded.__doc__
        for name in loaded.__all__:
            assert hasattr(loaded, name), f"connectors.{module}.{name}"
