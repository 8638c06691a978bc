"""`health-agent demo`: the whole agent on a synthetic book of business, with no credentials.

Starts the sandbox emulators of HubSpot, Zendesk, Stripe and Slack on 127.0.0.1, points the
real connectors at them over HTTP, drops the book's per-feature usage (long form) and survey
answers into a drop folder (`demo-output/drop`) the folder source imports, maps the
companies' custom properties to account traits, syncs into the configured database (the
default SQLite file), backfills twelve weeks of point-in-time scores, sends the band-drop
alerts to the Slack emulator and prints what happened; then a failed payment arrives as a
signed Stripe webhook and reaches its CSM at once. Running it again changes nothing:
cursors say there is nothing new (a file the folder imported already is not dropped again),
alert fingerprints say every alert went out already, and the webhook event is known by its
id.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

import pipeline
import reports
import views
import webapp
from notifications import deliver_pending, detect_alerts, make_slack_client
from notifications.digest import choose_teams, preview_digests
from sandbox.book import Book, generate_book
from sandbox.hubspot import HUBSPOT_TOKEN, hubspot_app
from sandbox.metrics_csv import metrics_csv_text
from sandbox.ratelimit import Limits
from sandbox.server import serve_apps
from sandbox.slack import SLACK_BOT_TOKEN, slack_app, user_id
from sandbox.stripe import STRIPE_API_KEY, stripe_app
from sandbox.surveys_csv import surveys_csv_text
from sandbox.usage_csv import usage_csv_text
from sandbox.webhooks import stripe_event, stripe_headers
from sandbox.zendesk import ZENDESK_API_TOKEN, ZENDESK_EMAIL, zendesk_app
from scoring import backfill
from scoring.selection import load_scorecards
from settings import (
    FolderSettings,
    HubSpotSettings,
    Settings,
    SlackSettings,
    StripeSettings,
    TraitField,
    TraitFields,
    UsageFileSettings,
    ZendeskSettings,
)
from store.db import open_store
from store.models import (
    Account,
    Alert,
    ExternalLink,
    HealthScore,
    SentimentEntry,
    SyncState,
    WebhookEvent,
)
from store.money import Rates

__all__ = ["run_demo"]

HISTORY_WEEKS = 13
DEMO_EVENT_ID = "evt_sandbox_demo_payment_failed"
WEBHOOK_SECRET = "whsec_sandbox_demo"  # noqa: S105  # the demo's own, signed and checked here
TIME_SCALE = 60.0  # the emulators keep the vendors' budgets, with windows 60x shorter
OUTPUT_DIR = Path("demo-output")
RATES_CSV = OUTPUT_DIR / "exchange-rates.csv"
EUR_IN_USD = Decimal("1.08")
"""The demo's exchange rate: the sandbox bills one company in five in EUR."""
DROP_FILES = (("usage", "usage-metrics.csv"), ("surveys", "surveys.csv"))
"""What the demo drops into its folder: per-feature usage (long form) and survey answers."""
HUBSPOT_TRAITS: TraitFields = {
    "contract_type": "contract_type",
    "payment_method": "payment_method",
    "plan": "plan",
    "onboarding_completed": TraitField(property="onboarding_completed", kind="boolean"),
    "industry": "industry",
    "employees": TraitField(property="numberofemployees", kind="number"),
}
"""The sandbox companies' properties read into account traits."""


def _write_if_changed(path: Path, text: str) -> Path:
    """Keep the file (and its mtime) when the content is the same, so re-syncs find nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _drop_new_files(engine: Engine, folder: Path, book: Book) -> None:
    """Drop the book's usage metrics and survey answers into the folder, unless the same
    file was imported already (the folder's cursor names each file with its fingerprint)."""
    texts = {"usage": metrics_csv_text(book), "surveys": surveys_csv_text(book)}
    with Session(engine) as session:
        cursors = dict(
            session.exec(
                select(SyncState.stream, SyncState.cursor).where(SyncState.source == "folder")
            ).all()
        )
    for kind, name in DROP_FILES:
        data = texts[kind].encode("utf-8")
        fingerprint = f"sha256:{hashlib.sha256(data).hexdigest()[:16]}"
        if cursors.get(kind) != f"{name} {fingerprint}":
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)


