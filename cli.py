"""The `health-agent` command: the admin's and the lead's face of the agent.

Every command opens the one database (migrating it first), does its work through the rooms
of the house (connectors, scoring, notifications), and prints tables on a terminal or JSON
with `--json`. Errors a person can fix (a missing setting, a rejected token) are one line on
stderr naming the source and the fix, with no traceback and no secret.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

import reports
import views
from logs import setup_logging
from settings import ConfigError, Settings, get_settings
from store import lookup
from store.db import open_store

if TYPE_CHECKING:
    from scoring.scorecard import Scorecard

__all__ = ["app", "main"]

app = typer.Typer(
    name="health-agent",
    help="Customer health agent: sync, score and alert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
sentiment_app = typer.Typer(help="CSM sentiment about an account.", no_args_is_help=True)
sources_app = typer.Typer(help="What came in from the data sources.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sentiment_app, name="sentiment")
scorecard_app = typer.Typer(help="Health scorecards (TOML).", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(scorecard_app, name="scorecard")

out = Console()
if not out.is_terminal and "COLUMNS" not in os.environ:
    out.width = 120  # logs and pipes: wide enough for the tables, still readable
err = Console(stderr=True)
T = TypeVar("T")


class Sentiment(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class UserError(Exception):
    """A problem the person at the keyboard can fix; printed as one line."""


def _known_errors() -> tuple[type[BaseException], ...]:
    from connectors.errors import SyncError
    from connectors.identity import LinkError
    from notifications import SlackError
    from scoring import ScorecardError, SentimentError, UnknownAccountError

    return (
        ConfigError,
        UserError,
        SyncError,
        LinkError,
        SlackError,
        lookup.AccountNotFoundError,
        ScorecardError,
        SentimentError,
        UnknownAccountError,
    )


@contextmanager
def _guard(settings: Settings | None = None) -> Iterator[None]:
    """Turn known errors into one scrubbed line on stderr and exit code 1."""
    try:
        yield
    except _known_errors() as exc:
        secrets = settings.secrets() if settings else []
        line = views.scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _settings() -> Settings:
    with _guard():
        settings = get_settings()
        settings.enabled_sources()  # half-configured sources fail here, early
    with _guard(settings):
        setup_logging(settings)  # JSON lines off a terminal, context ids, secrets redacted
    return settings


_ENGINES: list[Engine] = []
"""Engines a command opened, disposed when it ends."""


@app.callback()
def _root(context: typer.Context) -> None:
    """Customer health agent: sync, score and alert."""
    context.call_on_close(_dispose_engines)


def _dispose_engines() -> None:
    while _ENGINES:
        _ENGINES.pop().dispose()


def _engine(settings: Settings) -> Engine:
    """The store's engine, disposed when the command ends (its pooled connections closed)."""
    with _guard(settings):
        engine = open_store(settings.database_url)
    _ENGINES.append(engine)
    return engine


def _run(settings: Settings, work: Callable[[], T]) -> T:
    with _guard(settings):
        return work()


# --------------------------------------------------------------------------- commands


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the synthetic book of business.")] = 7,
    accounts: Annotated[int, typer.Option(help="How many accounts the book has.")] = 300,
) -> None:
    """Run the whole agent on a synthetic book of business served by local emulators."""
    import demo as demo_module

    settings = _settings()
    _run(settings, lambda: demo_module.run_demo(settings, out, seed=seed, accounts=accounts))


@app.command()
def sync(
    source: Annotated[
        str | None, typer.Argument(help="One source; all enabled if omitted.")
    ] = None,
) -> None:
    """Pull new and changed records from every enabled source (or one)."""
    settings = _settings()
    engine = _engine(settings)
    _sync_and_report(settings, engine, source, None)


