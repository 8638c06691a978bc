"""Read-only views of the store for people: the book by risk, one account explained, and
what the sources left for review (unmatched and quarantined records).

Each view is one or two set-based queries that return plain dicts, so `--json` prints them
as they are and the `print_*` functions only decide how they look. Money is shown in the
reporting currency (`store.money.Rates`) beside the amount as the source states it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

import views
from scoring.trend import changes
from store.lookup import AccountNotFoundError, driver_text, find_account
from store.models import (
    Account,
    ExternalLink,
    HealthScore,
    QuarantinedRecord,
    Subscription,
)
from store.money import Rates, missing_rates_note, to_major
from store.sync_history import latest_stream_runs
from store.types import utcnow

__all__ = [
    "AccountNotFoundError",
    "accounts_money_note",
    "accounts_overview",
    "driver_text",
    "find_account",
    "print_accounts",
    "print_quarantine",
    "print_sources",
    "print_unmatched",
    "quarantined",
    "sources_overview",
    "unmatched",
]

BAND_RISK = {"red": 0, "yellow": 1, "green": 2}
ENDED = ("canceled", "incomplete_expired")


def _money(minor: int | None, currency: str = "USD") -> str:
    if not minor:
        return ""
    return f"{to_major(minor, currency):,.0f} {currency}"


def _arr(account: Account, rates: Rates, day: date) -> dict[str, Any]:
    """The account's ARR in the reporting currency (None without a rate) and as stated."""
    minor, code = int(account.arr_minor or 0), account.currency
    converted = rates.convert(minor, code, day) if rates.can_convert(code) else None
    return {
        "arr": None if converted is None else float(to_major(converted, rates.reporting)),
        "arr_minor": converted,
        "currency": rates.reporting,
        "original_arr_minor": minor,
        "original_currency": code,
    }


def accounts_money_note(rows: list[dict[str, Any]]) -> str:
    """One line naming the currencies whose ARR could not be converted; "" when none."""
    missing = {r["original_currency"] for r in rows if r["arr_minor"] is None}
    return missing_rates_note(missing, rows[0]["currency"]) if missing else ""


def accounts_overview(engine: Engine, rates: Rates | None = None) -> list[dict[str, Any]]:
    """Every live account with its latest score and the change since the score before, and
    its ARR in `rates.reporting` (USD without `rates`) at today's rate, and as stated."""
    rates, today = rates or Rates(), utcnow().date()
    ranked = sa_select(
        col(HealthScore.account_id),
        col(HealthScore.as_of),
        col(HealthScore.score),
        col(HealthScore.band),
        col(HealthScore.confidence),
        col(HealthScore.drivers),
        func.row_number()
        .over(partition_by=col(HealthScore.account_id), order_by=col(HealthScore.as_of).desc())
        .label("rn"),
    ).subquery()
    latest = sa_select(ranked).where(ranked.c.rn == 1).subquery()
    previous = sa_select(ranked).where(ranked.c.rn == 2).subquery()
    ended = col(Subscription.status).in_(ENDED) | col(Subscription.ended_at).is_not(None)
    billed = (
        sa_select(
            col(Subscription.account_id),
            func.count().label("subscriptions"),
            func.sum(case((ended, 0), else_=1)).label("live"),
        )
        .where(col(Subscription.deleted_at).is_(None))
        .group_by(col(Subscription.account_id))
        .subquery()
    )
    query = (
        sa_select(
            Account,
            latest.c.as_of,
            latest.c.score,
            latest.c.band,
            latest.c.confidence,
            latest.c.drivers,
            previous.c.score.label("previous_score"),
            previous.c.band.label("previous_band"),
            billed.c.subscriptions,
            billed.c.live,
        )
        .outerjoin(latest, latest.c.account_id == col(Account.id))
        .outerjoin(previous, previous.c.account_id == col(Account.id))
        .outerjoin(billed, billed.c.account_id == col(Account.id))
        .where(col(Account.deleted_at).is_(None))
    )
    rows: list[dict[str, Any]] = []
    with Session(engine) as session:
        newest = session.execute(sa_select(func.max(col(HealthScore.as_of)))).scalar()
        moved = changes(session, newest) if newest is not None else {}
        for (
            account,
            as_of,
            score,
            band,
            confidence,
            drivers,
            prev_score,
            prev_band,
            subscriptions,
            live,
        ) in session.execute(query).all():
            rows.append(
                {
                    "id": account.id,
                    "crm_id": account.external_id,
                    "name": account.name,
                    "status": "churned" if subscriptions and not live else "active",
                    "domain": account.domain,
                    "owner_email": account.owner_email,
                    **_arr(account, rates, today),
                    "renewal_date": account.renewal_date.isoformat()
                    if account.renewal_date
                    else None,
                    "as_of": as_of.isoformat() if as_of else None,
                    "score": round(score, 1) if score is not None else None,
                    "band": band,
                    "confidence": round(confidence, 2) if confidence is not None else None,
                    "previous_score": round(prev_score, 1) if prev_score is not None else None,
                    "previous_band": prev_band,
                    "change": {f"{d}d": c for d, c in moved.get(account.id or 0, {}).items()},
                    "drivers": drivers or [],
                }
            )
    rows.sort(  # riskiest first; accounts that already churned go last
        key=lambda r: (
            r["status"] == "churned",
            BAND_RISK.get(r["band"], 3),
            r["score"] if r["score"] is not None else 101.0,
            -(r["arr_minor"] or 0),
        )
    )
    return rows


