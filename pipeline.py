"""One cycle of the agent, step by step: sync the sources, score the accounts, notify.

The CLI's commands, the scheduler's job and the demo all go through these functions, so
"what a cycle does" is written once. Each step reads what the step before wrote to the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session

import views
from connectors.identity import link_manually
from connectors.registry import sync_all
from connectors.sync import ProgressEvent, SyncOptions, SyncSummary
from connectors.task_writeback import write_to_crm
from notifications import (
    DeliverySummary,
    DetectionSummary,
    deliver_pending,
    detect_alerts,
    load_rules,
    make_slack_client,
)
from notifications.playbooks import run_playbooks
from notifications.playbooks_slack import post_tasks, remind_overdue
from scoring import ScoreRunSummary, explain, record_sentiment, score_accounts
from scoring.breakdown import MeasureLine, StaleAfter, measure_lines
from scoring.scorecard import SIGNALS, Scorecard
from scoring.selection import load_scorecards
from scoring.trend import WINDOWS, moves, score_on_or_before
from settings import Settings
from store import lookup
from store.db import session_scope
from store.models import HealthScore
from store.teams import configure_teams
from store.types import utcnow

__all__ = [
    "NotifySummary",
    "cycle",
    "notify",
    "print_explain",
    "print_sync_summary",
    "score",
    "sync",
]


@contextmanager
def _progress(console: Console) -> Iterator[Any]:
    with views.progress(console) as lines:

        def report(event: ProgressEvent) -> None:
            lines.update(f"{event.source} {event.stream}", event.records, done=event.done)

        yield report


def sync(
    engine: Engine,
    settings: Settings,
    console: Console,
    source: str | None = None,
    options: SyncOptions | None = None,
) -> SyncSummary:
    """Sync every enabled source (or one) with a progress bar; stream errors are reported."""
    with _progress(console) as report:
        return sync_all(
            engine,
            settings,
            sources=[source] if source else None,
            progress=report,
            options=options,
        )


def print_sync_summary(console: Console, summary: SyncSummary) -> None:
    views.render_table(
        console,
        "Sync summary",
        ["Source", "Stream", "Records", "Pages", "Quarantined", "Deleted", "Status"],
        (
            [
                r.source,
                r.stream,
                r.records,
                r.pages,
                r.quarantined,
                r.reconciled or "",
                r.status if r.status == "ok" else f"{r.status}: {r.error}",
            ]
            for r in summary.streams
        ),
        styles={2: "number", 3: "number", 4: "number", 5: "number"},
    )
    deleted = summary.reconciled_by_stream()
    if deleted:
        console.print(
            f"Reconciled: {sum(deleted.values())} records the vendors no longer list were "
            "soft-deleted (scores and reports leave them out)",
            highlight=False,
        )
    if summary.links:
        links = ", ".join(f"{count} {status}" for status, count in sorted(summary.links.items()))
        console.print(f"Account matching: {links}", highlight=False)


def score(engine: Engine, settings: Settings, as_of: date) -> ScoreRunSummary:
    return score_accounts(engine, as_of, load_scorecards(settings.scorecard_path))


def describe_scores(summary: ScoreRunSummary) -> str:
    bands = ", ".join(f"{n} {band}" for band, n in summary.bands.items())
    return (
        f"scored {summary.scored} of {summary.accounts} accounts as of {summary.as_of} "
        f"({bands}; {summary.unscored} without data; mean confidence "
        f"{summary.mean_confidence:.0%}; scorecard {summary.scorecard_version})"
    )


@dataclass(frozen=True)
class NotifySummary:
    detected: int
    """Band drops found."""
    created: int
    delivery: DeliverySummary | None
    detection: DetectionSummary | None = None
    tasks: str = ""
    """What the playbooks did: started, posted, reminded, copied to the CRM."""

    def describe(self) -> str:
        if self.detection is not None:
            text = f"{self.detection.describe()} ({self.detected} band drops)"
        else:
            text = f"{self.detected} band drops, {self.created} new alerts"
        tasks = f"\n  {self.tasks}" if self.tasks else ""
        if self.delivery is None:
            return text + "; Slack is not configured, alerts stay pending" + tasks
        d = self.delivery
        text += f"; sent {d.sent} ({d.folded} inside another alert's message about the account)"
        text += f", unroutable {d.unroutable}, failed {d.failed}"
        text += f", deferred {d.deferred}"
        text += f"; {d.rolled} in {d.summaries} daily summaries, {d.held} held, {d.snoozed} snoozed"
        text += f", {d.escalated} escalated, {d.admin_notices} admin notices"
        return text + tasks + "".join(f"\n  {problem}" for problem in d.problems)


def notify(engine: Engine, settings: Settings, as_of: date) -> NotifySummary:
    """Detect alerts as of `as_of` with the configured rules and deliver every due alert."""
    configure_teams(engine, settings)  # leads and channels route escalations and fallbacks
    rules = load_rules(settings.alerts.rules_path)
    detection = detect_alerts(engine, as_of, rules, stale_after=settings.stale_after)
    delivery = None
    now = utcnow()
    started = run_playbooks(engine, now)
    tasks = f"playbooks started {started.started}, {started.created} tasks created"
    if settings.slack.enabled():
        client = make_slack_client(settings)
        admin = settings.slack.admin_channel
        delivery = deliver_pending(engine, client, admin_channel=admin, settings=settings.alerts)
        posted = post_tasks(engine, client, now, admin_channel=admin)
        reminded = remind_overdue(engine, client, now, admin_channel=admin)
        tasks += f"; {posted.posted} tasks posted, {reminded.posted} overdue reminders"
    copied = write_to_crm(engine, settings, now)
    if copied.enabled:
        tasks += f"; {copied.written + copied.rewritten} tasks copied to the CRM"
    return NotifySummary(detection.drops, detection.created, delivery, detection, tasks)


def cycle(
    engine: Engine,
    settings: Settings,
    console: Console,
    as_of: date | None = None,
    source: str | None = None,
) -> None:
    """One scheduled cycle: sync (every enabled source, or one), score, notify."""
    as_of = as_of or date.today()
    summary = sync(engine, settings, console, source) if settings.enabled_sources() else None
    if summary is not None:
        print_sync_summary(console, summary)
    console.print(describe_scores(score(engine, settings, as_of)), highlight=False)
    console.print(notify(engine, settings, as_of).describe(), highlight=False)


def record(engine: Engine, needle: str, value: str, note: str, by: str | None) -> str:
    """Record a CSM's sentiment on the account `needle` names; returns its name."""
    with Session(engine) as session:
        account = lookup.find_account(session, needle)
        assert account.id is not None
    record_sentiment(engine, account.id, value, note, author_email=by, origin="cli")
    return account.name


