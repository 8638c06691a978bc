"""Identity: explicit ids, domains, free mail, ambiguity, manual links, record account ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlmodel import Session

from connectors.identity import LinkError, link_manually, resolve_identities, unmatched_links
from store.db import session_scope
from store.models import (
    Account,
    Csm,
    ExternalLink,
    Opportunity,
    SurveyResponse,
    Ticket,
    UsageSnapshot,
)
from store.upsert import bulk_upsert

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _account(external_id: str, domain: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "source": "crm",
        "external_id": external_id,
        "name": f"Account {external_id}",
        "domain": domain,
        "owner_external_id": None,
        "deleted_at": None,
        **extra,
    }


def _link(source: str, external_id: str, **extra: Any) -> dict[str, Any]:
    values = {
        "source": source,
        "external_id": external_id,
        "kind": "thing",
        "domain": None,
        "crm_hint": None,
        "method": None,
        "account_id": None,
        "status": "unmatched",
    }
    return {**values, **extra}


def _seed(engine: Engine, tickets: int = 3) -> dict[str, int]:
    with session_scope(engine) as session:
        bulk_upsert(
            session,
            Account,
            [
                _account("A1", "acme.com", owner_external_id="o1"),
                _account("A2", "globex.io"),
                _account("A3", "initech.com"),
                _account("A4", "shared.example"),
                _account("A5", "shared.example"),
                _account("A6", "hooli.example", deleted_at=T0),
            ],
        )
        bulk_upsert(
            session, Csm, [{"source": "crm", "external_id": "o1", "email": "ana@us.example"}]
        )
        ids = {a.external_id: a.id for a in session.execute(select(Account)).scalars()}
        assert all(ids.values())
        bulk_upsert(
            session,
            ExternalLink,
            [
                _link("desk", "org-hint", crm_hint="A1", domain="other.example"),
                _link("desk", "org-domain", domain="globex.io"),
                _link("desk", "org-freemail", domain="gmail.com"),
                _link("desk", "org-nothing"),
                _link("pay", "cus-shared", domain="shared.example"),
                _link("pay", "cus-unknown", crm_hint="A999", domain="nowhere.example"),
                _link(
                    "pay",
                    "cus-manual",
                    domain="globex.io",
                    method="manual",
                    account_id=ids["A3"],
                    status="matched",
                    confidence=1.0,
                ),
                _link("pay", "cus-archived", domain="hooli.example"),
            ],
        )
        bulk_upsert(
            session,
            Ticket,
            [
                {
                    "source": "desk",
                    "external_id": f"t{n}",
                    "account_ref": "org-hint" if n % 2 else "org-freemail",
                    "status": "open",
                    "created_at": T0,
                    "updated_at": T0,
                }
                for n in range(tickets)
            ],
        )
        bulk_upsert(
            session,
            SurveyResponse,
            [
                {
                    "source": "desk",
                    "external_id": "s1",
                    "ticket_ref": "t1",
                    "kind": "csat",
                    "score": 1,
                    "scale_max": 1,
                    "responded_at": T0,
                },
            ],
        )
        bulk_upsert(
            session,
            Opportunity,
            [
                {"source": "crm", "external_id": "d1", "account_ref": "A2"},
            ],
        )
        bulk_upsert(
            session,
            UsageSnapshot,
            [
                {
                    "source": "pay",
                    "external_id": "u1",
                    "account_ref": "cus-manual",
                    "period_start": T0.date(),
                    "active_users": 3,
                    "recorded_at": T0,
                },
            ],
        )
    return {k: v for k, v in ids.items() if v is not None}


def _links(engine: Engine) -> dict[str, ExternalLink]:
    with Session(engine) as session:
        return {link.external_id: link for link in session.execute(select(ExternalLink)).scalars()}


def _account_of(engine: Engine, model: type, external_id: str) -> int | None:
    with Session(engine) as session:
        row = session.execute(select(model).where(model.external_id == external_id)).scalar_one()  # type: ignore[attr-defined]
        return row.account_id  # type: ignore[no-any-return]


def test_links_resolve_by_explicit_id_then_domain(engine: Engine) -> None:
    ids = _seed(engine)
    with session_scope(engine) as session:
        counts = resolve_identities(session, now=T0)
    links = _links(engine)
    hint = links["org-hint"]
    assert (hint.status, hint.method, hint.confidence, hint.account_id) == (
        "matched",
        "explicit_id",
        1.0,
        ids["A1"],
    )
    by_domain = links["org-domain"]
    assert (by_domain.status, by_domain.method, by_domain.confidence, by_domain.account_id) == (
        "matched",
        "domain",
        0.8,
        ids["A2"],
    )
    assert by_domain.reason is None
    assert counts == {"matched": 8, "ambiguous": 1, "unmatched": 4}  # live links only


def test_free_mail_ambiguous_and_unknown_links_say_why(engine: Engine) -> None:
    _seed(engine)
    with session_scope(engine) as session:
        resolve_identities(session, now=T0)
    links = _links(engine)
    assert links["org-freemail"].status == "unmatched"
    assert links["org-freemail"].reason == (
        "no CRM id; free-mail domain gmail.com cannot identify an account"
    )
    assert links["cus-shared"].status == "ambiguous"
    assert links["cus-shared"].account_id is None
    assert links["cus-shared"].reason == "2 live accounts share the domain shared.example"
    assert links["cus-unknown"].reason == (
        "CRM id A999 matches no account; no live account has the domain nowhere.example"
    )
    assert links["org-nothing"].reason == "no CRM id; no domain to match on"
    assert links["cus-archived"].reason == (
        "no CRM id; no live account has the domain hooli.example"
    )
    with Session(engine) as session:
        waiting = [link.external_id for link in unmatched_links(session)]
    assert waiting == ["org-freemail", "org-nothing", "cus-archived", "cus-shared", "cus-unknown"]


def test_manual_links_are_never_overwritten(engine: Engine) -> None:
    ids = _seed(engine)
    with session_scope(engine) as session:
        resolve_identities(session, now=T0)
    manual = _links(engine)["cus-manual"]
    assert (manual.method, manual.account_id) == ("manual", ids["A3"])
    assert _account_of(engine, UsageSnapshot, "u1") == ids["A3"]


def test_crm_accounts_link_to_themselves_and_records_follow_links(engine: Engine) -> None:
    ids = _seed(engine)
    with session_scope(engine) as session:
        resolve_identities(session, now=T0)
    crm = _links(engine)["A2"]
    assert (crm.source, crm.method, crm.status, crm.account_id) == (
        "crm",
        "crm",
        "matched",
        ids["A2"],
    )
    assert _account_of(engine, Opportunity, "d1") == ids["A2"]
    assert _account_of(engine, Ticket, "t1") == ids["A1"]
    assert _account_of(engine, Ticket, "t0") is None  # its organization is unmatched: kept
    assert _account_of(engine, SurveyResponse, "s1") == ids["A1"]  # through its ticket
    with Session(engine) as session:
        acme = session.execute(select(Account).where(Account.external_id == "A1")).scalar_one()  # type: ignore[arg-type]
    assert acme.owner_email == "ana@us.example"


def test_resolution_follows_changes_and_is_idempotent(engine: Engine) -> None:
    ids = _seed(engine)
    with session_scope(engine) as session:
        resolve_identities(session, now=T0)
    first = {k: (v.status, v.account_id, v.reason) for k, v in _links(engine).items()}
    with session_scope(engine) as session:
        resolve_identities(session, now=T0)
    assert {k: (v.status, v.account_id, v.reason) for k, v in _links(engine).items()} == first
    with session_scope(engine) as session:
        bulk_upsert(session, Account, [_account("A2", "globex-new.io")])
        bulk_upsert(
            session,
            ExternalLink,
            [_link("pay", "cus-shared", crm_hint="A5", domain="shared.example")],
        )
        resolve_identities(session, now=T0)
    links = _links(engine)
    assert links["org-domain"].status == "unmatched"
    assert links["cus-shared"].method == "explicit_id"
    assert links["cus-shared"].account_id == ids["A5"]
    assert _links(engine)["A2"].domain == "globex-new.io"


def test_matching_is_set_based(engine: Engine) -> None:
    def statements(tickets: int) -> int:
        with session_scope(engine) as session:
            session.execute(Ticket.__table__.delete())  # type: ignore[attr-defined]
        _seed(engine, tickets=tickets)
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            with session_scope(engine) as session:
                resolve_identities(session, now=T0)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    assert statements(3) == statements(300)


def test_an_admin_link_resolves_records_and_survives_matching(engine: Engine) -> None:
    with session_scope(engine) as session:
        bulk_upsert(session, Account, [_account("A1", "acme.com"), _account("A2", "globex.io")])
        bulk_upsert(session, ExternalLink, [_link("billing", "cus_9", domain="gmail.com")])
        bulk_upsert(
            session,
            Ticket,
            [
                {
                    "source": "billing",
                    "external_id": "t9",
                    "account_ref": "cus_9",
                    "status": "open",
                    "created_at": T0,
                    "updated_at": T0,
                }
            ],
        )
        resolve_identities(session, T0)
    with session_scope(engine) as session:
        [waiting] = unmatched_links(session)
        assert (waiting.external_id, waiting.status) == ("cus_9", "unmatched")
        globex = session.execute(select(Account).where(Account.external_id == "A2")).scalar_one()
        link_manually(session, "billing", "cus_9", globex.id or 0, T0)
    with session_scope(engine) as session:  # a later sync re-matches everything
        bulk_upsert(session, ExternalLink, [_link("billing", "cus_9", domain="gmail.com")],
                    update=("domain",))  # fmt: skip
        resolve_identities(session, T0)
    with Session(engine) as session:
        link = session.execute(select(ExternalLink)).scalars().all()
        [kept] = [x for x in link if x.external_id == "cus_9"]
        assert (kept.method, kept.status, kept.confidence) == ("manual", "matched", 1.0)
        assert kept.account_id == globex.id
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.account_id == globex.id
        assert unmatched_links(session) == []


def test_linking_an_unknown_record_or_account_is_a_clear_error(engine: Engine) -> None:
    with session_scope(engine) as session:
        bulk_upsert(session, Account, [_account("A1", "acme.com")])
        bulk_upsert(session, ExternalLink, [_link("billing", "cus_1")])
    with session_scope(engine) as session, pytest.raises(LinkError, match="sources unmatched"):
        link_manually(session, "billing", "cus_404", 1)
    with session_scope(engine) as session, pytest.raises(LinkError, match="no live account"):
        link_manually(session, "billing", "cus_1", 999)
