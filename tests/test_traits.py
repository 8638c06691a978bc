"""Trait history in the store: typed values, changes only, and values learnt out of order
landing in their place, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from store import session_scope
from store.models import Account, AccountTrait
from store.traits import TraitError, TraitValue, infer_kind, latest_traits, write_traits


def _at(month: int) -> datetime:
    return datetime(2026, month, 1, tzinfo=UTC)


def test_an_older_value_learnt_later_takes_its_place(engine: Engine) -> None:
    with session_scope(engine) as s:
        account = Account(source="crm", external_id="1", name="A")
        s.add(account)
        s.flush()
        a = account.id
        assert a is not None
        pro, starter = TraitValue.parse("category", "pro"), TraitValue.parse("category", "starter")
        assert write_traits(s, "crm", {a: {"plan": pro}}, _at(9)) == 1  # seen late
        assert write_traits(s, "crm", {a: {"plan": starter}}, _at(1)) == 1  # history arrives
        assert write_traits(s, "crm", {a: {"plan": pro}}, _at(5)) == 1
        assert write_traits(s, "crm", {a: {"plan": pro}}, _at(6)) == 0  # known then already
    with Session(engine) as s:

        def plan(month: int) -> str | None:
            value = latest_traits(s, ["plan"], _at(month)).get("plan", {}).get(a)
            return None if value is None else value.text

        assert [plan(m) for m in (1, 2, 6, 10)] == [None, "starter", "pro", "pro"]
        rows = s.execute(select(func.count()).select_from(AccountTrait)).scalar_one()
        assert rows == 3


@pytest.mark.parametrize(
    ("kind", "raw", "number", "text"),
    [
        ("number", "12.5", 12.5, None),
        ("boolean", "Yes", 1.0, "yes"),
        ("date", "2026-02-03", float(datetime(2026, 2, 3).toordinal()), "2026-02-03"),
        ("category", " Month-to-month\x00 ", None, "Month-to-month"),
    ],
)
def test_values_are_typed(kind: str, raw: str, number: float | None, text: str | None) -> None:
    value = TraitValue.parse(kind, raw)
    assert (value.number, value.text) == (number, text)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("number", "1e400"),
        ("number", "99999999999999999999"),
        ("date", "soon"),
        ("boolean", "maybe"),
    ],
)
def test_bad_values_are_refused_in_words(kind: str, raw: str) -> None:
    with pytest.raises(TraitError):
        TraitValue.parse(kind, raw)


def test_a_column_kind_is_read_over_all_its_values() -> None:
    assert infer_kind(["3", "4.5", ""]) == "number"
    assert infer_kind(["yes", "No"]) == "boolean"
    assert infer_kind(["2026-01-01", "2025-12-31"]) == "date"
    assert infer_kind(["3", "many"]) == "category"
    assert infer_kind([]) == "category"
