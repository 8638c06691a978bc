"""Scoring benchmark: one full rescoring of a generated book, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.scoring_bench [--accounts 100000] [--database sqlite|postgresql|both]

For each database, a fresh store (migrated, in a temporary directory or a scratch
PostgreSQL database dropped afterwards) is filled with `bench.scoring_book`'s book of
`--accounts` accounts: executemany on SQLite, COPY on PostgreSQL, then `VACUUM ANALYZE` on
PostgreSQL (what autovacuum would do after a load; SQLite gets no statistics, as in
production). Generation is timed apart and is not part of the figure.

Then a fresh process runs one `score_accounts(engine, as_of, scorecard)` with the default
scorecard (`load_scorecard()`) and reports its wall time, split by phase (each query of the
preset measures, each declared measure's read, computing the scores, writing them, the
rest) and the process's peak resident memory (`ru_maxrss`), so neither generation nor the
parent process counts. The phases are timed by wrapping the functions `score_accounts`
calls (a declared measure's read includes the sets its signals share, such as the accounts
reporting usage, when it is the first to ask for them); `--profile DIR` also writes
cProfile statistics of the scoring run. `--repeat N` scores N times (each run on a day
without scores, each in a fresh process) and reports the fastest, as timing on a shared
machine calls for.
`--keep` keeps the generated databases; `--url` then scores a kept book again;
`--scorecard FILE` scores with another scorecard than the shipped default.
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlmodel import col

import scoring.health
import scoring.readings
from bench.scoring_book import COLUMNS, book_rows
from scoring import load_scorecard, score_accounts
from scoring.measures import MEASURES, SHARED_QUERIES, Readings
from scoring.scorecard import Scorecard
from scoring.signals.context import SignalContext
from scoring.signals.spec import SignalBase
from store.db import make_engine, open_store
from store.models import HealthScore

__all__ = ["main"]

AS_OF = date(2026, 3, 2)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Scoring:
    """What one scoring run measured: seconds per phase and in all, peak RSS, scores."""

    phases: dict[str, float]
    total_s: float
    cpu_s: float
    """CPU seconds of the scoring process (PostgreSQL's own work is not in it)."""
    peak_rss_mb: float
    scored: int


@dataclass(frozen=True)
class Figures:
    """What one database's run measured."""

    database: str
    scoring: Scoring
    """The fastest of the runs."""
    totals: list[float]
    """Every run's seconds, in order."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows generated per table (none when a kept book was scored)."""
    generate_s: float = 0.0


# ---- generation ------------------------------------------------------------------------


def _insert_sql(table: str) -> str:
    columns = COLUMNS[table]
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608  # constants


def load_sqlite(path: Path, accounts: int, seed: int) -> dict[str, int]:
    """Fill a fresh store at `path` with the book; returns the rows written per table."""
    open_store(f"sqlite:///{path}").dispose()
    written: Counter[str] = Counter()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        for table, rows in book_rows(accounts, AS_OF, seed=seed):
            conn.executemany(_insert_sql(table), rows)
            conn.commit()
            written[table] += len(rows)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return dict(written)


def load_postgresql(url: str, accounts: int, seed: int) -> dict[str, int]:
    """Fill a fresh store at `url` with the book by COPY, then vacuum and analyse it."""
    open_store(url).dispose()
    written: Counter[str] = Counter()
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table, rows in book_rows(accounts, AS_OF, seed=seed):
            columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), columns)
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
            written[table] += len(rows)
        conn.execute("SELECT setval('accounts_id_seq', (SELECT max(id) FROM accounts))")
        conn.execute("VACUUM ANALYZE")
    return dict(written)


