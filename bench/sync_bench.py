"""Sync benchmark: the agent's sync against the sandbox emulators served by another process.

    .venv/bin/python -m bench.sync_bench --accounts 300 1000
    .venv/bin/python -m bench.sync_bench --rate-limited --companies 20000

Throughput (the default): the emulators (`bench.emulators`, no rate limits, so nothing
waits) run in a child process pinned to one core; this process pins itself to another and
runs `sync_all` (fetch, map, upsert, identity matching) into a fresh SQLite file, then
prints records per second and the CPU seconds each side used. `--profile FILE` writes
cProfile statistics of the agent's side; `--synchronous normal` shows what SQLite's
`synchronous` pragma costs.

Rate-limited: the HubSpot emulator serves a HubSpot-only book of `--companies` companies
and enforces HubSpot's budgets in real time (100 requests per 10 s; search, whose answers
carry no rate-limit headers, 5 per second). The agent syncs owners and companies (and,
with `--deals-per-company`, deals and their associations), then matches identities. The
elapsed time is compared with the least the budgets allow: for each budget, the requests
it served divided by its rate, whichever is longest. Every 429 the emulator sent must have
reached the agent's HTTP layer and been retried, with the sync ending without failures.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, event

from bench.emulators import budget_of
from connectors.http import ClientOptions
from connectors.identity import resolve_identities
from connectors.registry import build_connectors, sync_all
from connectors.sync import SyncSummary, sync_connector
from sandbox.hubspot import HUBSPOT_TOKEN
from sandbox.ratelimit import HUBSPOT_BUDGETS
from sandbox.stripe import STRIPE_API_KEY
from sandbox.zendesk import ZENDESK_API_TOKEN, ZENDESK_EMAIL
from settings import HubSpotSettings, Settings, StripeSettings, UsageFileSettings, ZendeskSettings
from store.db import open_store, session_scope

__all__ = ["main"]

_READY_TIMEOUT_S = 300.0
_CORES = sorted(os.sched_getaffinity(0))


def _cores() -> tuple[int, int]:
    """A core for the agent and another for the emulators (the same one on a 1-core box)."""
    return _CORES[0], _CORES[-1]


@contextmanager
def emulators(*options: str, cpu: int) -> Iterator[str]:
    """Start `bench.emulators` with `options` pinned to `cpu`; yields its base URL."""
    command = [sys.executable, "-m", "bench.emulators", "--cpu", str(cpu), *options]
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], _READY_TIMEOUT_S)
        line = child.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"the emulators did not start (said {line!r})")
        yield line.split()[1]
    finally:
        os.kill(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()


def _server_counts(base: str) -> Counter[str]:
    return Counter(httpx.get(f"{base}/_bench/stats", timeout=10).json())


@dataclass
class _Client:
    """What the agent's HTTP layer saw: responses by budget and status, and its waits."""

    responses: Counter[str] = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)
    """Every sleep asked for: pacing before requests and waits before retries."""

    def options(self) -> ClientOptions:
        responses = self.responses

        class Transport(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                response = super().handle_request(request)
                responses[f"{budget_of(request.url.path)} {response.status_code}"] += 1
                return response

        def sleep(seconds: float) -> None:
            self.waits.append(seconds)
            time.sleep(seconds)

        return ClientOptions(transport=Transport(), sleep=sleep)


def sandbox_settings(base: str, url: str, usage: Path | None) -> Settings:
    """Settings that point every source at the sandbox emulators served at `base`."""
    return Settings(
        _env_file=None,
        database_url=url,
        hubspot=HubSpotSettings(token=SecretStr(HUBSPOT_TOKEN), base_url=f"{base}/hubspot"),
        zendesk=ZendeskSettings(
            email=ZENDESK_EMAIL,
            api_token=SecretStr(ZENDESK_API_TOKEN),
            base_url=f"{base}/zendesk",
        ),
        stripe=StripeSettings(api_key=SecretStr(STRIPE_API_KEY), base_url=f"{base}/stripe"),
        usage_file=UsageFileSettings(path=usage),
    )


def _check(summary: SyncSummary) -> None:
    if not summary.ok:
        failed = ", ".join(f"{r.source}/{r.stream}: {r.error}" for r in summary.failures)
        raise SystemExit(f"the sync failed: {failed}")


def _synchronous(engine: Engine, mode: str) -> None:
    """Set SQLite's `synchronous` on every connection the engine opens from now on."""

    def pragma(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA synchronous={mode}")

    event.listen(engine, "connect", pragma)
    engine.dispose()


def throughput(
    accounts: int, workdir: Path, profile: Path | None, synchronous: str | None = None
) -> dict[str, float]:
    """Records per second of a first sync of a book of `accounts` into a fresh SQLite file."""
    agent_cpu, emulator_cpu = _cores()
    today = datetime.now(UTC).date().isoformat()
    usage = workdir / f"usage-{accounts}.csv"
    options = ("--accounts", str(accounts), "--today", today, "--usage-csv", str(usage))
    with emulators(*options, cpu=emulator_cpu) as base:
        os.sched_setaffinity(0, {agent_cpu})
        url = f"sqlite:///{workdir / f'sync-{accounts}.db'}"
        engine = open_store(url)
        if synchronous is not None:
            _synchronous(engine, synchronous)
        settings = sandbox_settings(base, url, usage)
        profiler = cProfile.Profile() if profile else None
        before = _server_counts(base)
        started, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        summary = sync_all(engine, settings)
        if profiler is not None:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
        served = _server_counts(base)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    _check(summary)
    records = sum(r.records for r in summary.streams)
    pages = sum(r.pages for r in summary.streams)
    return {
        "accounts": accounts,
        "records": records,
        "pages": pages,
        "seconds": elapsed,
        "records_per_s": records / elapsed,
        "agent_cpu_s": cpu,
        "emulator_cpu_s": served["cpu_s"] - before["cpu_s"],
    }


COMPANY_STREAMS = ("owners", "companies", "archived_companies")


def rate_limited(companies: int, deals_per_company: int, workdir: Path) -> dict[str, float]:
    """A HubSpot sync of `companies` companies under HubSpot's real budgets, against the least
    time those budgets allow; with no deals, only the owner and company streams run."""
    agent_cpu, emulator_cpu = _cores()
    options = ("--crm-companies", str(companies), "--deals-per-company", str(deals_per_company))
    client = _Client()
    with emulators(*options, "--limits", "vendor", cpu=emulator_cpu) as base:
        os.sched_setaffinity(0, {agent_cpu})
        url = f"sqlite:///{workdir / f'crm-{companies}-{deals_per_company}.db'}"
        engine = open_store(url)
        settings = sandbox_settings(base, url, None)
        [connector] = build_connectors(settings, ["hubspot"], client=client.options())
        streams = None if deals_per_company else COMPANY_STREAMS
        started = time.perf_counter()
        results = sync_connector(engine, connector, streams=streams)
        with session_scope(engine) as session:
            resolve_identities(session)
        elapsed = time.perf_counter() - started
        engine.dispose()
        served = _server_counts(base)
    _check(SyncSummary(results))
    ok = {
        b: sum(n for k, n in served.items() if k.startswith(f"hubspot/{b} 2"))
        for b in HUBSPOT_BUDGETS
    }
    minimum = max(
        ok[name] / budget.limit * budget.window_s for name, budget in HUBSPOT_BUDGETS.items()
    )
    sent_429 = sum(n for k, n in served.items() if k.endswith(" 429"))
    seen_429 = sum(n for k, n in client.responses.items() if k.endswith(" 429"))
    return {
        "companies": companies,
        "deals": deals_per_company * companies,
        "records": sum(r.records for r in results),
        "default_requests": ok["default"],
        "search_requests": ok["search"],
        "seconds": elapsed,
        "minimum_s": minimum,
        "ratio": elapsed / minimum,
        "sent_429": sent_429,
        "retried_429": seen_429,
        "waited_s": sum(client.waits),
    }


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--profile", type=Path, default=None, help="cProfile stats file")
    parser.add_argument(
        "--synchronous",
        choices=("normal", "full"),
        default=None,
        help="set SQLite's synchronous pragma (default: as the store opens it)",
    )
    parser.add_argument("--rate-limited", action="store_true")
    parser.add_argument("--companies", type=int, default=20_000)
    parser.add_argument("--deals-per-company", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.rate_limited:
            print(
                "| accounts | records synced | pages | sync s | records/s "
                "| agent CPU s | emulator CPU s |"
            )
            print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for n in args.accounts:
                r = throughput(n, Path(tmp), args.profile, args.synchronous)
                print(
                    f"| {n} | {_fmt(r['records'])} | {_fmt(r['pages'])} | {r['seconds']:.2f} "
                    f"| {_fmt(r['records_per_s'])} | {r['agent_cpu_s']:.2f} "
                    f"| {r['emulator_cpu_s']:.2f} |",
                    flush=True,
                )
            return
        print("HubSpot's budgets enforced in real time: 100 requests per 10 s, search 5 per s.")
        print()
        print(
            "| companies | deals | requests (default + search) | sync s | least the limits allow s "
            "| ratio | 429 sent / retried | paced s |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for deals in args.deals_per_company:
            r = rate_limited(args.companies, deals, Path(tmp))
            print(
                f"| {_fmt(r['companies'])} | {_fmt(r['deals'])} "
                f"| {_fmt(r['default_requests'])} + {_fmt(r['search_requests'])} "
                f"| {r['seconds']:.1f} | {r['minimum_s']:.1f} | {r['ratio']:.2f} "
                f"| {_fmt(r['sent_429'])} / {_fmt(r['retried_429'])} | {r['waited_s']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
