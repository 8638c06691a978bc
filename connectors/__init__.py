"""Pulling vendor data into the store: declared streams, one fetch loop, identity matching.

`sync_all(engine, settings)` is the entry point: it syncs every enabled source (HTTP with
retries and quota pacing, paging, per-page commits and cursors, quarantine of records that
cannot be mapped) and then matches every record to its account. See `base.py` for how a
connector is declared and `sync.py` for the guarantees of the loop.
"""

from connectors.base import Connector, CursorKind, Record, Request, StreamSpec
from connectors.errors import (
    AuthError,
    FatalError,
    MappingError,
    PagingError,
    RetriableError,
    SyncError,
)
from connectors.http import ClientOptions, RetryPolicy
from connectors.identity import resolve_identities, unmatched_links
from connectors.registry import build_connectors, sync_all
from connectors.sync import (
    Progress,
    ProgressEvent,
    StreamResult,
    SyncOptions,
    SyncSummary,
    sync_connector,
)

__all__ = [
    "AuthError",
    "ClientOptions",
    "Connector",
    "CursorKind",
    "FatalError",
    "MappingError",
    "PagingError",
    "Progress",
    "ProgressEvent",
    "Record",
    "Request",
    "RetriableError",
    "RetryPolicy",
    "StreamResult",
    "StreamSpec",
    "SyncError",
    "SyncOptions",
    "SyncSummary",
    "build_connectors",
    "resolve_identities",
    "sync_all",
    "sync_connector",
    "unmatched_links",
]