def _sandbox_settings(
    settings: Settings, base: str, usage_csv: Path, folder: Path | None = None
) -> Settings:
    """The configured settings, with every source pointed at the emulators (and the drop
    folder at `folder`, if given)."""
    return settings.model_copy(
        update={
            "hubspot": HubSpotSettings(
                token=SecretStr(HUBSPOT_TOKEN),
                base_url=f"{base}/hubspot",
                traits=HUBSPOT_TRAITS,
            ),
            "zendesk": ZendeskSettings(
                email=ZENDESK_EMAIL,
                api_token=SecretStr(ZENDESK_API_TOKEN),
                base_url=f"{base}/zendesk",
            ),
            "stripe": StripeSettings(api_key=SecretStr(STRIPE_API_KEY), base_url=f"{base}/stripe"),
            "usage_file": UsageFileSettings(path=usage_csv),
            "folder": FolderSettings(path=folder, settle_seconds=0.0)
            if folder
            else settings.folder,
            "slack": SlackSettings(
                bot_token=SecretStr(SLACK_BOT_TOKEN), base_url=f"{base}/slack/api/"
            ),
        }
    )


def _seed_sentiment(engine: Engine, book: Book) -> int:
    """Enter the CSMs' sentiment from the book once (what they would type in Slack or the CLI)."""
    with Session(engine) as session:
        ids: dict[str, int] = {
            external_id: account_id
            for external_id, account_id in session.exec(
                select(Account.external_id, col(Account.id)).where(Account.source == "hubspot")
            ).all()
            if account_id is not None
        }
        existing = set(
            session.exec(select(SentimentEntry.account_id, SentimentEntry.recorded_at)).all()
        )
        new = [
            SentimentEntry(
                account_id=ids[s.company_id],
                sentiment=s.sentiment,
                note=s.note,
                author_email=s.author_email,
                origin="sandbox",
                recorded_at=s.recorded_at,
            )
            for s in book.sentiments
            if s.company_id in ids and (ids[s.company_id], s.recorded_at) not in existing
        ]
        session.add_all(new)
        session.commit()
    return len(new)


def _render_message(message: dict[str, Any]) -> str:
    """A Block Kit message as plain lines: texts, fields, and buttons in brackets."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict) and text.get("text"):
            lines.append(str(text["text"]))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("type") in ("mrkdwn", "plain_text"):
                lines.append(str(element.get("text", "")))
        for field in block.get("fields") or []:
            if isinstance(field, dict):
                lines.append(str(field.get("text", "")))
        buttons = [
            str(e["text"]["text"])
            for e in block.get("elements") or []
            if isinstance(e, dict) and e.get("type") == "button"
        ]
        if buttons:
            lines.append("  ".join(f"[ {b} ]" for b in buttons))
    return "\n".join(lines) if lines else str(message.get("text", ""))


def _print_slack(console: Console, engine: Engine, recorder: Any, book: Book) -> None:
    people = {user_id(o.email): (f"{o.first_name} {o.last_name}", o.email) for o in book.owners}
    messages = list(recorder.messages)
    with Session(engine) as session:
        sent_before = session.exec(
            select(func.count()).select_from(Alert).where(col(Alert.status) == "sent")
        ).one()
    console.rule(f"3. Notify: Slack messages CSMs received ({len(messages)} this run)")
    if not messages:
        console.print(
            f"No new alerts: all {sent_before} alerts were delivered before "
            "(each alert has a fingerprint and goes out once).",
            highlight=False,
        )
    named = {c.name for c in book.companies if c.id in set(book.stories.values())}
    summaries = [m for m in messages if "alerts summary" in str(m.get("text", ""))]
    stories = [
        m
        for m in messages
        if m not in summaries and any(n in str(m.get("text", "")) for n in named)
    ]
    shown = stories + summaries[:1]
    for message in shown:
        name, email = people.get(str(message.get("user")), (str(message.get("channel")), ""))
        title = f"DM to {name} <{email}>" if email else f"Message to {name}"
        views.panel(console, title, _render_message(message))
    if len(messages) > len(shown):
        console.print(
            f"Shown: the DMs about the planted stories and one daily summary; "
            f"{len(messages) - len(shown)} more went out ({len(summaries)} daily summaries "
            "in all, for alerts past each CSM's daily budget).",
            highlight=False,
        )


def _demo_rates(settings: Settings) -> Rates:
    """The configured rates; when they cannot convert the sandbox's EUR and USD, the demo's
    own rate (written to `RATES_CSV`) for a reporting currency of USD or EUR."""
    rates = Rates.from_settings(settings)
    if rates.can_convert("EUR") and rates.can_convert("USD"):
        return rates
    line = {"USD": f"EUR,{EUR_IN_USD}", "EUR": f"USD,{1 / EUR_IN_USD:.6f}"}.get(rates.reporting)
    if line is None:  # another reporting currency: the figures say they are partial
        return rates
    path = _write_if_changed(RATES_CSV, f"date,currency,rate\n2020-01-01,{line}\n").resolve()
    return Rates.from_settings(settings.model_copy(update={"exchange_rates_file": path}))


def _print_digest(console: Console, engine: Engine, today: date, book: Book, rates: Rates) -> None:
    """One team's weekly digest as its lead would get it, and its chart beside the database.

    The CRM names no team lead, so the preview shows the lead the sandbox book has.
    """
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    folder = Path(database).resolve().parent if database else OUTPUT_DIR
    leads = {t.id: o.email for t in book.teams for o in book.owners if o.id == t.lead_id}
    team = choose_teams(engine)[0]
    team = replace(team, lead_email=team.lead_email or leads.get(team.external_id))
    console.rule(f"5. Digest: the weekly digest for the lead of {team.name} (preview)")
    [chart] = preview_digests(engine, console, [team], today, folder, rates=rates)
    console.print(
        f"The chart is at {chart}. `health-agent digest --preview` shows every team's; "
        "without --preview each goes to its lead and team channel in Slack, once a week.",
        highlight=False,
    )


def _billed_green_account(engine: Engine, today: date, budget: int) -> tuple[Account, str] | None:
    """The largest green account billed in Stripe whose CSM can take one more alert today."""
    midnight = datetime.combine(today, datetime.min.time(), UTC)
    with Session(engine) as session:
        told = session.exec(
            select(Alert.recipient_email, func.count())
            .where(
                col(Alert.status) == "sent",
                col(Alert.sent_at) >= midnight,
                col(Alert.rolled_into).is_(None),  # one message per lead alert
            )
            .group_by(col(Alert.recipient_email))
        ).all()
        candidates = session.exec(
            select(Account, ExternalLink.external_id)
            .join(ExternalLink, col(ExternalLink.account_id) == col(Account.id))
            .join(HealthScore, col(HealthScore.account_id) == col(Account.id))
            .where(
                col(ExternalLink.source) == "stripe",
                col(HealthScore.as_of) == today,
                col(HealthScore.band) == "green",
            )
            .order_by(col(Account.arr_minor).desc(), col(Account.id))
        ).all()
    sent = dict(told)
    return next(((a, c) for a, c in candidates if sent.get(a.owner_email, 0) < budget), None)


def _demo_account(engine: Engine) -> tuple[Account, str] | None:
    """The account of the demo's webhook event on an earlier run, to send the same again."""
    with Session(engine) as session:
        row = session.exec(
            select(Account, ExternalLink.external_id)
            .join(WebhookEvent, col(WebhookEvent.account_id) == col(Account.id))
            .join(ExternalLink, col(ExternalLink.account_id) == col(Account.id))
            .where(
                col(WebhookEvent.event_id) == DEMO_EVENT_ID,
                col(ExternalLink.source) == "stripe",
            )
        ).first()
    return (row[0], row[1]) if row else None