def load_book(url: str, accounts: int, seed: int = 7) -> dict[str, int]:
    """Fill the fresh store at `url` (SQLite or PostgreSQL) with the book; rows per table."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return load_sqlite(Path(parsed.database or ""), accounts, seed)
    return load_postgresql(url, accounts, seed)


# ---- scoring ---------------------------------------------------------------------------


def _timed(phases: dict[str, float], phase: str, fn: Callable[..., _T]) -> Callable[..., _T]:
    def timed(*args: Any, **kwargs: Any) -> _T:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[phase] += time.perf_counter() - started

    return timed


_PHASES = {
    "_live_account_ids": "live accounts",
    "_chooser": "scorecard per account",
    "rank_readings": "percentile ranks",
    "_previous_bands": "previous bands",
    "compute_score": "compute scores",
    "_write_scores": "write scores",
    "_finish_scores": "write scores",
}
"""Functions `score_accounts` calls, timed as these phases (the queries are timed apart)."""


def _timed_signals(
    phases: dict[str, float], scorecard: Scorecard, read: Callable[..., Readings]
) -> Callable[..., Readings]:
    """`read_signal`, timing each declared measure's read as `read <measure name>`."""
    names = {id(m.signal): m.name for m in scorecard.measures() if m.signal is not None}

    def timed(ctx: SignalContext, signal: SignalBase, **kwargs: Any) -> Readings:
        phase = f"read {names.get(id(signal), type(signal).__name__)} (declared)"
        return _timed(phases, phase, read)(ctx, signal, **kwargs)

    return timed


@contextmanager
def instrumented(phases: dict[str, float], scorecard: Scorecard) -> Iterator[None]:
    """Time each query of the preset measures, each declared measure's read and the
    functions of `_PHASES` into `phases`."""
    saved_measures, saved_shared = dict(MEASURES), dict(SHARED_QUERIES)
    saved = {name: getattr(scoring.health, name) for name in _PHASES}
    saved_read = getattr(scoring.readings, "read_signal")  # noqa: B009  # not exported
    setattr(scoring.readings, "read_signal", _timed_signals(phases, scorecard, saved_read))  # noqa: B010
    shared = {name for query in saved_shared.values() for name in query.measures}
    for key, query in saved_shared.items():
        label = f"query {key} ({len(query.measures)} measures)"
        SHARED_QUERIES[key] = replace(query, read=_timed(phases, label, query.read))
    for name, spec in saved_measures.items():
        if name not in shared:
            MEASURES[name] = replace(spec, query=_timed(phases, f"query {name}", spec.query))
    for name, phase in _PHASES.items():
        setattr(scoring.health, name, _timed(phases, phase, saved[name]))
    try:
        yield
    finally:
        setattr(scoring.readings, "read_signal", saved_read)  # noqa: B010
        MEASURES.update(saved_measures)
        SHARED_QUERIES.update(saved_shared)
        for name, fn in saved.items():
            setattr(scoring.health, name, fn)


