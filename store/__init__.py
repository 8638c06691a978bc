"""The agent's one database: canonical tables, engine, bulk upserts, migrations."""

from store.db import make_engine, open_store, session_scope, upgrade
from store.upsert import bulk_upsert

__all__ = ["bulk_upsert", "make_engine", "open_store", "session_scope", "upgrade"]
