"""Nothing lost, nothing twice: a sync killed with SIGKILL at any moment resumes cleanly.

The emulators run in this process; `health-agent sync` runs as a child process against them
and is killed (a real SIGKILL) while it works, at several points: when its k-th request
reaches a vendor, and after a delay that lands in the middle of writing pages. Each kill is
followed by a resumed sync to the end. The store then holds exactly the records a clean,
uninterrupted sync stores: the same keys, no duplicates, the same states.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import SQLModel
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.registry import sync_all
from demo import _sandbox_settings
from sandbox.book import Book, generate_book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Limits
from sandbox.server import serve_apps
from sandbox.stripe import stripe_app
from sandbox.usage_csv import write_usage_csv
from sandbox.zendesk import zendesk_app
from settings import Settings
from store.db import make_engine

REPO = Path(__file__).resolve().parent.parent
PAGE_SIZE = "10"
KEYS = {  # table -> the columns that say what a record is and its state
    "accounts": "source, external_id, name, domain, owner_email, deleted_at",
    "opportunities": "source, external_id, account_ref, stage, arr_minor, is_won",
    "external_links": "source, external_id, crm_hint, status, method",
    "tickets": "source, external_id, account_ref, status, priority, updated_at, deleted_at",
    "survey_responses": "source, external_id, ticket_ref, score",
    "subscriptions": "source, external_id, account_ref, status, mrr_minor",
    "invoices": "source, external_id, account_ref, status, amount_remaining_minor",
    "usage_snapshots": "source, external_id, active_users",
    "csms": "source, external_id, email",
}


class KillSwitch:
    """ASGI wrapper counting requests to the emulators; kills the child at the k-th."""

    def __init__(self) -> None:
        self.requests = 0
        self.kill_at: int | None = None
        self.pid: int | None = None
        self.killed = threading.Event()
        self._lock = threading.Lock()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                with self._lock:
                    self.requests += 1
                    due = self.kill_at is not None and self.requests >= self.kill_at
                    if due and self.pid is not None and not self.killed.is_set():
                        os.kill(self.pid, signal.SIGKILL)
                        self.killed.set()
            await app(scope, receive, send)

        return counted


@pytest.fixture(scope="module")
def book() -> Book:
    return generate_book(accounts=40)


@pytest.fixture(scope="module")
def switch() -> KillSwitch:
    return KillSwitch()


@pytest.fixture(scope="module")
def sandbox(
    book: Book, switch: KillSwitch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    limits = Limits.unlimited()
    apps = {
        "hubspot": switch.wrap(hubspot_app(book, limits=limits)),
        "zendesk": switch.wrap(zendesk_app(book, limits=limits)),
        "stripe": switch.wrap(stripe_app(book, limits=limits)),
    }
    usage = write_usage_csv(book, tmp_path_factory.mktemp("usage") / "usage.csv")
    with serve_apps(apps) as base:
        yield _sandbox_settings(Settings(_env_file=None), base, usage)  # type: ignore[call-arg]  # pydantic-settings init kwarg


def _env(settings: Settings, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "__" not in k and k != "DATABASE_URL"}
    assert settings.hubspot.token
    assert settings.zendesk.api_token
    assert settings.stripe.api_key
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": database_url,
            "HUBSPOT__TOKEN": settings.hubspot.token.get_secret_value(),
            "HUBSPOT__BASE_URL": settings.hubspot.base_url,
            "HUBSPOT__PAGE_SIZE": PAGE_SIZE,
            "ZENDESK__EMAIL": settings.zendesk.email or "",
            "ZENDESK__API_TOKEN": settings.zendesk.api_token.get_secret_value(),
            "ZENDESK__BASE_URL": settings.zendesk.base_url or "",
            "ZENDESK__PAGE_SIZE": PAGE_SIZE,
            "STRIPE__API_KEY": settings.stripe.api_key.get_secret_value(),
            "STRIPE__BASE_URL": settings.stripe.base_url,
            "STRIPE__PAGE_SIZE": PAGE_SIZE,
            "USAGE_FILE__PATH": str(settings.usage_file.path),
        }
    )
    return env


def _sync(env: dict[str, str], cwd: Path, arm: Callable[[int], None] | None = None) -> int:
    """Run `health-agent sync` in a child; `arm` gets its pid to schedule the kill."""
    child = subprocess.Popen(
        [sys.executable, "-m", "cli", "sync"],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if arm is not None:
        arm(child.pid)
    _, stderr = child.communicate(timeout=180)
    if child.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"sync failed with {child.returncode}: {stderr[-2000:]}")
    return child.returncode


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's identifying and state columns, read through their types."""
    tables = SQLModel.metadata.tables
    with engine.connect() as conn:
        return {
            name: sorted(
                tuple(str(v) for v in row)
                for row in conn.execute(
                    select(*(tables[name].c[c.strip()] for c in columns.split(",")))
                )
            )
            for name, columns in KEYS.items()
        }


@pytest.fixture(scope="module")
def reference(sandbox: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What one clean, uninterrupted sync stores, with the same page sizes."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'clean.db'}"
    from store.db import open_store

    engine = open_store(url)
    small = sandbox.model_copy(
        update={
            name: getattr(sandbox, name).model_copy(update={"page_size": int(PAGE_SIZE)})
            for name in ("hubspot", "zendesk", "stripe")
        }
    )
    assert sync_all(engine, small).ok
    snapshot = _snapshot(engine)
    engine.dispose()
    return snapshot


@pytest.mark.slow
def test_sigkill_at_several_points_loses_nothing_and_duplicates_nothing(
    db_url: str,
    sandbox: Settings,
    switch: KillSwitch,
    reference: dict[str, Any],
    tmp_path: Path,
) -> None:
    env = _env(sandbox, db_url)
    kills = 0
    for kill_at in (2, 5, 9, 14, 20, 27):  # the k-th request to any vendor of this run
        switch.requests, switch.kill_at, switch.pid = 0, kill_at, None
        switch.killed.clear()

        def arm(pid: int) -> None:
            switch.pid = pid

        if _sync(env, tmp_path, arm) == -signal.SIGKILL:
            kills += 1
    switch.kill_at = None
    for delay in (0.8, 1.6, 2.4):  # wall-clock kills land inside page writes too
        switch.requests = 0

        def arm_timer(pid: int, delay: float = delay) -> None:
            def later() -> None:
                time.sleep(delay)
                with contextlib.suppress(ProcessLookupError):  # finished first: fair too
                    os.kill(pid, signal.SIGKILL)

            threading.Thread(target=later, daemon=True).start()

        if _sync(env, tmp_path, arm_timer) == -signal.SIGKILL:
            kills += 1
    assert kills >= 6, "the kills must land while the sync is running"
    assert _sync(env, tmp_path) == 0  # resume to the end
    engine = make_engine(db_url)
    try:
        after = _snapshot(engine)
    finally:
        engine.dispose()
    for table, rows in reference.items():
        assert len(after[table]) == len(set(after[table])), f"{table} has duplicates"
        assert after[table] == rows, f"{table} differs from a clean sync"
