"""Benchmark of one full cycle on the sandbox book: sync over HTTP, score, detect alerts.

Reproduce: `.venv/bin/python -m bench.pipeline_bench --accounts 300 1000` (SQLite in a temp
dir; `--database-url` for PostgreSQL). The emulators run without rate limits here, so the
figures measure the agent, not the vendors' budgets. Prints one row per book size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench.sync_bench import sandbox_settings
from connectors.registry import sync_all
from notifications import detect_alerts
from sandbox.book import generate_book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Limits
from sandbox.server import serve_apps
from sandbox.stripe import stripe_app
from sandbox.usage_csv import write_usage_csv
from sandbox.zendesk import zendesk_app
from scoring import load_scorecard, score_accounts
from store.db import open_store


def run(accounts: int, database_url: str | None, workdir: Path) -> dict[str, float]:
    today = datetime.now(UTC).date()
    book = generate_book(accounts=accounts, today=today)
    usage = write_usage_csv(book, workdir / f"usage-{accounts}.csv")
    url = database_url or f"sqlite:///{workdir / f'bench-{accounts}.db'}"
    engine = open_store(url)
    apps = {
        "hubspot": hubspot_app(book, limits=Limits.unlimited()),
        "zendesk": zendesk_app(book, limits=Limits.unlimited()),
        "stripe": stripe_app(book, limits=Limits.unlimited()),
    }
    with serve_apps(apps) as base:
        settings = sandbox_settings(base, url, usage)
        started = time.perf_counter()
        summary = sync_all(engine, settings)
        sync_s = time.perf_counter() - started
    records = sum(r.records for r in summary.streams)
    started = time.perf_counter()
    score_accounts(engine, today, load_scorecard())
    score_s = time.perf_counter() - started
    started = time.perf_counter()
    detect_alerts(engine, today)
    alerts_s = time.perf_counter() - started
    with engine.connect() as conn:
        statements = conn.execute(text("SELECT count(*) FROM health_scores")).scalar_one()
    engine.dispose()
    return {
        "accounts": accounts,
        "records": records,
        "sync_s": sync_s,
        "records_per_s": records / sync_s,
        "score_s": score_s,
        "alerts_s": alerts_s,
        "scores": float(statements),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print("| accounts | records synced | sync s | records/s | score s | alerts s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.accounts:
            r = run(n, args.database_url, Path(tmp))
            print(
                f"| {n} | {r['records']:.0f} | {r['sync_s']:.1f} | {r['records_per_s']:.0f} "
                f"| {r['score_s']:.2f} | {r['alerts_s']:.2f} |"
            )


if __name__ == "__main__":
    main()
