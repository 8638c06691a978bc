"""How well each sandbox signal tells churners from retained accounts, read from a `Book`.

Churners are the accounts whose renewal was lost (a closed-lost deal); each is read 60 days
before its churn, and each retained account at one of those same days (the churners' days,
in turn), so both groups are read at comparable times. A signal's ROC AUC is the chance
that a churner scores as riskier than a retained account (ties count half).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sandbox.book import Book
from sandbox.gen_features import FEATURES

__all__ = ["Cohort", "auc", "cohort", "signal_table"]

LEAD = timedelta(days=60)


@dataclass(frozen=True)
class Cohort:
    """Churners and retained accounts, each with the day it is read."""

    churned: dict[str, date]
    retained: dict[str, date]


def cohort(book: Book) -> Cohort:
    lost = {
        d.company_id: d.close_date.date()
        for d in book.deals
        if d.kind == "existingbusiness" and d.is_closed and not d.is_won
    }
    churned = {c: day - LEAD for c, day in sorted(lost.items())}
    days = sorted(churned.values())
    alive = sorted(
        c.id
        for c in book.active_companies()
        if c.id not in lost and c.lifecycle_stage in ("customer", "evangelist")
    )
    retained = {c: days[k % len(days)] for k, c in enumerate(alive)}
    return Cohort(churned, retained)


def auc(churned: list[float], retained: list[float]) -> float:
    """ROC AUC of a risk value (higher = riskier), ties counted half."""
    if not churned or not retained:
        return float("nan")
    wins = 0.0
    for c in churned:
        for r in retained:
            wins += 1.0 if c > r else 0.5 if c == r else 0.0
    return wins / (len(churned) * len(retained))


Reading = Callable[[str, date], float | None]


def _metrics(book: Book) -> dict[str, dict[date, dict[str, int]]]:
    """Long-form metrics and the weekly CSV's active users, by account, week and metric."""
    out: dict[str, dict[date, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for m in book.metrics:
        out[m.company_id][m.day][m.metric] = m.value
    for u in book.usage:
        if u.week_start in out.get(u.company_id, {}):
            out[u.company_id][u.week_start]["active_users"] = u.active_users
    return out


def readings(book: Book) -> dict[str, Reading]:
    """Named risk readings of an account on a day (None: nothing known then)."""
    weeks = _metrics(book)
    answers: dict[str, list[tuple[datetime, str, int, int]]] = defaultdict(list)
    for s in book.surveys:
        answers[s.company_id].append((s.responded_at, s.kind, s.score, s.scale_max))
    history: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    for t in book.traits:
        history[t.company_id, t.name].append((t.changed_at, t.value))
    companies = {c.id: c for c in book.companies}

    def window(company: str, day: date, back: int, length: int = 28) -> list[dict[str, int]]:
        start, end = day - timedelta(days=back), day - timedelta(days=back - length)
        return [v for d, v in weeks.get(company, {}).items() if start <= d < end]

    def breadth(company: str, day: date) -> float | None:
        rows = window(company, day, 28)
        if not rows:
            return None
        return -float(len({m for r in rows for m in r if m in FEATURES}))

    def logins_trend(company: str, day: date) -> float | None:
        now = sum(r.get("logins", 0) for r in window(company, day, 28))
        before = sum(r.get("logins", 0) for r in window(company, day, 112))
        return None if before == 0 else -(now / before)

    def help_reads(company: str, day: date) -> float | None:
        rows = window(company, day, 28)
        users = sum(r.get("active_users", 0) for r in rows)
        return None if not users else sum(r.get("help_articles_read", 0) for r in rows) / users

    def survey(kind: str) -> Reading:
        def read(company: str, day: date) -> float | None:
            moment = datetime(day.year, day.month, day.day, tzinfo=book.now.tzinfo)
            got = [
                score / scale
                for at, k, score, scale in answers.get(company, [])
                if k == kind and moment - timedelta(days=180) <= at < moment
            ]
            return None if not got else -sum(got) / len(got)

        return read

    def trait(name: str, risky: dict[str, float]) -> Reading:
        def read(company: str, day: date) -> float | None:
            moment = datetime(day.year, day.month, day.day, tzinfo=book.now.tzinfo)
            values = [v for at, v in history.get((company, name), []) if at < moment]
            return risky.get(values[-1], 0.0) if values else None

        return read

    def small(company: str, day: date) -> float | None:
        return -float(companies[company].employees)

    return {
        "feature breadth (4 weeks)": breadth,
        "logins trend (last 4 weeks / 4 weeks 3 months before)": logins_trend,
        "help articles read per active user": help_reads,
        "NPS (mean, 180 days)": survey("nps"),
        "CSAT (mean, 180 days)": survey("csat"),
        "contract_type monthly": trait("contract_type", {"monthly": 1.0, "annual": 0.5}),
        "payment_method card": trait("payment_method", {"card": 1.0}),
        "plan (lower is riskier)": trait("plan", {"starter": 2.0, "growth": 1.0}),
        "onboarding_completed no": trait("onboarding_completed", {"no": 1.0}),
        "employees (smaller is riskier)": small,
    }


@dataclass(frozen=True)
class SignalRow:
    name: str
    auc: float
    churned_known: int
    retained_known: int
    churned_mean: float
    retained_mean: float


def signal_table(book: Book) -> list[SignalRow]:
    """Each signal's AUC and coverage over the cohort of `book`."""
    group = cohort(book)
    rows = []
    for name, read in readings(book).items():
        churned = [v for c, d in group.churned.items() if (v := read(c, d)) is not None]
        retained = [v for c, d in group.retained.items() if (v := read(c, d)) is not None]
        rows.append(
            SignalRow(
                name,
                auc(churned, retained),
                len(churned),
                len(retained),
                sum(churned) / len(churned) if churned else float("nan"),
                sum(retained) / len(retained) if retained else float("nan"),
            )
        )
    return rows
