"""Leadership among instances: one leads at a time, a standby takes over when it goes.

In-process, with several `Leadership` objects on one database: on both dialects only one
holds the lease and a release hands it over at once; on SQLite an unrenewed lease expires
(an injected clock); on PostgreSQL a leader whose connection dies loses its advisory lock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from store.db import make_engine
from store.leader import Leadership, current_leader

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_one_instance_leads_and_a_release_hands_over_at_once(engine: Engine) -> None:
    first = Leadership(engine, holder="host-a:1", lease_seconds=60)
    second = Leadership(engine, holder="host-b:2", lease_seconds=60)
    try:
        assert first.hold()
        assert not second.hold()
        assert first.hold(), "the leader renews"
        assert (first.is_leader(), second.is_leader()) == (True, False)
        lease = current_leader(engine)
        assert lease is not None
        assert lease.holder == "host-a:1"
        assert lease.expires_at > lease.renewed_at >= lease.acquired_at

        first.release()
        assert not first.is_leader()
        assert second.hold(), "a standby takes over as soon as the leader lets go"
        assert not first.hold()
        lease = current_leader(engine)
        assert lease is not None
        assert lease.holder == "host-b:2"
    finally:
        first.release()
        second.release()


def test_on_sqlite_an_unrenewed_lease_expires_and_a_standby_takes_it(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    clock = Clock()
    leader = Leadership(engine, holder="a:1", lease_seconds=60, clock=clock)
    standby = Leadership(engine, holder="b:2", lease_seconds=60, clock=clock)
    try:
        assert leader.hold()
        clock.advance(40)
        assert not standby.hold()
        assert leader.hold(), "renewed at +40 s: now valid until +100 s"
        clock.advance(59)
        assert not standby.hold()
        assert leader.is_leader()
        clock.advance(2)  # +101 s: the leader missed its heartbeats
        assert not leader.is_leader(), "a leader that could not renew stops leading by itself"
        assert standby.hold()
        assert not leader.hold(), "the old leader finds the row taken and stands by"
        lease = current_leader(engine)
        assert lease is not None
        assert (lease.holder, lease.acquired_at, lease.expires_at) == (
            "b:2",
            clock.now,
            clock.now + timedelta(seconds=60),
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_on_postgresql_a_leader_whose_connection_dies_is_replaced_at_once(
    engine: Engine,
) -> None:
    leader = Leadership(engine, holder="a:1", lease_seconds=60)
    standby = Leadership(engine, holder="b:2", lease_seconds=60)
    try:
        assert leader.hold()
        assert not standby.hold()
        with engine.connect() as admin:
            killed = admin.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar_one()
        assert killed == 1
        assert standby.hold(), "the lock died with the session: no need to wait for the lease"
        assert not leader.hold()
        assert not leader.is_leader()
        lease = current_leader(engine)
        assert lease is not None
        assert lease.holder == "b:2"
    finally:
        leader.release()
        standby.release()
