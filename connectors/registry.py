"""Which sources exist, which are enabled, and the one call that syncs them all.

`build_connectors` turns settings into connectors for the enabled sources (or the ones
asked for), in a fixed order, the CRM first. `sync_all` syncs them, several at once, then
resolves identities once, when every source's records are in. Connectors of other packages
plug in through the `health_agent.connectors` entry point group: each entry point
is a callable `(settings, client_options) -> Connector | None` (None: not configured).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points

from sqlalchemy import Engine

from connectors import (
    chargebee,
    folder,
    freshdesk,
    hubspot,
    intercom,
    salesforce,
    sql_source,
    stripe,
    usage_file,
    zendesk,
)
from connectors.base import Connector
from connectors.http import ClientOptions
from connectors.identity import resolve_identities
from connectors.sync import Progress, StreamResult, SyncOptions, SyncSummary, sync_connector
from settings import ConfigError, Settings
from store.db import session_scope
from store.teams import configure_teams

__all__ = ["BUILT_IN", "ENTRY_POINT_GROUP", "build_connectors", "sync_all"]

ENTRY_POINT_GROUP = "health_agent.connectors"
Factory = Callable[[Settings, ClientOptions | None], Connector | None]

BUILT_IN: dict[str, Factory] = {
    "hubspot": lambda settings, client: hubspot.build(settings, client),
    "salesforce": lambda settings, client: salesforce.build(settings, client),
    "zendesk": lambda settings, client: zendesk.build(settings, client),
    "freshdesk": lambda settings, client: freshdesk.build(settings, client),
    "intercom": lambda settings, client: intercom.build(settings, client),
    "stripe": lambda settings, client: stripe.build(settings, client),
    "chargebee": lambda settings, client: chargebee.build(settings, client),
    "usage_file": lambda settings, client: usage_file.build(settings),
    "folder": lambda settings, client: folder.build(settings),
    "sql": lambda settings, client: sql_source.build(settings),
}


def _plugins() -> dict[str, Factory]:
    found: dict[str, Factory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILT_IN:
            found[entry.name] = entry.load()
    return found


def build_connectors(
    settings: Settings,
    sources: Sequence[str] | None = None,
    *,
    client: ClientOptions | None = None,
) -> list[Connector]:
    """Connectors for `sources` (default: every enabled one), CRM first.

    Raises ConfigError naming the problem when a requested source is unknown or not set up.
    """
    plugins = _plugins()
    enabled = settings.enabled_sources()
    if sources is not None:
        known = [*BUILT_IN, *plugins]
        for name in sources:
            if name not in known:
                raise ConfigError(f"unknown source {name!r}: choose from {', '.join(known)}")
            if name in BUILT_IN and name not in enabled:
                raise ConfigError(f"{name} is not configured: set its variables in .env")
    connectors: list[Connector] = []
    for name, factory in {**BUILT_IN, **plugins}.items():
        wanted = name in sources if sources is not None else name in enabled or name in plugins
        if not wanted:
            continue
        connector = factory(settings, client)
        if connector is not None:
            connectors.append(connector)
    return connectors


def sync_all(
    engine: Engine,
    settings: Settings,
    sources: Sequence[str] | None = None,
    progress: Progress | None = None,
    *,
    client: ClientOptions | None = None,
    options: SyncOptions | None = None,
) -> SyncSummary:
    """Sync every wanted source, then match identities; failures are in the summary.

    Sources sync side by side (`SCHEDULER__PARALLEL_SOURCES` at once): each vendor has its
    own rate limits, so a slow helpdesk export no longer holds up billing. The streams of
    one source still run in their declared order, within that vendor's limits.
    """
    summary = SyncSummary()
    connectors = build_connectors(settings, sources, client=client)
    workers = max(1, min(settings.scheduler.parallel_sources, len(connectors)))

    def one(connector: Connector) -> list[StreamResult]:
        return sync_connector(engine, connector, options=options, progress=progress)

    if workers == 1:
        for connector in connectors:
            summary.streams.extend(one(connector))
    else:
        # each source runs in a copy of the caller's context: log ids bound there (a job's)
        # stay on its lines
        tasks = [(contextvars.copy_context(), connector) for connector in connectors]
        with ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
            # in source order, whatever finishes first
            for results in pool.map(lambda task: task[0].run(one, task[1]), tasks):
                summary.streams.extend(results)
    with session_scope(engine) as session:
        summary.links = resolve_identities(session)
    configure_teams(engine, settings)  # teams the sync created get their lead and channel
    return summary
