"""The book's per-feature usage, surveys and traits: deterministic, well shaped, importable,
and leaning with churn the way real books do, without any one of them giving churn away."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from statistics import mean, median

import pytest

from connectors.files import map_file_row
from sandbox.book import Book, generate_book
from sandbox.gen_features import HISTORY_WEEKS, METRICS
from sandbox.gen_traits import PLANS, TRAIT_NAMES
from sandbox.hubspot import hubspot_app
from sandbox.metrics_csv import METRICS_CSV_HEADER, metrics_csv_text
from sandbox.ratelimit import Limits
from sandbox.surveys_csv import SURVEYS_CSV_HEADER, surveys_csv_text
from tests.sandbox.conftest import HUBSPOT_AUTH, TODAY, asgi_client
from tests.sandbox.precursors import cohort, readings, signal_table

_VALUES = {
    "contract_type": {"monthly", "annual", "two_year"},
    "payment_method": {"card", "invoice", "direct_debit"},
    "plan": set(PLANS),
    "onboarding_completed": {"yes", "no"},
}


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_signals_are_deterministic_for_a_seed_and_day(book: Book) -> None:
    again = generate_book(seed=7, accounts=300, today=TODAY)
    assert again.metrics == book.metrics
    assert again.surveys == book.surveys
    assert again.traits == book.traits
    assert metrics_csv_text(again) == metrics_csv_text(book)
    assert surveys_csv_text(again) == surveys_csv_text(book)
    other = generate_book(seed=8, accounts=300, today=TODAY)
    assert other.metrics != book.metrics
    assert other.surveys != book.surveys


def test_metrics_are_weekly_while_a_customer(book: Book) -> None:
    first_monday = min(u.week_start for u in book.usage)
    assert {m.metric for m in book.metrics} == set(METRICS)
    assert all(m.day.weekday() == 0 and m.period_days == 7 and m.value > 0 for m in book.metrics)
    days = {m.day for m in book.metrics}
    assert min(days) == first_monday - timedelta(weeks=HISTORY_WEEKS - 52)
    assert max(days) == max(u.week_start for u in book.usage)
    assert max(days) + timedelta(days=7) <= book.today
    lost = {d.company_id: d.close_date.date() for d in book.deals if d.stage == "closedlost"}
    by_account: dict[str, list[str]] = defaultdict(list)
    for m in book.metrics:
        by_account[m.company_id].append(m.metric)
        if m.company_id in lost:
            assert m.day <= lost[m.company_id]  # nothing after the week it churned
    customers = {c.id for c in book.active_companies() if c.lifecycle_stage != "opportunity"}
    missing = customers - set(by_account)
    assert 0 < len(missing) <= 0.08 * len(customers)  # a few accounts send no feed
    assert not missing & set(book.stories.values())


def test_metrics_csv_is_the_long_form_the_usage_import_reads(book: Book) -> None:
    text = metrics_csv_text(book)
    rows = _rows(text)
    assert tuple(rows[0]) == METRICS_CSV_HEADER
    assert len(rows) == len(book.metrics)
    assert {r["period"] for r in rows} == {"week"}
    for line, row in enumerate(rows[:: max(1, len(rows) // 500)], start=2):
        [metric, link] = map_file_row("usage", {**row, "line": line})
        assert metric.values["period_days"] == 7
        assert metric.values["metric"] == row["metric"]
        assert link.values["crm_hint"] == row["account_id"]


def test_surveys_are_on_their_scales_and_importable(book: Book) -> None:
    kinds = Counter(s.kind for s in book.surveys)
    assert kinds["nps"] > 500
    assert kinds["csat"] > 500
    for s in book.surveys:
        assert s.responded_at < book.now
        if s.kind == "nps":
            assert 0 <= s.score <= 10
            assert s.scale_max == 10
            assert s.account_id == s.company_id
        else:
            assert 1 <= s.score <= 5
            assert s.scale_max == 5
            assert s.account_id is None
        assert s.email.endswith(f"@{s.domain}")
    assert len({s.id for s in book.surveys}) == len(book.surveys)
    rows = _rows(surveys_csv_text(book))
    assert tuple(rows[0]) == SURVEYS_CSV_HEADER
    for line, row in enumerate(rows[::50], start=2):
        [answer, *_links] = map_file_row("surveys", {**row, "line": line})
        assert answer.values["kind"] in ("nps", "csat")


def test_nps_answer_counts_vary_and_some_accounts_never_answer(book: Book) -> None:
    answers = Counter(s.company_id for s in book.surveys if s.kind == "nps")
    customers = [c.id for c in book.active_companies() if c.lifecycle_stage != "opportunity"]
    silent = [c for c in customers if c not in answers]
    assert 0.05 * len(customers) < len(silent) < 0.35 * len(customers)
    counts = sorted(answers.values())
    assert counts[0] <= 2
    assert counts[-1] >= 8
    scores = Counter(s.score for s in book.surveys if s.kind == "nps")
    assert sum(n for score, n in scores.items() if score <= 6) > 0.1 * sum(scores.values())
    assert sum(n for score, n in scores.items() if score >= 9) > 0.2 * sum(scores.values())


def test_traits_are_complete_and_the_plan_changes_for_some(book: Book) -> None:
    now: dict[tuple[str, str], str] = {}
    plans: Counter[str] = Counter()
    for t in book.traits:
        assert t.value in _VALUES[t.name]
        assert t.changed_at < book.now
        now[t.company_id, t.name] = t.value
        plans[t.company_id] += t.name == "plan"
    profiles = {c for c, _name in now}
    assert len(profiles) == 300
    assert all((c, name) in now for c in profiles for name in TRAIT_NAMES)
    changed = [c for c, n in plans.items() if n > 1]
    assert 10 <= len(changed) <= 60
    companies = {c.id: c for c in book.companies}
    latest: dict[str, datetime] = {}
    for t in book.traits:
        latest[t.company_id] = max(t.changed_at, latest.get(t.company_id, t.changed_at))
    assert all(companies[c].updated_at >= latest[c] for c in changed)


def test_hubspot_serves_the_traits_and_their_history(book: Book) -> None:
    client = asgi_client(hubspot_app(book, limits=Limits.unlimited()), HUBSPOT_AUTH)
    changed = next(
        c
        for c, n in Counter(t.company_id for t in book.traits if t.name == "plan").items()
        if n > 1
    )
    wanted = {
        "properties": "name,plan,contract_type",
        "propertiesWithHistory": "plan",
        "limit": 100,
    }
    after, found = 0, None
    while found is None:
        body = client.get("/crm/v3/objects/companies", params={**wanted, "after": after}).json()
        assert len(body["results"]) <= 50  # HubSpot's page limit with history
        found = next((r for r in body["results"] if r["id"] == changed), None)
        after = int(body["paging"]["next"]["after"]) if found is None else after
    plans = [t for t in book.traits if t.company_id == changed and t.name == "plan"]
    assert found["properties"]["plan"] == plans[-1].value
    assert found["properties"]["contract_type"] == book.traits_of(changed)["contract_type"]
    history = found["propertiesWithHistory"]["plan"]
    assert [h["value"] for h in history] == [t.value for t in reversed(plans)]
    assert history[0]["timestamp"] > history[-1]["timestamp"]


@pytest.fixture(scope="module")
def table(book: Book) -> dict[str, float]:
    return {row.name: row.auc for row in signal_table(book)}


def test_no_signal_gives_churn_away(table: dict[str, float]) -> None:
    assert all(value < 0.85 for value in table.values()), table
    leaning = {k: v for k, v in table.items() if not k.startswith("employees")}
    assert all(value > 0.5 for value in leaning.values()), table
    assert mean(leaning.values()) > 0.6


def test_churners_narrow_their_feature_breadth_but_overlap_the_retained(book: Book) -> None:
    group = cohort(book)
    read = readings(book)["feature breadth (4 weeks)"]
    churned = [-v for c, d in group.churned.items() if (v := read(c, d)) is not None]
    retained = [-v for c, d in group.retained.items() if (v := read(c, d)) is not None]
    assert mean(churned) < mean(retained) - 0.3
    assert sum(b >= median(retained) for b in churned) >= 0.2 * len(churned)
    assert sum(b <= median(churned) for b in retained) >= 0.1 * len(retained)
    assert max(churned) == 6  # some churners use every module 60 days before they leave


def test_churn_leans_with_the_traits_over_several_books() -> None:
    churn: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    for seed in (7, 8, 9):
        book = generate_book(seed=seed, accounts=300, today=TODAY)
        group = cohort(book)
        today = {(t.company_id, t.name): t.value for t in book.traits}
        for (company, name), value in today.items():
            if company in group.churned or company in group.retained:
                total[name, value] += 1
                churn[name, value] += company in group.churned

    def rate(name: str, value: str) -> float:
        return churn[name, value] / total[name, value]

    assert rate("contract_type", "monthly") > rate("contract_type", "annual")
    assert rate("contract_type", "annual") > rate("contract_type", "two_year")
    assert rate("payment_method", "card") > rate("payment_method", "invoice")
    assert rate("onboarding_completed", "no") > rate("onboarding_completed", "yes")
    assert rate("plan", "starter") > rate("plan", "enterprise")
    assert rate("contract_type", "two_year") > 0
    assert rate("onboarding_completed", "yes") > 0
