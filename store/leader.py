"""Leadership among instances sharing one database: exactly one runs the scheduled jobs.

Every `health-agent run` calls `Leadership.hold()` on a heartbeat (a third of the lease).
It returns True while this instance leads; a standby keeps calling it and takes over once
the leader is gone.

- **PostgreSQL**: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated
  connection decides. The lock lives as long as that connection: a leader that dies, is
  killed or loses its connection loses it at once, and a standby gets it on its next try.
  The `leases` row only tells a status page who leads and since when. The lock needs a
  session of its own: connect directly, or through a proxy that pools sessions, never one
  that pools transactions (PgBouncer's transaction mode would hand the lock around).
- **SQLite**: the `leases` row is the lock. One conditional upsert takes it only when it has
  expired (or is already ours); the leader renews it on every heartbeat; a leader killed
  without releasing it is replaced once its lease expires.

A leader that cannot renew in time stops leading (`is_leader()` turns false as soon as its
lease runs out, before any other instance may take it over). `release()` on a clean stop
lets a standby take over at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from store.db import session_scope
from store.models import Lease
from store.types import utcnow
from store.upsert import table_of

__all__ = ["SCHEDULER_LEASE", "Leadership", "advisory_key", "current_leader", "default_holder"]

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
"""The lease `health-agent run` instances compete for."""


def default_holder() -> str:
    """This process, as `hostname:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a lease name."""
    digest = hashlib.sha256(f"health-agent lease {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def current_leader(engine: Engine, name: str = SCHEDULER_LEASE) -> Lease | None:
    """The lease row: who leads (or led last), since when and until when, if any did."""
    with Session(engine) as session:
        return session.get(Lease, name)


class Leadership:
    """This instance's claim on the lease `name`; `hold()` takes or keeps it."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = SCHEDULER_LEASE,
        holder: str | None = None,
        lease_seconds: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.engine = engine
        self.name = name
        self.holder = holder or default_holder()
        self.lease = timedelta(seconds=lease_seconds)
        self._clock = clock
        self._expires: datetime | None = None
        """Until when this instance leads unless it renews; None while it does not lead."""
        self._conn: Connection | None = None
        """PostgreSQL: the connection whose session holds the advisory lock."""
        self._backend_pid: int | None = None

    @property
    def heartbeat(self) -> float:
        """Seconds between calls to `hold()`: a third of the lease."""
        return self.lease.total_seconds() / 3

    def is_leader(self) -> bool:
        """Whether this instance leads now: it holds the lease and it has not run out."""
        return self._expires is not None and self._clock() < self._expires

    def hold(self) -> bool:
        """Take the lease, or renew it when this instance has it; True while it leads.

        Database errors count as not leading (and are logged): the next call tries again.
        """
        try:
            if self._expires is not None:
                if self._renew():
                    return True
                log.warning("lease %s: %s lost it", self.name, self.holder)
                self._drop()
            return self._take()
        except SQLAlchemyError as exc:
            log.warning("lease %s: %s cannot reach the database: %s", self.name, self.holder, exc)
            self._drop()
            return False

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so that a standby takes over."""
        if self._expires is None:
            return
        leases = table_of(Lease)
        statement = (
            update(leases)
            .where(leases.c.name == self.name, leases.c.holder == self.holder)
            .values(expires_at=self._clock())
        )
        try:
            if self._conn is not None:
                self._conn.execute(statement)
            else:
                with session_scope(self.engine) as session:
                    session.execute(statement)
        except SQLAlchemyError as exc:
            log.warning("lease %s: could not mark it released: %s", self.name, exc)
        finally:
            self._drop()

    # ----------------------------------------------------------------------------- taking

    def _take(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            return self._take_advisory()
        return self._take_row()

    def _row(self, now: datetime) -> dict[str, Any]:
        """The lease row as this instance would hold it from `now`."""
        return {
            "name": self.name,
            "holder": self.holder,
            "acquired_at": now,
            "renewed_at": now,
            "expires_at": now + self.lease,
        }

    def _take_row(self) -> bool:
        """SQLite: one conditional upsert takes the row if it expired; then read who has it."""
        now = self._clock()
        expires = now + self.lease
        leases = table_of(Lease)
        values = self._row(now)
        statement = sqlite.insert(leases).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={key: statement.excluded[key] for key in values if key != "name"},
            where=or_(leases.c.expires_at <= now, leases.c.holder == self.holder),
        )
        with session_scope(self.engine) as session:
            session.execute(statement)
            holder = session.execute(
                select(leases.c.holder).where(leases.c.name == self.name)
            ).scalar_one()
        if holder != self.holder:
            return False
        self._expires = expires
        log.info("lease %s: %s leads", self.name, self.holder)
        return True

    def _take_advisory(self) -> bool:
        """PostgreSQL: try the advisory lock on a connection kept for as long as it is held."""
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            locked = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": advisory_key(self.name)}
            ).scalar_one()
            if not locked:
                connection.close()
                return False
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        except BaseException:
            connection.invalidate()  # never pool a session that may hold the lock
            connection.close()
            raise
        self._conn, self._backend_pid = connection, int(pid)
        now = self._clock()
        self._expires = now + self.lease
        self._write_row(now, acquired=True)
        log.info("lease %s: %s leads", self.name, self.holder)
        return True

    # ----------------------------------------------------------------------------- renewing

    def _renew(self) -> bool:
        now = self._clock()
        if self._conn is not None:  # PostgreSQL: leading as long as the session lives
            pid = self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            if pid != self._backend_pid:
                return False
            self._expires = now + self.lease
            self._write_row(now, acquired=False)
            return True
        leases = table_of(Lease)
        with session_scope(self.engine) as session:
            renewed = session.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(renewed_at=now, expires_at=now + self.lease)
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult
                return False
        self._expires = now + self.lease
        return True

    def _write_row(self, now: datetime, *, acquired: bool) -> None:
        """PostgreSQL: the row as information; the advisory lock is what counts."""
        assert self._conn is not None
        statement = postgresql.insert(table_of(Lease)).values(self._row(now))
        changed = ["holder", "renewed_at", "expires_at"] + (["acquired_at"] if acquired else [])
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_={key: statement.excluded[key] for key in changed}
        )
        self._conn.execute(statement)

    # ----------------------------------------------------------------------------- letting go

    def _drop(self) -> None:
        """Forget leadership; on PostgreSQL close the lock's session, which frees the lock."""
        self._expires = None
        connection, self._conn, self._backend_pid = self._conn, None, None
        if connection is not None:
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key(self.name)}
                )
            except SQLAlchemyError:
                pass  # a lost session has no lock left to free
            finally:
                connection.invalidate()  # never pool a session that may hold the lock
                connection.close()