def link(engine: Engine, source: str, external_id: str, needle: str) -> str:
    """Record an admin's decision that a record of `source` belongs to the account `needle`."""
    with session_scope(engine) as session:
        account = lookup.find_account(session, needle)
        assert account.id is not None
        link_manually(session, source, external_id, account.id)
        return account.name


def _value_text(value: float | str | None) -> str:
    if value is None:
        return "no data"
    return value if isinstance(value, str) else f"{value:.3g}"


def _measure_row(line: MeasureLine) -> list[str]:
    def number(value: float | None, sign: str = "") -> str:
        return "" if value is None else format(value, f"{sign}.0f")

    return [
        line.component,
        f"{line.text} ({line.measure})" if line.text else line.measure,
        _value_text(line.value),
        number(line.score),
        f"{line.weight:.0%}" if line.score is not None else "",
        number(line.points),
        number(line.change, "+"),
        line.data,
    ]


def _trend_lines(session: Session, latest: HealthScore) -> list[str]:
    """`Trend: 7 d -4, 30 d -23, 90 d -40` and the measures that moved most in 30 days."""
    parts, lines = [], []
    baseline: HealthScore | None = None
    for days in WINDOWS:
        then = score_on_or_before(session, latest.account_id, latest.as_of - timedelta(days=days))
        if then is not None:
            parts.append(f"{days} d {latest.score - then.score:+.0f}")
            if days == 30:
                baseline = then
    if parts:
        lines.append("Trend: " + ", ".join(parts))
    if baseline is not None and abs(latest.score - baseline.score) >= 1:
        moved = ", ".join(f"{m.measure} {m.points:+.0f}" for m in moves(latest, baseline))
        if moved:
            lines.append(f"Moved most since {baseline.as_of}: {moved}")
    return lines


