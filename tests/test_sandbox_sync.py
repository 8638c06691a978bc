"""The real connectors against the sandbox emulators over HTTP, on both databases.

Bad input loses nothing: a record of an unexpected shape from any vendor lands in the
quarantine with its reason while the rest of its stream syncs. Vendors that push back (429
with `Retry-After`, a 503) are waited out and retried. A second sync adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session

import reports
from connectors.base import Record
from connectors.http import ClientOptions
from connectors.quarantine import replay_quarantine
from connectors.registry import build_connectors, sync_all
from connectors.sync import SyncOptions
from connectors.zendesk import map_ticket
from demo import _sandbox_settings
from sandbox.book import Book, generate_book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Faults, Limits
from sandbox.server import serve_apps
from sandbox.stripe import stripe_app
from sandbox.usage_csv import write_usage_csv
from sandbox.zendesk import zendesk_app
from settings import Settings
from store.db import session_scope
from store.models import (
    Account,
    Invoice,
    QuarantinedRecord,
    Subscription,
    SyncState,
    Team,
    Ticket,
)


@pytest.fixture(scope="module")
def book() -> Book:
    return generate_book(accounts=30)


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def sandbox(book: Book, faults: Faults, tmp_path: Path) -> Iterator[Settings]:
    limits = Limits.unlimited(faults)
    apps = {
        "hubspot": hubspot_app(book, limits=limits),
        "zendesk": zendesk_app(book, limits=limits),
        "stripe": stripe_app(book, limits=limits),
    }
    usage = write_usage_csv(book, tmp_path / "usage.csv")
    with serve_apps(apps) as base:
        yield _sandbox_settings(Settings(_env_file=None), base, usage)  # type: ignore[call-arg]  # pydantic-settings init kwarg


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_malformed_records_are_quarantined_and_the_rest_syncs(
    engine: Engine, sandbox: Settings, faults: Faults, book: Book
) -> None:
    for stream in ("companies", "tickets", "invoices"):
        faults.malform(stream)
    summary = sync_all(engine, sandbox)
    assert summary.ok, [(r.stream, r.error) for r in summary.failures]
    by_stream = {(r.source, r.stream): r for r in summary.streams}
    for key in (("hubspot", "companies"), ("zendesk", "tickets"), ("stripe", "invoices")):
        assert by_stream[key].quarantined == 1, key
    quarantined = reports.quarantined(engine)
    assert {(q["source"], q["stream"]) for q in quarantined} == {
        ("hubspot", "companies"),
        ("zendesk", "tickets"),
        ("stripe", "invoices"),
    }
    assert all(q["reason"] for q in quarantined)
    with Session(engine) as session:
        payloads = [r.payload for r in session.execute(select(QuarantinedRecord)).scalars()]
    assert all(payloads), "the raw record is kept whole"
    assert _count(engine, Account) == len(book.companies) - 1
    assert _count(engine, Invoice) == len(book.invoices) - 1
    live_tickets = by_stream[("zendesk", "tickets")].records
    assert _count(engine, Ticket) == live_tickets


def test_vendors_pushing_back_are_waited_out(
    engine: Engine, sandbox: Settings, faults: Faults
) -> None:
    faults.fail("/api/v2/incremental/tickets", status=429, retry_after_s=3)
    faults.fail("/v1/invoices", status=503)
    faults.fail("/crm/v3/objects/companies/search", status=429, retry_after_s=2)
    waits: list[float] = []
    summary = sync_all(engine, sandbox, client=ClientOptions(sleep=waits.append))
    assert summary.ok, [(r.stream, r.error) for r in summary.failures]
    assert 3.0 in waits
    assert 2.0 in waits
    assert len(waits) >= 3
    assert _count(engine, Ticket) > 0
    assert _count(engine, Invoice) > 0


def test_second_sync_adds_nothing(engine: Engine, sandbox: Settings) -> None:
    first = sync_all(engine, sandbox)
    assert first.ok
    tables = (Account, Ticket, Subscription, Invoice, QuarantinedRecord)
    counts = {m.__name__: _count(engine, m) for m in tables}
    second = sync_all(engine, sandbox)
    assert second.ok
    assert {m.__name__: _count(engine, m) for m in tables} == counts
    fetched = {(r.source, r.stream): r.records for r in second.streams}
    assert fetched[("zendesk", "tickets")] == 0
    assert fetched[("stripe", "invoices")] == 0
    assert fetched[("usage_file", "usage")] == 0


STREAMS = {
    "owners": "hubspot",
    "companies": "hubspot",
    "deals": "hubspot",
    "organizations": "zendesk",
    "tickets": "zendesk",
    "satisfaction_ratings": "zendesk",
    "customers": "stripe",
    "subscriptions": "stripe",
    "invoices": "stripe",
}


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_every_stream_quarantines_a_broken_record(
    sqlite_url: str, sandbox: Settings, faults: Faults, stream: str
) -> None:
    from store.db import make_engine

    engine = make_engine(sqlite_url)
    faults.malform(stream)
    summary = sync_all(engine, sandbox)
    assert summary.ok, [(r.stream, r.error) for r in summary.failures]
    [result] = [r for r in summary.streams if r.stream == stream]
    assert (result.source, result.quarantined) == (STREAMS[stream], 1)
    assert result.records > 0
    [kept] = reports.quarantined(engine)
    assert kept["stream"] == stream
    assert kept["reason"]
    engine.dispose()


def test_quarantine_replay_after_a_fix(engine: Engine, sandbox: Settings, faults: Faults) -> None:
    faults.malform("tickets")  # a ticket without created_at
    assert sync_all(engine, sandbox).ok
    [kept] = reports.quarantined(engine)
    tickets_before = _count(engine, Ticket)

    connectors = build_connectors(sandbox)
    unchanged = replay_quarantine(engine, connectors)
    assert (unchanged.replayed, unchanged.still_failing) == (0, 1)
    assert reports.quarantined(engine)[0]["record_key"] == kept["record_key"]

    def lenient(raw: Mapping[str, Any]) -> list[Record]:  # the fix: fall back to updated_at
        return map_ticket({"created_at": raw.get("updated_at"), **raw})

    fixed = [
        replace(c, streams=tuple(
            replace(s, mapper=lenient) if s.name == "tickets" else s for s in c.streams
        )) if c.source == "zendesk" else c
        for c in connectors
    ]  # fmt: skip
    replayed = replay_quarantine(engine, fixed)
    assert (replayed.replayed, replayed.still_failing) == (1, 0)
    assert reports.quarantined(engine) == []
    assert _count(engine, Ticket) == tickets_before + 1
    with Session(engine) as session:
        ticket = session.execute(
            select(Ticket).where(Ticket.external_id == kept["record_key"])
        ).scalar_one()
    assert ticket.account_id is not None, "identities are resolved after a replay"


def test_sources_overview_shows_freshness_and_failures(
    engine: Engine, sandbox: Settings, faults: Faults
) -> None:
    assert sync_all(engine, sandbox).ok
    faults.fail("/v1/events", status=500, times=50)
    later = sync_all(engine, sandbox, client=ClientOptions(sleep=lambda _s: None))
    assert [r.stream for r in later.failures] == ["events"]
    rows = {r["source"]: r for r in reports.sources_overview(engine, ["hubspot", "stripe"])}
    assert rows["hubspot"]["enabled"] is True
    assert rows["hubspot"]["failing"] == []
    assert 0 <= rows["hubspot"]["lag_seconds"] < 120
    assert rows["zendesk"]["enabled"] is False  # synced before, not configured now
    [failing] = rows["stripe"]["failing"]
    assert failing["stream"] == "events"
    assert "500" in failing["error"]
    assert rows["stripe"]["last_success"] is not None  # the first sync did succeed


def _cursors(engine: Engine) -> dict[tuple[str, str], str | None]:
    with Session(engine) as session:
        states = session.execute(select(SyncState)).scalars()
        return {(s.source, s.stream): s.cursor for s in states}


def test_backfill_reads_again_what_a_cursor_has_passed(
    engine: Engine, sandbox: Settings, book: Book
) -> None:
    assert sync_all(engine, sandbox).ok
    tickets = _count(engine, Ticket)
    with session_scope(engine) as session:  # a silent gap: rows lost behind the cursors
        session.execute(delete(Ticket))
    before = _cursors(engine)
    assert sync_all(engine, sandbox).ok
    assert _count(engine, Ticket) == 0, "a normal sync does not look behind its cursor"
    since = book.now - timedelta(days=400)
    summary = sync_all(engine, sandbox, sources=["zendesk", "hubspot"],
                       options=SyncOptions(backfill_since=since))  # fmt: skip
    assert summary.ok
    assert _count(engine, Ticket) == tickets, "every ticket is back"
    after = _cursors(engine)
    for key in (("hubspot", "companies"), ("zendesk", "organizations")):
        assert after[key] is not None
        assert before[key] is not None
        assert after[key] >= before[key], f"{key} moved backwards"


def test_sources_file_maps_crm_custom_properties(
    engine: Engine, sandbox: Settings, book: Book, tmp_path: Path
) -> None:
    mapping = tmp_path / "sources.toml"
    mapping.write_text(
        '[hubspot.fields]\nrenewal_date = "renewal_date"\nsegment = "customer_segment"\n'
    )
    mapped = sandbox.model_copy(update={"sources_file": mapping})
    assert sync_all(engine, mapped, sources=["hubspot"]).ok
    with Session(engine) as session:
        accounts = {a.external_id: a for a in session.execute(select(Account)).scalars()}
    with_renewal = [c for c in book.companies if c.renewal_date is not None]
    assert with_renewal, "the sandbox CRM keeps renewal dates in a custom property"
    for company in with_renewal:
        assert accounts[company.id].renewal_date == company.renewal_date
    assert {a.segment for a in accounts.values()} - {None}, "segments come from the property"


def test_teams_the_sync_creates_get_the_lead_and_channel_the_sources_file_gives(
    engine: Engine, sandbox: Settings, book: Book, tmp_path: Path
) -> None:
    team = book.teams[0]
    sources = tmp_path / "teams.toml"
    sources.write_text(
        f'[teams."{team.name}"]\nlead_email = "lead@example.com"\nslack_channel = "#cs-a"\n'
    )
    assert sync_all(engine, sandbox.model_copy(update={"sources_file": sources})).ok
    with Session(engine) as session:
        stored = {t.name: (t.lead_email, t.slack_channel) for t in session.scalars(select(Team))}
    assert stored[team.name] == ("lead@example.com", "#cs-a")
    assert all(v == (None, None) for name, v in stored.items() if name != team.name)