def _arr_cell(row: dict[str, Any]) -> str:
    if row["arr_minor"] is None:  # no rate: as the source states it
        return _money(row["original_arr_minor"], row["original_currency"])
    return _money(row["arr_minor"], row["currency"])


def print_accounts(console: Console, rows: list[dict[str, Any]], limit: int | None = None) -> None:
    shown = rows[:limit] if limit else rows
    views.render_table(
        console,
        f"Accounts by risk ({len(rows)} accounts" + (f", top {limit})" if limit else ")"),
        ["Account", "Owner", "Score", "Band", "Change", "ARR", "Renewal", "Top driver"],
        (
            [
                r["name"],
                (r["owner_email"] or "(unowned)").split("@")[0],
                "" if r["score"] is None else f"{r['score']:.0f}",
                "churned" if r["status"] == "churned" else r["band"] or "unscored",
                ""
                if r["score"] is None or r["previous_score"] is None
                else f"{r['score'] - r['previous_score']:+.0f}",
                _arr_cell(r),
                r["renewal_date"] or "",
                driver_text(r["drivers"][0]) if r["drivers"] else "",
            ]
            for r in shown
        ),
        styles={2: "number", 4: "number", 5: "number"},
    )
    note = accounts_money_note(rows) if rows else ""
    if note:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False, soft_wrap=True)


def unmatched(engine: Engine) -> list[dict[str, Any]]:
    """Links of other systems that wait for a decision: unmatched or ambiguous."""
    with Session(engine) as session:
        links = session.exec(
            select(ExternalLink)
            .where(col(ExternalLink.account_id).is_(None), col(ExternalLink.deleted_at).is_(None))
            .order_by(col(ExternalLink.source), col(ExternalLink.external_id))
        ).all()
        return [
            {
                "source": link.source,
                "external_id": link.external_id,
                "kind": link.kind,
                "name": link.name,
                "domain": link.domain,
                "status": link.status,
                "reason": link.reason,
            }
            for link in links
        ]


def print_unmatched(console: Console, rows: list[dict[str, Any]]) -> None:
    views.render_table(
        console,
        f"Unmatched records ({len(rows)})",
        ["Source", "Kind", "External id", "Name", "Domain", "Status", "Reason"],
        (
            [
                r["source"],
                r["kind"],
                r["external_id"],
                r["name"],
                r["domain"],
                r["status"],
                r["reason"],
            ]
            for r in rows
        ),
    )


def quarantined(engine: Engine) -> list[dict[str, Any]]:
    """Records that could not be mapped and wait for a fix."""
    with Session(engine) as session:
        records = session.exec(
            select(QuarantinedRecord)
            .where(col(QuarantinedRecord.resolved_at).is_(None))
            .order_by(col(QuarantinedRecord.created_at))
        ).all()
        return [
            {
                "source": r.source,
                "stream": r.stream,
                "record_key": r.record_key,
                "reason": r.reason,
                "created_at": r.created_at.isoformat(),
            }
            for r in records
        ]


def print_quarantine(console: Console, rows: list[dict[str, Any]]) -> None:
    views.render_table(
        console,
        f"Quarantined records ({len(rows)})",
        ["Source", "Stream", "Record", "Reason", "Since"],
        ([r["source"], r["stream"], r["record_key"], r["reason"], r["created_at"]] for r in rows),
    )


def _source_row(name: str, *, enabled: bool) -> dict[str, Any]:
    return {"source": name, "enabled": enabled, "streams": 0, "records": 0, "failing": [],
            "last_success": None, "lag_seconds": None, "_stale": []}  # fmt: skip


def sources_overview(engine: Engine, enabled: list[str]) -> list[dict[str, Any]]:
    """Each source: enabled or not, its stalest stream's last success, lag, records, errors.

    A source is as fresh as its stalest stream, so `last_success` is the oldest of its
    streams' latest successful runs; `records` adds up each stream's latest run.
    """
    now = utcnow()
    by_source = {name: _source_row(name, enabled=True) for name in enabled}
    with Session(engine) as session:
        for run in latest_stream_runs(session):
            row = by_source.setdefault(run.source, _source_row(run.source, enabled=False))
            row["streams"] += 1
            row["records"] += run.records or 0
            if run.status not in ("ok", "stopped"):  # stopped: a clean shutdown between pages
                row["failing"].append({"stream": run.stream, "error": run.error})
            row["_stale"].append(run.last_ok)
    for row in by_source.values():
        stamps = row.pop("_stale")
        if stamps and None not in stamps:
            oldest = min(stamps)
            row["last_success"] = oldest.isoformat()
            row["lag_seconds"] = int((now - oldest).total_seconds())
    return sorted(by_source.values(), key=lambda r: (not r["enabled"], r["source"]))


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def print_sources(console: Console, rows: list[dict[str, Any]]) -> None:
    views.render_table(
        console,
        f"Sources ({sum(r['enabled'] for r in rows)} enabled)",
        ["Source", "Enabled", "Streams", "Last success", "Records (last run)", "Problems"],
        (
            [
                r["source"],
                "yes" if r["enabled"] else "no",
                r["streams"],
                _age(r["lag_seconds"]),
                r["records"],
                "; ".join(f"{f['stream']}: {f['error']}" for f in r["failing"]) or "",
            ]
            for r in rows
        ),
        styles={2: "number", 4: "number"},
    )
