"""Upserts by COPY store exactly what upserts by executemany store, on both dialects.

PostgreSQL upserts of `COPY_THRESHOLD` rows or more go by COPY through a temporary table.
The comparisons run the same writes once with the threshold lowered to force that path and
once raised to force the executemany, check which path ran, then compare every stored row as
the driver returns it (naive UTC timestamps, JSON as stored), in insertion order. On SQLite
both runs take the executemany, and the tests show that the same calls behave alike there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, delete, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, select

import scoring.health
import store.upsert
from bench.scoring_bench import AS_OF as BOOK_AS_OF
from bench.scoring_bench import load_book
from scoring import load_scorecard, score_accounts
from store import session_scope
from store.models import Account, Alert, HealthScore, QuarantinedRecord
from store.pg_copy import PgCopy
from store.upsert import bulk_upsert, table_of, upsert_stream

COPY, MANY = 1, 10**9
"""Thresholds that force the COPY path and the executemany path."""
KEYS = ("account_id", "as_of")
DAY = date(2026, 3, 2)
CEST = timezone(timedelta(hours=2))
_M = TypeVar("_M", bound=SQLModel)


class _ProbeBase(SQLModel, registry=registry()):
    """Tables of these tests only, apart from the store's metadata and migrations."""


def _label(context: Any) -> str:
    """A default computed from the row being inserted."""
    return f"probe {context.get_current_parameters()['name']}"


class Probe(_ProbeBase, table=True):
    """A row with a context-sensitive default."""

    __tablename__ = "upsert_probes"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    label: str = Field(sa_column_kwargs={"default": _label})


def _accounts(engine: Engine, n: int) -> list[int]:
    with session_scope(engine) as s:
        rows = [{"source": "crm", "external_id": str(k), "name": f"Acme {k}"} for k in range(n)]
        bulk_upsert(s, Account, rows)
        return list(s.connection().execute(text("SELECT id FROM accounts ORDER BY id")).scalars())


def _score(account_id: int, n: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": account_id,
        "as_of": DAY,
        "score": 50.0 + n,
        "band": "yellow",
        "confidence": 0.875,
        "components": {
            "support": {"score": 61.5, "measures": {"csat": {"value": None, "weight": 0.3}}},
            "naming": {"text": 'Société Générale — 東京 \\ "quoted"\ttab\nnewline'},
            "list": [1, 2.5, None, True, {"deep": [[], {}]}],
            "huge": 10**15 + n,
        },
        "weights": {"support": 1.0, "usage": 0.0},
        "drivers": [{"text": f"Capped at 50 — reason {n}", "impact": -12.5, "measure": None}],
        "scorecard_version": "v1",
        "computed_at": datetime(2026, 3, 2, 23, 30, tzinfo=CEST) + timedelta(seconds=n),
    }
    row.update(fields)
    return row


def _stored(engine: Engine, table: str) -> list[dict[str, Any]]:
    """Every row of `table` as the driver returns it, in insertion order, without ids."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))  # noqa: S608  # test names
        return [{k: v for k, v in row.items() if k != "id"} for row in rows.mappings()]


def _clear(engine: Engine, *models: type[SQLModel]) -> None:
    with session_scope(engine) as s:
        for model in models:
            s.connection().execute(delete(model))


def _count_copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables COPY is opened into from now on, one entry each time."""
    opened: list[str] = []
    real = PgCopy.open

    def open_(copy: PgCopy) -> None:
        opened.append(copy._table.name)
        real(copy)

    monkeypatch.setattr(PgCopy, "open", open_)
    return opened


def _both_ways(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    writes: Callable[[], None],
    model: type[_M],
    volatile: tuple[str, ...] = (),
) -> list[_M]:
    """The rows `writes` stores by COPY, read back as models, once asserted equal (but for
    the `volatile` columns, such as the time of writing) to those it stores by executemany."""
    stored = []
    copies = _count_copies(monkeypatch)
    for threshold in (MANY, COPY):
        monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", threshold)
        _clear(engine, model)
        writes()
        rows = _stored(engine, table_of(model).name)
        stored.append([{k: v for k, v in row.items() if k not in volatile} for row in rows])
        assert (len(copies) > 0) == (threshold == COPY and engine.dialect.name == "postgresql")
    assert stored[1] == stored[0]
    assert stored[0]
    with Session(engine) as s:
        return list(s.exec(select(model).order_by(table_of(model).c.id)).all())


