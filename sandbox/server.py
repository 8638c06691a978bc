"""Serve emulator apps over real HTTP on loopback, from a background thread.

    with serve_apps(vendor_apps(book, time_scale=60)) as base:
        hubspot_base_url = f"{base}/hubspot"  # also /zendesk and /stripe

One uvicorn server listens on 127.0.0.1 on a free port chosen by the OS; each app is
mounted under `/<name>`. The server starts in a few milliseconds, logs only warnings, and
shuts down when the block exits.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Faults, Limits
from sandbox.records import Book
from sandbox.stripe import stripe_app
from sandbox.zendesk import zendesk_app

__all__ = ["serve_apps", "vendor_apps"]

_STARTUP_TIMEOUT_S = 10.0


def vendor_apps(
    book: Book, *, time_scale: float = 1.0, faults: Faults | None = None
) -> dict[str, ASGIApp]:
    """The HubSpot, Zendesk and Stripe emulators of `book` with their vendors' real budgets.

    `time_scale` compresses every rate-limit window (60 turns a minute into a second);
    `faults`, shared by the three (their paths and stream names differ), arms failures.
    """
    shared = faults or Faults()
    return {
        "hubspot": hubspot_app(
            book, limits=Limits.vendor("hubspot", time_scale=time_scale, faults=shared)
        ),
        "zendesk": zendesk_app(
            book, limits=Limits.vendor("zendesk", time_scale=time_scale, faults=shared)
        ),
        "stripe": stripe_app(
            book, limits=Limits.vendor("stripe", time_scale=time_scale, faults=shared)
        ),
    }


@contextmanager
def serve_apps(apps: Mapping[str, ASGIApp]) -> Iterator[str]:
    """Run `apps` under one loopback server; yields its base URL, e.g. `http://127.0.0.1:51234`."""
    root = Starlette(routes=[Mount(f"/{name}", app=app) for name, app in apps.items()])
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        root,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-http-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox HTTP server did not start")
            time.sleep(0.002)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=_STARTUP_TIMEOUT_S)
        sock.close()