def score_once(url: str, profile: Path | None, scorecard_path: Path | None = None) -> Scoring:
    """One full scoring of the store at `url` with the scorecard at `scorecard_path` (the
    default one when None); run it in a fresh process."""
    engine = make_engine(url)
    scorecard = load_scorecard(scorecard_path)
    phases: dict[str, float] = defaultdict(float)
    profiler = cProfile.Profile() if profile is not None else None
    with instrumented(phases, scorecard):
        started, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        summary = score_accounts(engine, AS_OF, scorecard)
        if profiler is not None:
            profiler.disable()
        total, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    phases["other (commit, glue)"] = total - sum(phases.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Scoring(dict(phases), total, cpu, peak_mb, summary.scored)


def _in_fresh_process(fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)` in a newly started interpreter, so its memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# ---- databases -------------------------------------------------------------------------


@contextmanager
def scratch_postgresql(admin_url: str, keep: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database on `admin_url`'s server; dropped afterwards."""
    name = f"ha_scoring_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                conn.execute(drop.format(sql.Identifier(name)))


def clear_day(url: str) -> None:
    """Remove the day's scores (and on PostgreSQL vacuum them away), so that the next run
    scores the day afresh, as the first did."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(HealthScore).where(col(HealthScore.as_of) == AS_OF))
    after = "VACUUM ANALYZE health_scores" if engine.dialect.name == "postgresql" else None
    if after is not None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(after))
    engine.dispose()


def run(database: str, url: str, args: argparse.Namespace, fresh: bool) -> Figures:
    """Generate the book into `url` (when `fresh`), then score it `--repeat` times, each in
    a fresh process on a day without scores; the fastest run is reported."""
    rows: dict[str, int] = {}
    started = time.perf_counter()
    if fresh:
        rows = _in_fresh_process(load_book, url, args.accounts, args.seed)
    generate_s = time.perf_counter() - started if fresh else 0.0
    stats = args.profile / f"scoring-{database}.prof" if args.profile is not None else None
    runs: list[Scoring] = []
    for attempt in range(args.repeat):
        if attempt or not fresh:
            clear_day(url)
        runs.append(_in_fresh_process(score_once, url, stats, args.scorecard))
    fastest = min(runs, key=lambda r: r.total_s)
    return Figures(database, fastest, [r.total_s for r in runs], rows, generate_s)


def report(accounts: int, results: list[Figures]) -> Table:
    """The figures side by side, one column per database."""
    table = Table(title=f"Scoring {accounts:,} accounts as of {AS_OF}")
    table.add_column("phase")
    for figures in results:
        table.add_column(figures.database, justify="right")
    runs = [f.scoring for f in results]
    phases = list(dict.fromkeys(p for run in runs for p in run.phases))
    table.add_row("book rows", *(f"{sum(f.rows.values()):,}" if f.rows else "-" for f in results))
    table.add_row("generation s (apart)", *(f"{f.generate_s:.1f}" for f in results))
    for phase in phases:
        table.add_row(phase, *(f"{run.phases.get(phase, 0.0):.2f}" for run in runs))
    table.add_row("scoring s (total)", *(f"{run.total_s:.2f}" for run in runs), style="bold")
    if any(len(f.totals) > 1 for f in results):
        every = (", ".join(f"{t:.1f}" for t in f.totals) for f in results)
        table.add_row("every run s", *every)
    table.add_row("scoring CPU s (this process)", *(f"{run.cpu_s:.2f}" for run in runs))
    table.add_row("accounts scored", *(f"{run.scored:,}" for run in runs))
    table.add_row("peak RSS MB (scoring)", *(f"{run.peak_rss_mb:,.0f}" for run in runs))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default=PG_ADMIN_URL, help="server for the scratch db")
    parser.add_argument("--profile", type=Path, default=None, help="directory for cProfile stats")
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    parser.add_argument("--url", default=None, help="score this kept book instead of a new one")
    parser.add_argument("--repeat", type=int, default=1, help="score N times, report the fastest")
    parser.add_argument(
        "--scorecard", type=Path, default=None, help="score with this file (default: shipped)"
    )
    args = parser.parse_args()
    console = Console()
    results: list[Figures] = []
    if args.url is not None:
        database = make_url(args.url).get_backend_name()
        results.append(run(database, args.url, args, fresh=False))
        console.print(report(args.accounts, results))
        return
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    workdir = Path(tempfile.mkdtemp(prefix="scoring-bench-"))
    try:
        for database in databases:
            if database == "sqlite":
                url = f"sqlite:///{workdir / 'book.db'}"
                results.append(run(database, url, args, fresh=True))
            else:
                with scratch_postgresql(args.postgres_url, args.keep) as url:
                    results.append(run(database, url, args, fresh=True))
            if args.keep:
                console.print(f"kept the {database} book: {url}")
    finally:
        if not args.keep or not any(workdir.iterdir()):
            shutil.rmtree(workdir)
    console.print(report(args.accounts, results))
    shared = (f"{key}: {', '.join(query.measures)}" for key, query in SHARED_QUERIES.items())
    console.print(f"Shared queries: {'; '.join(shared)}.")
    if results[0].rows:
        console.print(f"Book: {', '.join(f'{n:,} {t}' for t, n in results[0].rows.items())}.")


if __name__ == "__main__":
    main()
