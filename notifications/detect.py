"""Alert detection: run every enabled rule over every account, record each alert once.

`detect_alerts(db, as_of)` takes the snapshots of all accounts scored as of the day (a few
set-based queries), runs the checks in plain Python, and writes the new alerts in one
statement. Each alert's fingerprint is

    {rule}:{account id}[:{key}]:{window start}+{cooldown}d

where the window is the rule's cooldown period the day falls in (days counted from
0001-01-01) and `key` tells alerts of one rule apart (a band drop's new band: a drop to
red after a drop to yellow is news). Two guards keep an alert from repeating within its
cooldown:

- before writing, the alerts of the last cooldown are read (one query) and a rule, account
  and key that alerted fewer than `cooldown_days` days before is skipped, so a window
  boundary between two days does not let the same alert through twice;
- the insert ignores fingerprints that exist (`ON CONFLICT DO NOTHING` on the unique
  fingerprint), so two instances detecting at once, or a restart, record it once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from notifications.checks import CHECKS, Finding, Moment
from notifications.messages import AlertFacts, headline
from notifications.outbox import insert_new
from notifications.rules import RuleSet, load_rules, severity_rank
from notifications.snapshot import AccountSnapshot, SnapshotNeeds, take_snapshots
from scoring.breakdown import StaleAfter, stale_measures
from scoring.measures import cutoff
from store.db import session_for
from store.models import Alert
from store.types import utcnow

__all__ = ["DetectionSummary", "detect_alerts", "fingerprint"]


def fingerprint(rule: str, account_id: int, as_of: date, cooldown_days: int, key: str = "") -> str:
    """The alert's identity: rule, account, key and the cooldown window `as_of` is in."""
    day = as_of.toordinal()
    start = date.fromordinal(day - (day - 1) % cooldown_days)
    parts = [
        rule,
        str(account_id),
        *([key] if key else []),
        f"{start.isoformat()}+{cooldown_days}d",
    ]
    return ":".join(parts)


@dataclass(frozen=True)
class DetectionSummary:
    """What the rules found as of a day, and how many of those were new alerts."""

    as_of: date
    drops: int
    """Band drops found (new or not)."""
    created: int
    found: dict[str, int] = field(default_factory=dict)
    """Findings by rule, before cooldowns."""
    new: dict[str, int] = field(default_factory=dict)
    """New alerts by rule."""

    def describe(self) -> str:
        """`14 alerts found (5 band_drop, ...), 9 new`."""
        total = sum(self.found.values())
        parts = ", ".join(f"{n} {rule}" for rule, n in sorted(self.found.items()) if n)
        return f"{total} alerts found" + (f" ({parts})" if parts else "") + f", {self.created} new"


def _needs(rules: RuleSet) -> SnapshotNeeds:
    on = rules.enabled()
    return SnapshotNeeds(
        previous="band_drop" in on,
        earlier_days=rules.score_drop.days if "score_drop" in on else None,
        urgent_priorities=rules.urgent_ticket.priorities if "urgent_ticket" in on else (),
        sentiment="sentiment_stale" in on,
    )


def _facts(
    snap: AccountSnapshot, finding: Finding, as_of: date, stale: Mapping[int, list[str]]
) -> AlertFacts:
    previous = snap.previous if finding.rule == "band_drop" else None
    return AlertFacts(
        account_name=snap.name,
        score=snap.current.score,
        band=snap.current.band,
        as_of=as_of,
        previous_score=previous.score if previous else None,
        previous_band=previous.band if previous else None,
        drivers=snap.drivers,
        renewal_date=snap.renewal_date,
        arr_minor=snap.arr_minor or None,
        currency=snap.currency,
        scorecard_version=snap.scorecard_version,
        rule=finding.rule,
        severity=finding.severity,
        title=finding.title,
        reasons=list(finding.reasons),
        key=finding.key,
        stale=list(stale.get(snap.account_id, ())),
    )


def _alert_key(rule: str, payload: Mapping[str, Any]) -> str:
    """The key an alert was recorded with (band drops from before keys say their band)."""
    if "key" in payload:
        return str(payload["key"])
    return str(payload.get("band", "")) if rule == "band_drop" else ""


