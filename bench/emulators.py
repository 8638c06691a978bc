"""Serve the sandbox emulators in a process of their own, for the sync benchmark.

    python -m bench.emulators --accounts 300 --today 2026-05-04 --usage-csv usage.csv
    python -m bench.emulators --crm-companies 20000 --limits vendor

Generates the book, serves HubSpot, Zendesk and Stripe under `/hubspot`, `/zendesk` and
`/stripe` on 127.0.0.1 (a free port chosen by the OS) and prints one line, `READY <base
url>`, once it listens; it serves until it is killed. `GET /_bench/stats` answers how many
responses each vendor budget sent, by status, and the CPU seconds the process has used.
`--cpu` pins the process to one core, so the emulators never take CPU from the agent being
measured; `--profile FILE` writes cProfile statistics when the process is terminated.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import signal
import socket
import time
from collections import Counter
from datetime import date
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.crm_book import crm_book
from sandbox.book import generate_book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Limits
from sandbox.records import Book
from sandbox.stripe import stripe_app
from sandbox.usage_csv import write_usage_csv
from sandbox.zendesk import zendesk_app

__all__ = ["budget_of", "main"]


def budget_of(path: str) -> str:
    """The budget a request counts against, as `vendor/budget` (HubSpot search has its own)."""
    vendor = path.strip("/").split("/", 1)[0]
    if vendor == "hubspot" and path.endswith("/search"):
        return "hubspot/search"
    if vendor == "zendesk" and "/incremental/" in path:
        return "zendesk/incremental"
    return f"{vendor}/default"


class Counting:
    """ASGI middleware: counts responses by budget and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_bench"):
            await self.app(scope, receive, send)
            return
        key = budget_of(scope["path"])

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counts[f"{key} {message['status']}"] += 1
            await send(message)

        await self.app(scope, receive, counted)


def build(book: Book, limits: str) -> Counting:
    """The three emulators under one app, unlimited or with their vendors' real budgets."""

    def lim(vendor: str) -> Limits:
        return Limits.vendor(vendor) if limits == "vendor" else Limits.unlimited()

    apps = {
        "hubspot": hubspot_app(book, limits=lim("hubspot")),
        "zendesk": zendesk_app(book, limits=lim("zendesk")),
        "stripe": stripe_app(book, limits=lim("stripe")),
    }
    counting: Counting | None = None

    async def stats(_request: Request) -> Response:
        assert counting is not None
        return JSONResponse({**counting.counts, "cpu_s": time.process_time()})

    routes = [Route("/_bench/stats", stats), *(Mount(f"/{n}", app=a) for n, a in apps.items())]
    counting = Counting(Starlette(routes=routes))
    return counting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300, help="accounts of the sandbox book")
    parser.add_argument(
        "--crm-companies", type=int, default=0, help="serve a HubSpot-only book of N companies"
    )
    parser.add_argument("--deals-per-company", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--today", type=date.fromisoformat, default=None)
    parser.add_argument("--usage-csv", type=Path, default=None, help="write the usage CSV here")
    parser.add_argument("--limits", choices=("none", "vendor"), default="none")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile stats file")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.crm_companies:
        book = crm_book(
            args.crm_companies,
            deals_per_company=args.deals_per_company,
            seed=args.seed,
            today=args.today,
        )
    else:
        book = generate_book(seed=args.seed, accounts=args.accounts, today=args.today)
    if args.usage_csv is not None:
        write_usage_csv(book, args.usage_csv)
    app = build(book, args.limits)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    sock.listen(128)
    if args.profile is not None:
        profiler, path = cProfile.Profile(), args.profile

        def dump(_signum: int, _frame: object) -> None:
            profiler.disable()
            profiler.dump_stats(path)
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, dump)  # uvicorn hands SIGTERM on once it has stopped
        profiler.enable()
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