def print_explain(
    console: Console,
    engine: Engine,
    needle: str,
    stale_after: StaleAfter | None = None,
    scorecards: Sequence[Scorecard] = (),
) -> None:
    """The account's score, components, drivers and history, for a person; a measure's data
    is stale after `stale_after(source)` (`Settings.stale_after`), else `STALE_AFTER`."""
    with Session(engine) as session:
        account = lookup.find_account(session, needle)
        assert account.id is not None
        health = explain(session, account.id)
        sentiment = lookup.latest_sentiment(session, account.id)
        previous = health.history[-2] if len(health.history) > 1 else None
        latest = health.latest
        measures = (
            measure_lines(session, latest, previous, stale_after=stale_after, scorecards=scorecards)
            if latest
            else []
        )
        trend = _trend_lines(session, health.latest) if health.latest else []
    latest = health.latest
    header = f"{account.name} ({account.domain or 'no domain'}, CRM id {account.external_id})"
    if latest is None:
        views.panel(console, header, "not scored yet: run `health-agent score`")
        return
    lines = [
        f"Score {latest.score:.0f} ({latest.band}) as of {latest.as_of}, "
        f"confidence {latest.confidence:.0%}, scorecard {latest.scorecard_version}",
        f"Owner {account.owner_email or '(unowned)'}; renewal {account.renewal_date or 'unknown'}",
    ]
    if sentiment is not None:
        lines.append(
            f"CSM sentiment {sentiment.sentiment} on {sentiment.recorded_at:%Y-%m-%d}"
            + (f": {sentiment.note}" if sentiment.note else "")
        )
    for signal in latest.components.get(SIGNALS) or []:
        lines.append(f"Look again: {signal['text']}")
    caps = latest.components.get("caps") or {}
    for fired in caps.get("fired", []):
        if fired.get("lowered"):
            lines.append(f"Capped by rule {fired['name']!r}: {fired.get('reason', '')}")
    lines.extend(trend)
    lines.append("")
    lines.extend(f"- {lookup.driver_text(d)}" for d in latest.drivers)
    views.panel(console, header, "\n".join(lines))
    views.render_table(
        console,
        "Measures" + (f" (change since {previous.as_of})" if previous else ""),
        ["Component", "Measure", "Value", "Score", "Weight", "Points", "Change", "Data"],
        (_measure_row(line) for line in measures),
        styles={3: "number", 4: "number", 5: "number", 6: "number"},
    )
    uncapped = sum(line.points or 0.0 for line in measures)
    if uncapped and abs(uncapped - latest.score) >= 0.5:
        console.print(
            f"Points add up to {uncapped:.0f}; the cap above brings it to {latest.score:.0f}.",
            highlight=False,
        )
    missing = [line.measure for line in measures if line.score is None]
    if missing:
        console.print(
            f"No data for {', '.join(missing)}: left out, the others' weights re-normalised "
            f"(confidence {latest.confidence:.0%}).",
            highlight=False,
        )
    views.render_table(
        console,
        "History",
        ["As of", "Score", "Band"],
        ([h.as_of.isoformat(), f"{h.score:.0f}", h.band] for h in health.history),
        styles={1: "number"},
    )