def _recent(
    session: Session, rules: RuleSet, as_of: date, account_ids: Collection[int] | None = None
) -> dict[tuple[str, int, str], date]:
    """The latest day each rule, account and key alerted, within the longest cooldown."""
    on = rules.enabled()
    longest = max(rule.cooldown_days for rule in on.values())
    since = datetime.combine(as_of - timedelta(days=longest), time(), UTC)
    mine = [] if account_ids is None else [col(Alert.account_id).in_(sorted(account_ids))]
    stmt = select(Alert.rule, Alert.account_id, Alert.payload).where(
        col(Alert.rule).in_(list(on)),
        col(Alert.account_id).is_not(None),
        col(Alert.created_at) >= since,
        *mine,
    )
    latest: dict[tuple[str, int, str], date] = {}
    for rule, account_id, payload in session.exec(stmt).all():
        if account_id is None or not isinstance(payload, dict) or "as_of" not in payload:
            continue
        key = (rule, account_id, _alert_key(rule, payload))
        day = date.fromisoformat(str(payload["as_of"]))
        latest[key] = max(day, latest.get(key, day))
    return latest


def _cooling(
    recent: Mapping[tuple[str, int, str], date], key: tuple[str, int, str], as_of: date, days: int
) -> bool:
    day = recent.get(key)
    return day is not None and abs((as_of - day).days) < days


def _rows(
    found: Iterable[tuple[AccountSnapshot, Finding]],
    rules: RuleSet,
    as_of: date,
    now: datetime,
    stale: Mapping[int, list[str]],
) -> list[dict[str, Any]]:
    """Alert rows, most severe first (so they are delivered first), each once; each says
    which of its measures rest on a failing or lagging source (`stale`)."""
    cooldowns = {name: rule.cooldown_days for name, rule in rules.rules().items()}
    ordered = sorted(
        found, key=lambda f: (severity_rank(f[1].severity), f[0].account_id, f[1].rule)
    )
    rows = []
    for snap, finding in ordered:
        facts = _facts(snap, finding, as_of, stale)
        print_ = fingerprint(
            finding.rule, snap.account_id, as_of, cooldowns[finding.rule], finding.key
        )
        rows.append(
            {
                "fingerprint": print_,
                "account_id": snap.account_id,
                "rule": finding.rule,
                "severity": finding.severity,
                "recipient_email": snap.owner_email,
                "status": "pending",
                "text": headline(facts),
                "payload": facts.to_payload(),
                "created_at": now,
            }
        )
    return rows


Found = list[tuple[AccountSnapshot, Finding]]


def _find(
    session: Session, rules: RuleSet, moment: Moment, account_ids: Collection[int] | None = None
) -> Found:
    """Every enabled rule's findings over every current customer (or those of `account_ids`)."""
    checks = [CHECKS[name] for name in rules.enabled()]
    found: Found = []
    for snap in take_snapshots(session, moment.as_of, moment.instant, _needs(rules)):
        if snap.churned() or (account_ids is not None and snap.account_id not in account_ids):
            continue
        for check in checks:
            finding = check(snap, rules, moment)
            if finding is not None:
                found.append((snap, finding))
    return found


def _fresh(
    session: Session,
    rules: RuleSet,
    as_of: date,
    found: Found,
    account_ids: Collection[int] | None = None,
) -> Found:
    """The findings whose rule did not alert for the account within its cooldown."""
    recent = _recent(session, rules, as_of, account_ids)
    cooldowns = {name: rule.cooldown_days for name, rule in rules.rules().items()}
    return [
        (snap, f)
        for snap, f in found
        if not _cooling(recent, (f.rule, snap.account_id, f.key), as_of, cooldowns[f.rule])
    ]


def detect_alerts(
    db: Engine | Session,
    as_of: date,
    rules: RuleSet | None = None,
    *,
    now: datetime | None = None,
    account_ids: Collection[int] | None = None,
    stale_after: StaleAfter | None = None,
) -> DetectionSummary:
    """Record a pending alert for each enabled rule that holds for a live account as of
    `as_of`, unless the same alert was recorded within the rule's cooldown. Accounts whose
    subscriptions have all ended are left out: they are former customers. `account_ids`
    looks at those accounts only (default: every account)."""
    rules = rules or load_rules()
    now = now or utcnow()
    if not rules.enabled():
        return DetectionSummary(as_of, 0, 0)
    wanted = None if account_ids is None else frozenset(account_ids)
    with session_for(db) as session:
        found = _find(session, rules, Moment(as_of, min(now, cutoff(as_of))), wanted)
        fresh = _fresh(session, rules, as_of, found, wanted)
        scores = {snap.account_id: snap.components for snap, _ in fresh}
        stale = stale_measures(session, scores, now, stale_after=stale_after)
        rows = _rows(fresh, rules, as_of, now, stale)
        created = insert_new(session, rows)
    names = list(rules.enabled())
    counts = {name: sum(1 for _, f in found if f.rule == name) for name in names}
    new = {
        name: sum(1 for r in rows if r["rule"] == name and r["fingerprint"] in created)
        for name in names
    }
    return DetectionSummary(as_of, counts.get("band_drop", 0), len(created), counts, new)
