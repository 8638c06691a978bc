"""Store rows for alert tests: accounts with owners, CSMs in teams, alerts, scores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from notifications.messages import AlertFacts
from store import bulk_upsert, session_scope
from store.models import Account, Alert, Csm, HealthScore, Team

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday afternoon in UTC
_ids = count(1)


def account(session: Session, name: str, owner: str | None, **fields: Any) -> int:
    row = Account(
        source="crm", external_id=f"acc-{next(_ids)}", name=name, owner_email=owner, **fields
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def team(
    session: Session, external_id: str, *, lead: str | None = None, channel: str | None = None
) -> None:
    session.add(
        Team(source="crm", external_id=external_id, name=f"Team {external_id}", lead_email=lead,
             slack_channel=channel)
    )  # fmt: skip


def csm(session: Session, email: str, team_id: str | None, **fields: Any) -> str:
    """A CSM in a team; their CRM id."""
    external_id = f"csm-{next(_ids)}"
    session.add(
        Csm(source="crm", external_id=external_id, email=email, team_external_id=team_id,
            **fields)
    )  # fmt: skip
    return external_id


def alert(
    engine: Engine,
    account_id: int | None,
    owner: str | None,
    *,
    rule: str = "band_drop",
    severity: str = "high",
    created: datetime = NOW,
    status: str = "pending",
    **fields: Any,
) -> int:
    """A recorded alert, as detection writes them."""
    facts = AlertFacts(
        account_name=f"Account {account_id}",
        score=40.0,
        band="yellow",
        as_of=created.date(),
        rule=rule,
        severity=severity,
        title=f"Account {account_id}: {rule} ({severity})",
        reasons=[f"{rule} happened"],
    )
    with session_scope(engine) as s:
        row = Alert(
            fingerprint=f"{rule}:{account_id}:{next(_ids)}",
            account_id=account_id,
            rule=rule,
            severity=severity,
            recipient_email=owner,
            status=status,
            text=facts.title,
            payload=facts.to_payload(),
            created_at=created,
            **fields,
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def score(
    session: Session,
    account_id: int,
    day: date,
    value: float,
    band: str,
    components: dict[str, Any] | None = None,
) -> None:
    row = {
        "account_id": account_id,
        "as_of": day,
        "score": value,
        "band": band,
        "drivers": [{"text": "Something pulls it down", "direction": "negative", "impact": -5.0}],
        "components": components or {},
        "weights": {},
        "scorecard_version": "test",
    }
    bulk_upsert(session, HealthScore, [row], keys=("account_id", "as_of"))


def measures(**readings: Any) -> dict[str, Any]:
    """Score components holding these measure readings: `name=(value, details)`."""
    return {
        "all": {
            "score": 50.0,
            "measures": {
                name: {"value": value, "score": 50.0, "details": details}
                for name, (value, details) in readings.items()
            },
        }
    }


def alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as s:
        return list(s.exec(select(Alert).order_by(col(Alert.id))))


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