def _sync_and_report(
    settings: Settings, engine: Engine, source: str | None, backfill_since: date | None
) -> None:
    """Sync, print the summary, and turn stream failures into one line each and exit 1."""
    import pipeline
    from connectors.sync import SyncOptions

    options = None
    if backfill_since is not None:
        start = datetime.combine(backfill_since, datetime.min.time(), UTC)
        options = SyncOptions(backfill_since=start)
    logging.getLogger("connectors.sync").setLevel(logging.ERROR)  # failures are printed below
    summary = _run(settings, lambda: pipeline.sync(engine, settings, out, source, options))
    pipeline.print_sync_summary(out, summary)
    problems = dict.fromkeys(f"{r.error}" for r in summary.failures)
    for problem in problems:
        err.print(
            f"[bold red]error:[/] {views.scrub(problem, settings.secrets())}",
            highlight=False,
            soft_wrap=True,
        )
    if problems:
        raise typer.Exit(1)


@app.command()
def score(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this date (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Score every account, using only what was known on the given date."""
    import pipeline

    settings = _settings()
    engine = _engine(settings)
    day = _parse_date(as_of)
    summary = _run(settings, lambda: pipeline.score(engine, settings, day))
    out.print(pipeline.describe_scores(summary), highlight=False)


@app.command()
def notify() -> None:
    """Detect alerts from the latest scores and deliver them to Slack."""
    import pipeline

    settings = _settings()
    engine = _engine(settings)
    summary = _run(settings, lambda: pipeline.notify(engine, settings, date.today()))
    out.print(summary.describe(), highlight=False)


@app.command()
def run() -> None:
    """Sync, score and notify on a schedule, and send the weekly digest, until SIGTERM.

    Any number of instances may share one database: one leads and runs the jobs, the others
    stand by and take over when it stops or dies. Ctrl-C or SIGTERM stops after the current
    page of a sync or the current Slack message.
    """
    import runner
    import scheduler

    settings = _settings()
    engine = _engine(settings)
    for spec in _run(settings, lambda: scheduler.configured_jobs(settings)):
        out.print(f"{spec.job_id}: {spec.trigger}", highlight=False, markup=False)
    out.print("running; Ctrl-C or SIGTERM stops after the current page or message")
    if not _run(settings, lambda: runner.run_forever(settings, engine, out)):
        err.print(
            "[bold red]error:[/] the job in progress did not stop in time; what it committed "
            "stands, and the next run resumes from there",
            highlight=False,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # the job's thread cannot be joined; the database has what it committed


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    socket_mode: Annotated[
        bool,
        typer.Option("--socket-mode", help="Connect out to Slack instead (no public URL)."),
    ] = False,
) -> None:
    """Answer Slack (alert buttons, the sentiment form, /health and /sentiment) and the
    billing, CRM and helpdesk webhooks, each when its secret is set."""
    import webapp
    from notifications import serve, serve_socket

    settings = _settings()
    engine = _engine(settings)
    if socket_mode:
        client = _run(settings, lambda: serve_socket.socket_client(engine, settings))
        out.print("connecting to Slack over Socket Mode; Ctrl-C or SIGTERM stops", highlight=False)
        _run(settings, lambda: serve_socket.run_socket_mode(client))
        return
    web = _run(settings, lambda: webapp.create_web_app(engine, settings))
    out.print(webapp.listening(settings, f"http://{host}:{port}"), highlight=False)
    serve.run_http(web, host, port, settings.log_level)


def _listing(
    fetch: Callable[[Engine], list[dict[str, Any]]],
    show: Callable[[Console, list[dict[str, Any]]], None],
    as_json: bool,
) -> None:
    """Rows from the store as a table, or as JSON for scripts."""
    settings = _settings()
    rows = fetch(_engine(settings))
    if as_json:
        views.print_json(out, rows)
    else:
        show(out, rows)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("accounts")
def accounts_command(as_json: JsonOption = False) -> None:
    """Every account with its latest score, riskiest first; ARR in REPORTING_CURRENCY."""
    from store.money import Rates

    settings = _settings()
    rates = _run(settings, lambda: Rates.from_settings(settings))
    rows = reports.accounts_overview(_engine(settings), rates)
    if as_json:
        views.print_json(out, rows)
        note = reports.accounts_money_note(rows) if rows else ""
        if note:
            err.print(note, highlight=False, markup=False, soft_wrap=True)
    else:
        reports.print_accounts(out, rows)


class ImportKind(StrEnum):
    accounts = "accounts"
    tickets = "tickets"
    subscriptions = "subscriptions"
    invoices = "invoices"
    usage = "usage"
    surveys = "surveys"


@app.command("import")
def import_command(
    kind: Annotated[ImportKind, typer.Argument(help="What the file holds.")],
    file: Annotated[Path, typer.Argument(help="A CSV or JSON Lines (.jsonl) file.")],
    traits_since: Annotated[
        str,
        typer.Option(
            "--traits-since",
            help="Accounts rows without as_of: their traits hold from the 'import' (what is "
            "known), or since each account's 'created_at' (attributes fixed at signing, such "
            "as a contract type; never ones that change, such as a plan).",
        ),
    ] = "import",
) -> None:
    """Import a CSV or JSON Lines file of accounts, tickets, subscriptions, invoices, usage
    or surveys.

    Columns (* required; account_id is the CRM id, account_domain matches by domain):
    accounts: id*, name*, domain, owner_email, segment, renewal_date, arr, currency,
    created_at, as_of; every other column is a trait of the account (as of as_of, else now).
    tickets: id*, account_id, account_domain, status*, priority, created_at*, updated_at,
    solved_at, satisfaction.
    subscriptions: id*, account_id, account_domain, status*, mrr*, currency, started_at,
    ended_at.
    invoices: id*, account_id, account_domain, amount_due*, amount_paid, currency, status*
    (draft, open, paid, void, uncollectible; failed or past_due: open, payment failed),
    created_at, due_at, paid_at, attempts.
    usage, weekly: account_id*, account_domain, week_start*, active_users*, licensed_seats.
    usage, long form: account_id, account_domain, date* (or week_start*), metric*, value*,
    period (day or week).
    surveys: id*, account_id, account_domain, kind* (nps, csat, ces), score*, scale_max*,
    responded_at*, email, comment.
    """
    from connectors.files import import_file

    settings = _settings()
    engine = _engine(settings)
    summary = _run(
        settings, lambda: import_file(engine, kind.value, file, traits_since=traits_since)
    )
    out.print(summary.describe(), highlight=False)


@app.command()
def explain(
    account: Annotated[str, typer.Argument(help="Account id, CRM id, domain or name.")],
) -> None:
    """Why an account scores what it does: components, drivers and history."""
    import pipeline

    settings = _settings()
    engine = _engine(settings)
    from scoring.scorecard import ScorecardError
    from scoring.selection import load_scorecards

    try:
        cards = load_scorecards(settings.scorecard_path).scorecards
    except ScorecardError:
        cards = []  # explain what is stored; `scorecard check` says what is wrong
    _run(
        settings,
        lambda: pipeline.print_explain(out, engine, account, settings.stale_after, cards),
    )


@app.command("backtest")
def backtest_command(
    months: Annotated[int, typer.Option(help="How far back the snapshots go.")] = 12,
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", help="Churn within this many days counts.")
    ] = 90,
    scorecard: Annotated[
        Path | None,
        typer.Option("--scorecard", help="A changed scorecard, compared with the current one."),
    ] = None,
    weekly: Annotated[bool, typer.Option("--weekly", help="Weekly snapshots.")] = False,
    fit: Annotated[
        bool,
        typer.Option(
            "--fit", help="Fit weights, ranges and bands to this book, judged out of sample."
        ),
    ] = False,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where --fit writes its proposal (default: beside the live one)."
        ),
    ] = None,
    charts: Annotated[
        Path, typer.Option("--charts", help="Folder for the calibration and ROC charts (PNG).")
    ] = Path("backtest-charts"),
    candidates: Annotated[
        bool,
        typer.Option(
            "--candidates",
            help="Rank every signal in the store (metrics, traits, surveys...) by its AUC.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Does the score predict churn? Point-in-time scores checked against what happened.

    With --fit, also proposes a scorecard fitted to this book (weights, ranges, bands),
    judged on accounts and later snapshots it was not fitted on, and writes it beside the
    current one; the live scorecard is never changed. With --candidates, ranks every signal
    the store holds by how well it alone separates churners, with its declaration.
    """
    from scoring.backtest_command import BacktestOptions, run_backtest

    settings = _settings()
    live = settings.scorecard_path
    if out_path is not None and live is not None and out_path.resolve() == live.resolve():
        with _guard(settings):
            raise UserError("--out names the live scorecard: a proposal is written beside it")
    engine = _engine(settings)
    options = BacktestOptions(
        months=months,
        horizon_days=horizon_days,
        weekly=weekly,
        compare_with=scorecard,
        fit=fit,
        out=out_path,
        charts=charts,
        candidates=candidates,
        quiet=as_json,
    )
    try:
        payload = _run(
            settings, lambda: run_backtest(out, err, engine, live, options, date.today())
        )
    finally:
        engine.dispose()
    if payload is None:
        err.print(
            "the store has no scored customer history to backtest: run `health-agent sync` "
            "(or `make demo` for the sandbox book) first",
            highlight=False,
        )
        raise typer.Exit(1)
    if as_json:
        views.print_json(out, payload)


@app.command("team")
def team_command(
    period: Annotated[
        str | None,
        typer.Option("--period", help="2026-Q3, 2026-09 or 2026-W37 (default: last quarter)."),
    ] = None,
    first: Annotated[str | None, typer.Option("--from", help="First day, with --to.")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last day (included).")] = None,
    team: Annotated[str | None, typer.Option("--team", help="One team, by name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """CSM and team performance over a period: book, health, retention, renewals, follow-up."""
    from dataclasses import asdict

    from rich.markup import escape

    from scoring.team import (
        PeriodError,
        TeamReportError,
        choose_period,
        print_team_report,
        team_report,
    )
    from store.money import Rates, missing_rates_note

    settings = _settings()
    engine = _engine(settings)
    rates = _run(settings, lambda: Rates.from_settings(settings))
    try:
        chosen = choose_period(period, first, last, today=date.today())
        report = _run(settings, lambda: team_report(engine, chosen, team=team, rates=rates))
    except (PeriodError, TeamReportError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, PeriodError) else 1) from None
    if not report.accounts:
        err.print(
            f"the store has no accounts for {chosen.label}: run `health-agent sync` "
            "(or `make demo` for the sandbox book) first",
            highlight=False,
        )
        raise typer.Exit(1)
    if as_json:
        views.print_json(out, asdict(report))
        if report.missing_rates:
            note = missing_rates_note(report.missing_rates, report.currency)
            err.print(note, highlight=False, markup=False, soft_wrap=True)
    else:
        print_team_report(out, report)


@app.command("digest")
def digest_command(
    team: Annotated[str | None, typer.Option("--team", help="One team, by name.")] = None,
    week_ending: Annotated[
        str | None,
        typer.Option("--week-ending", help="The week's last day (default: last Sunday)."),
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="Show it here and write the chart; post nothing.")
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the chart PNGs go.")] = Path(
        "digests"
    ),
) -> None:
    """Weekly digest for CS leads: bands, at-risk ARR, renewals, declines, scoreboard, chart.

    Posts each team's digest to its lead (DM) and its Slack channel, once a week, with the
    chart; `--preview` shows it here instead.
    """
    from rich.markup import escape

    from notifications.digest import (
        DigestError,
        choose_teams,
        default_week_ending,
        preview_digests,
        send_digests,
    )
    from notifications.slack import make_slack_client
    from store.money import Rates
    from store.teams import configure_teams

    settings = _settings()
    engine = _engine(settings)
    rates = _run(settings, lambda: Rates.from_settings(settings))
    day = _parse_date(week_ending, "--week-ending") if week_ending else None
    day = day or default_week_ending(date.today())
    _run(settings, lambda: configure_teams(engine, settings))
    try:
        chosen = choose_teams(engine, team)
    except DigestError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    if preview:
        _run(settings, lambda: preview_digests(engine, out, chosen, day, out_dir, rates=rates))
        return
    if not settings.slack.enabled():
        err.print(
            "[bold red]error:[/] Slack is not configured: set SLACK__BOT_TOKEN in .env or the "
            "environment, or look with --preview",
            highlight=False,
        )
        raise typer.Exit(1)
    client = _run(settings, lambda: make_slack_client(settings))
    summary = _run(
        settings, lambda: send_digests(engine, client, chosen, day, out_dir, rates=rates)
    )
    out.print(summary.describe(), highlight=False)


@sentiment_app.command("set")
def sentiment_set(
    account: Annotated[str, typer.Argument(help="Account id, CRM id, domain or name.")],
    value: Annotated[Sentiment, typer.Argument(help="green, yellow or red.")],
    note: Annotated[str, typer.Option("--note", help="Why, in a sentence.")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Email of the CSM.")] = None,
) -> None:
    """Record what a CSM says about an account."""
    import pipeline

    settings = _settings()
    engine = _engine(settings)
    name = _run(settings, lambda: pipeline.record(engine, account, value.value, note, by))
    out.print(f"recorded {value.value} for {name}", highlight=False)


@scorecard_app.command("check")
def scorecard_check(
    file: Annotated[
        Path | None, typer.Argument(help="A scorecard file (default: SCORECARD_PATH, or ours).")
    ] = None,
) -> None:
    """Validate a scorecard: every problem with its line, or what the scorecard holds.

    With a store, declared measures are checked against it too: a metric or trait name the
    store does not hold is an error naming the line and the names it holds."""
    from scoring.scorecard import ScorecardError, check_scorecard
    from scoring.selection import is_scorecard_set, load_scorecards

    settings = _settings()
    path = file or settings.scorecard_path
    if path is not None and is_scorecard_set(path):
        try:
            cards = load_scorecards(path)
        except ScorecardError as exc:
            err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        set_problems = [
            problem
            for _fit, card in cards.entries
            for problem in _signal_problems(
                settings, path, card, name=f"{path} (scorecard {card.version})"
            )
        ]
        if set_problems:
            for problem in set_problems:
                err.print(problem, highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1)
        views.render_table(
            out,
            f"Scorecard set {Path(path).name}: valid",
            ["Scorecard", "For", "Measures", "Caps"],
            (
                [
                    card.version,
                    "everyone else"
                    if fit is None
                    else ", ".join(
                        f"{k} {v}" for k, v in fit.model_dump(exclude_none=True).items()
                    ),
                    str(len(card.measure_names())),
                    str(len(card.caps)),
                ]
                for fit, card in cards.entries
            ),
        )
        out.print("The first scorecard that fits an account scores it.", highlight=False)
        return
    try:
        scorecard, problems = check_scorecard(path)
    except ScorecardError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    absent: list[str] = []  # the shipped default leaves out the signals a book lacks
    if scorecard is not None and path is None:
        absent = _signal_problems(settings, path, scorecard)
    elif scorecard is not None:
        problems = _signal_problems(settings, path, scorecard)
    if scorecard is None or problems:
        for problem in problems:
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    views.render_table(
        out,
        f"Scorecard {scorecard.version} ({path or 'the default'}): valid",
        ["Component", "Weight", "Measures"],
        (
            [name, f"{c.weight:g}", ", ".join(f"{m.name} ({m.weight:g})" for m in c.measures)]
            for name, c in scorecard.components.items()
        ),
        styles={1: "number"},
    )
    bands = scorecard.bands
    out.print(
        f"bands: green from {bands.green:g}, yellow from {bands.yellow:g}; "
        f"{len(scorecard.caps)} cap rule{'s' if len(scorecard.caps) != 1 else ''}: "
        + ", ".join(rule.name for rule in scorecard.caps),
        highlight=False,
    )
    for line in absent:
        out.print(
            f"note: {line} (left out when scoring this book)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _signal_problems(
    settings: Settings, path: Path | None, scorecard: Scorecard, name: str | None = None
) -> list[str]:
    """The declared measures naming a metric or trait the store lacks (none without a store
    or without declared measures); `name` names a scorecard of a set, whose lines are not
    given."""
    if not any(m.signal is not None for m in scorecard.measures()):
        return []
    from sqlalchemy.engine import make_url
    from sqlmodel import Session

    from scoring.signals.catalog import signal_problems, store_catalog

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or ":memory:").exists():
        return []  # no store here yet: a check never creates one
    with Session(_engine(settings)) as session:
        catalog = store_catalog(session)
    if not catalog.metrics and not catalog.traits:  # nothing synced yet: nothing to check
        return []
    if name is not None:
        return signal_problems(name, "", scorecard, catalog)
    from scoring.scorecard import scorecard_text

    return signal_problems(*scorecard_text(path), scorecard, catalog)


@sources_app.command("list")
def sources_list(as_json: JsonOption = False) -> None:
    """Every source: enabled or not, last success, lag, records and errors."""
    settings = _settings()
    _listing(
        lambda engine: reports.sources_overview(engine, settings.enabled_sources()),
        reports.print_sources,
        as_json,
    )


@sources_app.command("check")
def sources_check(
    source: Annotated[
        str | None, typer.Argument(help="One source; all enabled if omitted.")
    ] = None,
) -> None:
    """Credentials, permissions, reachability and quota headroom, one line per check."""
    from connectors.check import check_connector
    from connectors.http import ClientOptions, RetryPolicy
    from connectors.registry import build_connectors

    settings = _settings()
    quick = ClientOptions(retry=RetryPolicy(attempts=2, max_seconds=20), timeout=10)
    connectors = _run(
        settings, lambda: build_connectors(settings, [source] if source else None, client=quick)
    )
    if not connectors:
        err.print("no source is configured: see .env.example", highlight=False)
        raise typer.Exit(1)
    failed = 0
    for connector in connectors:  # each source's lines as soon as they are known
        for line in _run(settings, partial(check_connector, connector)):
            mark = "[green]ok[/]  " if line.ok else "[bold red]FAIL[/]"
            detail = views.scrub(line.detail, settings.secrets())
            out.print(f"{mark} {line.source:<11} {line.check:<24} {detail}", soft_wrap=True)
            failed += not line.ok
    if failed:
        raise typer.Exit(1)


@sources_app.command("backfill")
def sources_backfill(
    source: Annotated[str, typer.Argument(help="The source to read again, e.g. zendesk.")],
    since: Annotated[str, typer.Option("--since", help="Read again from this date (YYYY-MM-DD).")],
) -> None:
    """Read a source again from a date, whatever its cursors say (run again if interrupted)."""
    settings = _settings()
    engine = _engine(settings)
    _sync_and_report(settings, engine, source, _parse_date(since, "--since"))


@sources_app.command("unmatched")
def sources_unmatched(as_json: JsonOption = False) -> None:
    """Records of other systems that match no CRM account yet."""
    _listing(reports.unmatched, reports.print_unmatched, as_json)


@sources_app.command("link")
def sources_link(
    source: Annotated[str, typer.Argument(help="The source of the record, e.g. stripe.")],
    external_id: Annotated[str, typer.Argument(help="The record's id in that source.")],
    account: Annotated[str, typer.Argument(help="Account id, CRM id, domain or name.")],
) -> None:
    """Decide which account an unmatched record belongs to; matching keeps the decision."""
    import pipeline

    settings = _settings()
    engine = _engine(settings)
    name = _run(settings, lambda: pipeline.link(engine, source, external_id, account))
    out.print(f"linked {source} {external_id} to {name} (manual, kept on every sync)")


@sources_app.command("quarantine")
def sources_quarantine(
    as_json: JsonOption = False,
    retry: Annotated[
        bool, typer.Option("--retry", help="Map every kept record again, after a fix.")
    ] = False,
) -> None:
    """Records that could not be mapped, with the reason; `--retry` replays them."""
    if retry:
        from connectors.quarantine import replay_quarantine
        from connectors.registry import build_connectors

        settings = _settings()
        engine = _engine(settings)
        summary = _run(settings, lambda: replay_quarantine(engine, build_connectors(settings)))
        (err if as_json else out).print(summary.describe(), highlight=False)
    _listing(reports.quarantined, reports.print_quarantine, as_json)


@app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """Is the agent keeping up: sources, leader, next runs, alerts, quarantine.

    Exits 1 when an enabled source is failing or staler than its threshold (its
    `stale_after_hours`, else STATUS__STALE_AFTER_HOURS, else three times its schedule's
    longest gap), so it can serve as a container health check.
    """
    import status

    settings = _settings()
    engine = _engine(settings)
    try:
        facts = _run(settings, lambda: status.gather(engine, settings))
    finally:
        engine.dispose()  # a health check runs often: leave no connection behind
    if as_json:
        views.print_json(out, status.as_json(facts))
    else:
        status.print_status(out, facts)
    if not facts.healthy:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- playbooks

playbooks_app = typer.Typer(help="Playbooks: the tasks alerts start.", no_args_is_help=True)
app.add_typer(playbooks_app, name="playbooks")


@playbooks_app.command("list")
def playbooks_list(as_json: JsonOption = False) -> None:
    """Configured playbooks (PLAYBOOKS__PATH, or the defaults): triggers and their tasks."""
    from notifications.playbooks_config import load_playbooks
    from notifications.playbooks_listing import playbook_rows

    settings = _settings()
    rows = playbook_rows(_run(settings, lambda: load_playbooks(settings.playbooks.path)))
    if as_json:
        views.print_json(out, rows)
        return
    views.render_table(
        out,
        f"Playbooks ({settings.playbooks.path or 'the defaults'})",
        ["Playbook", "Trigger", "Starts", "Tasks (assignee, due in business days)"],
        (
            [
                row["name"],
                row["trigger"],
                "by itself" if row["auto"] else "by hand",
                "\n".join(
                    f"{t['title']} ({t['assignee']}, {t['due_in_business_days']}d)"
                    for t in row["tasks"]
                ),
            ]
            for row in rows
        ),
    )


@app.command("tasks")
def tasks_command(
    open_only: Annotated[bool, typer.Option("--open", help="Open tasks only.")] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help="Open tasks past due.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Playbook tasks: account, assignee, due date and status, earliest due first."""
    from notifications.playbooks_listing import task_rows

    def show(console: Console, rows: list[dict[str, Any]]) -> None:
        views.render_table(
            console,
            f"{len(rows)} task{'' if len(rows) == 1 else 's'}",
            ["Id", "Account", "Task", "Assignee", "Due", "Status"],
            (
                [
                    row["id"],
                    row["account"],
                    row["title"],
                    row["assignee"],
                    row["due_on"],
                    "overdue" if row["overdue"] else row["status"],
                ]
                for row in rows
            ),
            styles={0: "number"},
        )

    today = datetime.now(UTC).date()
    _listing(
        lambda engine: task_rows(engine, today=today, open_only=open_only, overdue_only=overdue),
        show,
        as_json,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending database migration."""
    settings = _settings()
    _engine(settings)
    out.print("database is up to date")


def _parse_date(value: str | None, option: str = "--as-of") -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[bold red]error:[/] {option} {value!r} is not a date; use YYYY-MM-DD")
        raise typer.Exit(2) from None


def main() -> Any:
    """Entry point of the `health-agent` script."""
    return app()


if __name__ == "__main__":
    sys.exit(main())