def _failed_invoice(settings: Settings, customer: str) -> dict[str, Any]:
    """The customer's latest invoice from the Stripe emulator, as if its payment just failed."""
    assert settings.stripe.api_key is not None
    answer = httpx.get(
        f"{settings.stripe.base_url}/v1/invoices",
        params={"customer": customer, "limit": 1},
        auth=(settings.stripe.api_key.get_secret_value(), ""),
    )
    invoice = dict(answer.raise_for_status().json()["data"][0])
    now = int(time.time())
    invoice.update(
        id=f"{invoice['id']}_retry",  # the same id on every run: upserted, never twice
        status="open",
        paid=False,
        attempted=True,
        attempt_count=1,
        amount_paid=0,
        amount_remaining=invoice["amount_due"],
        created=now,
        next_payment_attempt=now + 3 * 86400,
        status_transitions={**invoice.get("status_transitions", {}), "paid_at": None},
    )
    return invoice


async def _post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # the app's background work ends before this returns
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        return await client.post(path, content=body, headers=headers)


def _print_webhook(
    console: Console, engine: Engine, settings: Settings, recorder: Any, today: date
) -> None:
    """A failed payment arrives as a signed Stripe webhook; the CSM hears at once."""
    console.rule("4. Webhook: a failed payment reaches its CSM without waiting for a sync")
    chosen = _demo_account(engine) or _billed_green_account(
        engine, today, settings.alerts.daily_budget
    )
    if chosen is None:
        console.print("No green account billed in Stripe to show a webhook with.")
        return
    account, customer = chosen
    hooked = settings.model_copy(
        update={"stripe": settings.stripe.model_copy(
            update={"webhook_secret": SecretStr(WEBHOOK_SECRET)})}
    )  # fmt: skip
    app = webapp.create_web_app(engine, hooked)
    invoice = _failed_invoice(settings, customer)
    body = stripe_event("invoice.payment_failed", invoice, event_id=DEMO_EVENT_ID)
    before = len(recorder.messages)
    started = time.monotonic()
    answer = asyncio.run(_post(app, "/webhooks/stripe", body, stripe_headers(body, WEBHOOK_SECRET)))
    elapsed = time.monotonic() - started
    console.print(
        f"POST /webhooks/stripe (invoice.payment_failed for {account.name}, signed): "
        f"HTTP {answer.status_code} {answer.text}",
        highlight=False,
    )
    told = [m for m in list(recorder.messages)[before:] if account.name in str(m.get("text"))]
    if answer.json().get("new") == 0:
        console.print(
            "This event was received on an earlier run: deduplicated by its id, it changes "
            "nothing and no DM goes out again.",
            highlight=False,
        )
        return
    if not told:
        console.print("No DM went out: see `health-agent status` and the alerts table.")
        return
    for message in told:
        views.panel(console, f"DM to {account.owner_email}", _render_message(message))
    console.print(
        f"Verified, stored, rescored and delivered in {elapsed:.2f} s; the same event sent "
        "again changes nothing (deduplicated by its id).",
        highlight=False,
    )


