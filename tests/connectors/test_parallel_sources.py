"""Sources sync side by side: fetching overlaps, writes take turns, results are the same."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors import registry
from logs import current_log_context, log_context
from settings import SchedulerSettings, Settings
from store.db import make_engine
from store.models import Account, Csm, ExternalLink, Opportunity, Subscription, Ticket
from tests.conftest import sqlite_copy
from tests.connectors.worlds import World, hubspot_world, stripe_world, zendesk_world

Serve = Callable[[str, httpx.Request], httpx.Response]


class Overlap:
    """Counts requests in flight across every fake vendor, and the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0

    def slow(self, serve: Callable[[str, httpx.Request], httpx.Response]) -> Any:
        def wrapped(route: str, request: httpx.Request) -> httpx.Response:
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
            try:
                time.sleep(0.01)  # a network round trip
                return serve(route, request)
            finally:
                with self.lock:
                    self.active -= 1

        return wrapped


def _sync(engine: Engine, parallel: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Overlap]:
    overlap = Overlap()
    worlds: list[World] = [hubspot_world(), zendesk_world(), stripe_world()]
    for world in worlds:
        world.vendor.serve = overlap.slow(world.vendor.serve)
    connectors = [w.connector for w in worlds]
    monkeypatch.setattr(registry, "build_connectors", lambda *_a, **_k: connectors)
    settings = Settings(_env_file=None, scheduler=SchedulerSettings(parallel_sources=parallel))
    return registry.sync_all(engine, settings), overlap


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            model.__name__: int(
                session.execute(select(func.count()).select_from(model)).scalar_one()
            )
            for model in (Account, Csm, ExternalLink, Opportunity, Subscription, Ticket)
        }


def test_sources_fetch_side_by_side_and_store_what_one_by_one_stores(
    engine: Engine,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    together, overlap = _sync(engine, 3, monkeypatch)
    assert together.ok, [r.error for r in together.failures]
    assert overlap.most >= 2  # requests of different vendors were in flight at once
    assert [r.source for r in together.streams] == sorted(
        (r.source for r in together.streams), key=["hubspot", "zendesk", "stripe"].index
    )

    (tmp_path / "apart").mkdir()
    apart_engine = make_engine(sqlite_copy(request, tmp_path / "apart"))
    apart, one_by_one = _sync(apart_engine, 1, monkeypatch)
    assert apart.ok
    assert one_by_one.most == 1
    assert _counts(engine) == _counts(apart_engine)
    assert together.links == apart.links
    assert sum(r.records for r in together.streams) == sum(r.records for r in apart.streams)


def test_each_source_keeps_the_callers_log_ids_in_its_thread(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: set[tuple[str | None, str]] = set()
    worlds: list[World] = [hubspot_world(), zendesk_world(), stripe_world()]
    for world in worlds:
        serve = world.vendor.serve

        def noted(route: str, request: httpx.Request, serve: Serve = serve) -> httpx.Response:
            seen.add((current_log_context().get("job_id"), threading.current_thread().name))
            return serve(route, request)

        world.vendor.serve = noted
    monkeypatch.setattr(
        registry, "build_connectors", lambda *_a, **_k: [w.connector for w in worlds]
    )
    settings = Settings(_env_file=None, scheduler=SchedulerSettings(parallel_sources=3))
    with log_context(job_id="pipeline"):
        assert registry.sync_all(engine, settings).ok
    assert {job for job, _ in seen} == {"pipeline"}
    assert all(thread.startswith("sync") for _, thread in seen)