@pytest.fixture
def probes(engine: Engine) -> Iterator[Engine]:
    _ProbeBase.metadata.create_all(engine)
    yield engine
    _ProbeBase.metadata.drop_all(engine)


def test_scores_are_written_the_same_both_ways(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _accounts(engine, 6)

    def writes() -> None:
        with session_scope(engine) as s:
            assert bulk_upsert(s, HealthScore, [_score(a, k) for k, a in enumerate(ids)], KEYS) == 6
        with session_scope(engine) as s:
            again = [
                _score(ids[4], 40, band="red"),
                _score(ids[1], 10, drivers=None),  # JSON null, not SQL NULL
                _score(ids[4], 41, band="green"),  # the last of a key wins, where it first came
                _score(ids[0], 0, as_of=DAY + timedelta(days=1)),  # a new row
            ]
            assert bulk_upsert(s, HealthScore, again, KEYS) == 3
        with session_scope(engine) as s:
            only_score = [_score(ids[2], 99, band="red"), _score(ids[5], 98, band="red")]
            bulk_upsert(s, HealthScore, only_score, KEYS, update=("score",))
            bulk_upsert(s, HealthScore, [_score(ids[3], 97)], KEYS, update=())

    stored = _both_ways(engine, monkeypatch, writes, HealthScore)
    by_key = {(r.account_id, r.as_of): r for r in stored}
    assert [(r.account_id, r.as_of) for r in stored] == [
        *((a, DAY) for a in ids),
        (ids[0], DAY + timedelta(days=1)),
    ]
    assert (by_key[ids[4], DAY].score, by_key[ids[4], DAY].band) == (91.0, "green")
    assert by_key[ids[1], DAY].drivers is None  # JSON null reads back as None
    assert (by_key[ids[2], DAY].score, by_key[ids[2], DAY].band) == (149.0, "yellow")
    assert by_key[ids[3], DAY].score == 53.0
    first = by_key[ids[0], DAY]
    assert first.computed_at == datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
    assert first.components == _score(ids[0], 0)["components"]


def test_python_side_defaults_are_filled_in_both_ways(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def writes() -> None:
        rows = [{"fingerprint": f"f{k}", "rule": "band_drop", "text": f"é {k}"} for k in range(3)]
        with session_scope(engine) as s:
            bulk_upsert(s, Alert, rows, keys=("fingerprint",))

    before = datetime.now(UTC)
    stored = _both_ways(engine, monkeypatch, writes, Alert, volatile=("created_at",))
    assert [a.text for a in stored] == ["é 0", "é 1", "é 2"]
    for alert in stored:
        assert before <= alert.created_at <= datetime.now(UTC)
        assert (alert.severity, alert.status, alert.payload) == ("warning", "pending", {})


def test_context_sensitive_defaults_see_the_row_both_ways(
    probes: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def writes() -> None:
        with session_scope(probes) as s:
            bulk_upsert(s, Probe, [{"name": "a"}, {"name": "b"}], keys=("name",))

    stored = _both_ways(probes, monkeypatch, writes, Probe)
    assert [(p.name, p.label) for p in stored] == [("a", "probe a"), ("b", "probe b")]


def test_a_refused_value_fails_alike_and_leaves_the_session_usable(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    [account] = _accounts(engine, 1)
    for threshold in (MANY, COPY):
        monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", threshold)
        with Session(engine) as s:
            naive = _score(account, 0, computed_at=datetime(2026, 3, 2, 12))
            with pytest.raises(StatementError, match="naive datetime"):
                bulk_upsert(s, HealthScore, [naive], KEYS)
            assert bulk_upsert(s, HealthScore, [_score(account, 1)], KEYS) == 1
            s.rollback()


def test_a_value_json_refuses_fails_alike(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways raise the serialiser's error (wrapped by SQLAlchemy on SQLite); by COPY
    the transaction fails with it."""
    keys = ("source", "stream", "record_key")
    row = {"source": "crm", "stream": "a", "record_key": "1", "reason": "r", "payload": {}}
    for threshold in (MANY, COPY):
        monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", threshold)
        with Session(engine) as s:
            with pytest.raises((TypeError, StatementError), match="not JSON serializable"):
                bulk_upsert(s, QuarantinedRecord, [{**row, "payload": {"a": object()}}], keys)
            s.rollback()
            assert bulk_upsert(s, QuarantinedRecord, [row], keys) == 1


def test_a_stream_stores_what_one_upsert_per_batch_stores(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _accounts(engine, 5)

    def writes() -> None:
        with session_scope(engine) as s:
            bulk_upsert(s, HealthScore, [_score(ids[0], 0), _score(ids[1], 1)], KEYS)
        with session_scope(engine) as s, upsert_stream(s, HealthScore, KEYS) as stream:
            stream.write([_score(ids[2], 2), _score(ids[1], 11)])  # ids[1]: an update
            stream.write([])
            stream.write([_score(ids[3], 3), _score(ids[3], 13)])
            stream.write([_score(ids[2], 22), _score(ids[4], 4)])  # ids[2] again: a flush first
            stream.write(iter([_score(ids[0], 10, as_of=DAY + timedelta(days=1))]))

    def per_batch() -> None:
        monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", MANY)
        with session_scope(engine) as s:
            bulk_upsert(s, HealthScore, [_score(ids[0], 0), _score(ids[1], 1)], KEYS)
            bulk_upsert(s, HealthScore, [_score(ids[2], 2), _score(ids[1], 11)], KEYS)
            bulk_upsert(s, HealthScore, [_score(ids[3], 3), _score(ids[3], 13)], KEYS)
            bulk_upsert(s, HealthScore, [_score(ids[2], 22), _score(ids[4], 4)], KEYS)
            next_day = _score(ids[0], 10, as_of=DAY + timedelta(days=1))
            bulk_upsert(s, HealthScore, [next_day], KEYS)

    stored = _both_ways(engine, monkeypatch, writes, HealthScore)
    by_stream = _stored(engine, "health_scores")
    _clear(engine, HealthScore)
    per_batch()
    assert by_stream == _stored(engine, "health_scores")
    assert [r.score for r in stored] == [50.0, 61.0, 72.0, 63.0, 54.0, 60.0]


def test_a_stream_above_and_below_the_threshold(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows wait for the threshold, then go into the COPY; fewer go by executemany."""
    ids = _accounts(engine, 5)
    monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", 3)
    copies = _count_copies(monkeypatch)
    for n in (2, 5):
        _clear(engine, HealthScore)
        with session_scope(engine) as s, upsert_stream(s, HealthScore, KEYS) as stream:
            for k, account in enumerate(ids[:n]):
                stream.write([_score(account, k)])
        assert [r["account_id"] for r in _stored(engine, "health_scores")] == ids[:n]
    assert len(copies) == (1 if engine.dialect.name == "postgresql" else 0)


def test_a_stream_takes_rows_of_one_shape(engine: Engine) -> None:
    [account] = _accounts(engine, 1)
    with Session(engine) as s, upsert_stream(s, HealthScore, KEYS) as stream:
        stream.write([_score(account, 0)])
        with pytest.raises(ValueError, match="one shape"):
            stream.write([{"account_id": account, "as_of": DAY, "score": 1.0}])


def test_an_error_in_a_stream_abandons_its_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _accounts(engine, 3)
    monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", 2)
    with Session(engine) as s:

        def fail() -> None:
            with upsert_stream(s, HealthScore, KEYS) as stream:
                stream.write([_score(a, k) for k, a in enumerate(ids)])
                raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            fail()
        if engine.dialect.name == "postgresql":  # the COPY failed, and the transaction with it
            with pytest.raises(DBAPIError, match="current transaction is aborted"):
                s.connection().execute(text("SELECT 1"))
        s.rollback()
    assert _stored(engine, "health_scores") == []


def test_scoring_stores_the_same_scores_both_ways(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_book(engine.url.render_as_string(hide_password=False), accounts=60, seed=5)
    card = load_scorecard()
    monkeypatch.setattr(scoring.health, "SCORE_CHUNK", 7)
    copies = _count_copies(monkeypatch)
    stored = []
    for threshold in (MANY, COPY):
        monkeypatch.setattr(store.upsert, "COPY_THRESHOLD", threshold)
        _clear(engine, HealthScore)
        summary = score_accounts(engine, BOOK_AS_OF, card)
        rows = _stored(engine, "health_scores")
        for row in rows:
            del row["computed_at"]  # the time of each run
        stored.append(rows)
    assert stored[1] == stored[0]
    assert copies == (["health_scores"] if engine.dialect.name == "postgresql" else [])
    assert len(stored[0]) == summary.scored > 0
    assert [r["account_id"] for r in stored[0]] == sorted(r["account_id"] for r in stored[0])
