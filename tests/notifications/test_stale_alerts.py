"""An alert says when the data behind it comes from a failing or lagging source.

A usage drop read from a usage source whose last sync failed may be a sync gap rather than
the customer: the alert carries the stale measures in its payload, and its message says so
in a warning line and in the fallback text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from notifications import detect_alerts
from notifications.messages import AlertFacts, build_alert_message
from scoring.breakdown import STALE_AFTER, stale_measures
from settings import Settings
from store import session_scope
from store.models import SyncRun
from tests.notifications.builders import alerts, measures, score
from tests.notifications.test_detect import FALLING, _account, only
from tests.scoring.seed import AS_OF, usage, weeks_back

NOW = datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=12)
USAGE_DROP = only("usage_drop")


def _sync(s: Session, source: str, status: str, hours_ago: float) -> None:
    at = NOW - timedelta(hours=hours_ago)
    s.add(SyncRun(source=source, stream="usage", status=status, started_at=at, finished_at=at))


def _usage_drop(engine: Engine, runs: list[tuple[str, float]]) -> int:
    with session_scope(engine) as s:
        account_id = _account(s)
        usage(s, account_id, weeks_back(1), 5)
        score(s, account_id, AS_OF, 50, "yellow", measures(usage_trend=FALLING))
        for status, hours_ago in runs:
            _sync(s, "usage", status, hours_ago)
    return account_id


STALE_CASES = [
    ([("ok", 30), ("failed", 1)], ["usage_trend (usage failing (usage))"]),
    ([("ok", STALE_AFTER.total_seconds() / 3600 + 2)], ["usage_trend (usage last synced 1 d ago)"]),
    ([("ok", 2)], []),
    ([], []),  # imported by hand, never synced: nothing to lag behind
]  # fmt: skip


@pytest.mark.parametrize(("runs", "stale"), STALE_CASES)
def test_the_alert_names_the_measures_whose_source_is_stale(
    engine: Engine, runs: list[tuple[str, float]], stale: list[str]
) -> None:
    _usage_drop(engine, runs)
    assert detect_alerts(engine, AS_OF, USAGE_DROP, now=NOW).created == 1
    [alert] = alerts(engine)
    assert alert.payload["stale"] == stale
    message = build_alert_message(AlertFacts.from_payload(alert.payload), alert.id or 0)
    warning = [
        b for b in message.as_kwargs()["blocks"] if ":warning:" in str(b.get("elements", ""))
    ]
    assert len(warning) == (1 if stale else 0)
    assert ("may be a sync gap" in message.text) is bool(stale)


def test_only_accounts_with_rows_from_the_stale_source_are_flagged(engine: Engine) -> None:
    flagged = _usage_drop(engine, [("failed", 1)])
    with session_scope(engine) as s:
        other = _account(s, "Other")
        usage_row_owner = _account(s, "Elsewhere")
        usage(s, usage_row_owner, weeks_back(1), 5)
    components = measures(usage_trend=FALLING)
    with Session(engine) as s:
        found = stale_measures(s, dict.fromkeys([flagged, other], components), NOW, chunk=1)
        nothing = stale_measures(s, {other: measures(ticket_volume=(3.0, {}))}, NOW)
    assert found == {flagged: ["usage_trend (usage failing (usage))"]}
    assert nothing == {}


def test_old_payloads_without_stale_still_render() -> None:
    facts = AlertFacts(account_name="Acme", score=40, band="red", as_of=AS_OF)
    payload = facts.to_payload()
    del payload["stale"]
    assert AlertFacts.from_payload(payload).stale == []


def test_a_configured_threshold_replaces_the_default(engine: Engine, tmp_path: Path) -> None:
    """A weekly source is not stale after 30 h when its sources file section says 200 h."""
    _usage_drop(engine, [("ok", 30)])
    sources = tmp_path / "sources.toml"
    sources.write_text("[usage]\nstale_after_hours = 200\n")
    settings = Settings(_env_file=None, sources_file=sources)
    assert settings.stale_after("usage") == timedelta(hours=200)
    assert settings.stale_after("zendesk") is None  # the reader's default
    everywhere = Settings(_env_file=None, sources_file=sources, status={"stale_after_hours": 12})
    assert everywhere.stale_after("zendesk") == timedelta(hours=12)
    detect_alerts(engine, AS_OF, USAGE_DROP, now=NOW, stale_after=settings.stale_after)
    [alert] = alerts(engine)
    assert alert.payload["stale"] == []
    with Session(engine) as s:
        scores = {alert.account_id or 0: measures(usage_trend=FALLING)}
        strict = stale_measures(s, scores, NOW, stale_after=lambda _source: timedelta(hours=2))
    assert strict == {alert.account_id: ["usage_trend (usage last synced 1 d ago)"]}