def run_demo(settings: Settings, console: Console, *, seed: int = 7, accounts: int = 300) -> None:
    """Sync, score and alert on the sandbox book; print the sections, then a weekly digest."""
    started = time.monotonic()
    today = datetime.now(UTC).date()
    book = generate_book(seed=seed, accounts=accounts, today=today)
    usage_csv = _write_if_changed(OUTPUT_DIR / "usage.csv", usage_csv_text(book))
    engine = open_store(settings.database_url)
    drop = OUTPUT_DIR / "drop"
    _drop_new_files(engine, drop, book)
    users = [(o.email, f"{o.first_name} {o.last_name}") for o in book.owners]
    apps = {
        "hubspot": hubspot_app(book, limits=Limits.vendor("hubspot", time_scale=TIME_SCALE)),
        "zendesk": zendesk_app(book, limits=Limits.vendor("zendesk", time_scale=TIME_SCALE)),
        "stripe": stripe_app(book, limits=Limits.vendor("stripe", time_scale=TIME_SCALE)),
        "slack": slack_app(users),
    }
    console.print(
        f"Sandbox book: {len(book.companies)} accounts, {len(book.owners)} CSMs and leads in "
        f"{len(book.teams)} teams, seed {seed}; database {views.scrub(settings.database_url, [])}",
        highlight=False,
    )
    with serve_apps(apps) as base:
        demo_settings = _sandbox_settings(settings, base, usage_csv.resolve(), drop.resolve())
        console.rule("1. Sync: the real connectors against the sandbox emulators")
        summary = pipeline.sync(engine, demo_settings, console)
        pipeline.print_sync_summary(console, summary)
        seeded = _seed_sentiment(engine, book)
        scorecard = load_scorecards(settings.scorecard_path)
        runs = backfill(engine, HISTORY_WEEKS, today, scorecard)
        detection = detect_alerts(engine, today)
        slack = make_slack_client(demo_settings)
        delivery = deliver_pending(engine, slack, admin_channel=demo_settings.slack.admin_channel)
        console.rule("2. Score: every account, point in time, with its drivers")
        console.print(
            f"{seeded} CSM sentiment entries recorded; {len(runs)} weekly scores per account "
            f"back to {today - timedelta(weeks=HISTORY_WEEKS - 1)}; "
            + pipeline.describe_scores(runs[-1]),
            highlight=False,
        )
        rates = _demo_rates(demo_settings)
        reports.print_accounts(console, reports.accounts_overview(engine, rates), limit=15)
        console.print(
            f"Alerts: {detection.describe()}; sent {delivery.sent} ({delivery.folded} folded "
            "into another alert's message about the same account), rolled into "
            f"{delivery.summaries} daily summaries {delivery.rolled}, unroutable "
            f"{delivery.unroutable}, failed {delivery.failed}",
            highlight=False,
        )
        _print_slack(console, engine, apps["slack"].state.recorder, book)
        _print_webhook(console, engine, demo_settings, apps["slack"].state.recorder, today)
    _print_digest(console, engine, today, book, rates)
    stories = ", ".join(f"{name} = {book.stories[name]}" for name in sorted(book.stories))
    console.print(
        f"\nPlanted stories (CRM ids): {stories}.\nTry `health-agent explain "
        f"{book.stories.get('churn_risk', '')}` or `health-agent accounts --json`. "
        f"A fifth of the book is billed in EUR: EXCHANGE_RATES_FILE={RATES_CSV} converts it "
        "in `health-agent team`, `digest` and `accounts` too. "
        f"Done in {time.monotonic() - started:.1f} s.",
        highlight=False,
    )
