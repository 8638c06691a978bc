"""The Prometheus `/metrics` route: the facts of `health-agent status`, read at scrape time.

`StoreCollector` reads the store at every scrape (through `status.queries`), so any process
that can reach the database can serve the metrics, leader or not. `routes` is the Starlette
route a web app mounts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from settings import ConfigError, Settings
from status.facts import LEADER_LEASE
from status.queries import gather, run_totals
from store.models import Alert
from store.types import utcnow

__all__ = ["METRICS", "StoreCollector", "routes"]

log = logging.getLogger(__name__)


METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("sync_lag_seconds", "gauge", "Seconds since the source's stalest stream last synced.",
     ("source",)),
    ("sync_stale_after_seconds", "gauge", "Lag after which the source is stale.", ("source",)),
    ("source_healthy", "gauge", "1 when the source is neither failing nor stale.", ("source",)),
    ("records_synced", "counter", "Records synced, over every recorded run.", ("source",)),
    ("sync_errors", "counter", "Stream runs that failed or were refused.", ("source",)),
    ("alerts", "gauge", "Alerts in the store by status.", ("status",)),
    ("alerts_sent", "counter", "Alerts delivered.", ()),
    ("alerts_pending", "gauge", "Alerts waiting to be delivered.", ()),
    ("alerts_pending_oldest_age_seconds", "gauge", "Age of the oldest pending alert.", ()),
    ("quarantined_records", "gauge", "Unresolved records that could not be mapped.",
     ("source",)),
    ("leader_present", "gauge", "1 when an instance holds the lease, unexpired.", ("lease",)),
    ("job_next_run_timestamp_seconds", "gauge", "Unix time of the job's next run.", ("job",)),
)  # fmt: skip
"""Every metric: its name after `health_agent_`, its type, its help, its labels."""


def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    kinds = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}
    return {
        name: kinds[kind](f"health_agent_{name}", text, labels=list(labels))
        for name, kind, text, labels in METRICS
    }


class StoreCollector:
    """A Prometheus collector that reads the store at every scrape."""

    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        status = gather(self._engine, self._settings, now=now, stored=False)
        with Session(self._engine) as session:
            totals = run_totals(session)
            sent = session.execute(
                select(func.count()).where(col(Alert.sent_at).is_not(None))
            ).scalar_one()
        found = _families()
        for s in status.sources:
            if s.lag is not None:
                found["sync_lag_seconds"].add_metric([s.source], s.lag.total_seconds())
            found["sync_stale_after_seconds"].add_metric([s.source], s.stale_after.total_seconds())
            found["source_healthy"].add_metric([s.source], 1.0 if s.healthy else 0.0)
        for source, (records, errors) in sorted(totals.items()):
            found["records_synced"].add_metric([source], records)
            found["sync_errors"].add_metric([source], errors)
        for alert_status, n in status.alerts.by_status.items():
            found["alerts"].add_metric([alert_status], n)
        found["alerts_sent"].add_metric([], int(sent))
        found["alerts_pending"].add_metric([], status.alerts.pending)
        oldest = status.alerts.oldest_pending
        found["alerts_pending_oldest_age_seconds"].add_metric(
            [], (now - oldest).total_seconds() if oldest else 0.0
        )
        for source, n in sorted(status.quarantined.items()):
            found["quarantined_records"].add_metric([source], n)
        leases = {lease.name: lease.alive for lease in status.leases}
        for name in sorted({LEADER_LEASE, *leases}):
            found["leader_present"].add_metric([name], 1.0 if leases.get(name) else 0.0)
        for job in status.jobs:
            if job.next_run_time is not None:
                found["job_next_run_timestamp_seconds"].add_metric(
                    [job.id], job.next_run_time.timestamp()
                )
        return list(found.values())


def routes(engine: Engine, settings: Settings) -> list[BaseRoute]:
    """`GET /metrics`: the Prometheus text format (or OpenMetrics when asked for)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine, settings))

    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        try:
            body = await run_in_threadpool(encode, registry)
        except SQLAlchemyError as exc:
            log.warning("metrics: the store did not answer: %s", type(exc).__name__)
            return PlainTextResponse("the store did not answer\n", status_code=503)
        except ConfigError as exc:  # a schedule the scheduler would refuse too
            return PlainTextResponse(f"{exc}\n", status_code=503)
        return Response(body, headers={"Content-Type": content_type})

    return [Route("/metrics", metrics, methods=["GET"])]
