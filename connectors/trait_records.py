"""Trait values in a page of records: how mappers hand account traits to the engine.

A mapper that reads an attribute of an account beyond the canonical columns (an accounts
file's extra column, a CRM custom property, a row of a SQL `traits` query) returns a
`trait_record` beside its rows. The engine (`connectors.sync.write_page`) upserts the page's
rows first and then, in the same transaction, hands the page's trait records to
`write_trait_records`, which:

1. finds each value's account: by the account row of the same source (`by="record"`, the
   account's own id in that source), or by the CRM id of an account, as identity reads a
   `crm_hint` (`by="crm_id"`, the survivor of a merged account); a value whose account is
   not stored sends its record to the quarantine with the reason;
2. types each value: the kind the mapper declared, else the kind already stored for that
   trait, else the kind `infer_kind` reads over the page's values of that trait; a value
   that does not read as its kind is skipped, logged once per trait and page with the
   account it belongs to;
3. writes, moment by moment (`seen_at`, else the time of the write) with
   `store.traits.write_traits`, only the values that differ from the value stored as of
   that moment, so a file with an `as_of` history imported twice writes nothing new.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlmodel import Session

from connectors.base import Record, table_of
from settings import ConfigError, TraitField
from store.models import Account, AccountTrait
from store.traits import TraitError, TraitValue, infer_kind, write_traits

__all__ = [
    "MAX_NAME",
    "AccountBy",
    "PendingTrait",
    "check_name",
    "crm_trait_records",
    "crm_traits",
    "is_trait_record",
    "trait_record",
    "write_trait_records",
]

log = logging.getLogger(__name__)

AccountBy = Literal["record", "crm_id"]
MAX_NAME = 100
"""Longest trait or metric name."""
CHUNK = 500


def check_name(name: object, what: str = "trait name") -> str:
    """A trait or metric name, trimmed: non-empty, at most MAX_NAME characters, no NUL."""
    text = str(name).strip() if name is not None else ""
    if not text:
        raise ValueError(f"the {what} is empty")
    if "\x00" in text:
        raise ValueError(f"the {what} {text[:40]!r} holds a NUL character")
    if len(text) > MAX_NAME:
        raise ValueError(
            f"the {what} {text[:40]!r}... is {len(text)} characters; at most {MAX_NAME}"
        )
    return text


def trait_record(
    account_ref: str,
    name: str,
    raw: object,
    *,
    kind: str | None = None,
    by: AccountBy = "record",
    seen_at: datetime | None = None,
) -> Record:
    """One trait value of one account, for the engine to write after the page's rows.

    `raw` is read as `kind` at write time (None: the stored kind, else inferred over the
    page); a mapper that must refuse a bad value parses it itself first.
    """
    values = {
        "account_ref": account_ref,
        "by": by,
        "name": name,
        "kind": kind,
        "raw": raw,
        "seen_at": seen_at,
    }
    return Record(AccountTrait, values, keys=())


def is_trait_record(record: Record) -> bool:
    return record.model is AccountTrait


def crm_traits(source: str, *declared: Mapping[str, str | TraitField]) -> dict[str, TraitField]:
    """The traits a CRM reads (`[source.traits]` over the source's settings), each as a
    `TraitField`; a bad trait name is a ConfigError naming it."""
    merged: dict[str, TraitField] = {}
    for traits in declared:
        for name, spec in traits.items():
            try:
                checked = check_name(name)
            except ValueError as exc:
                raise ConfigError(
                    f"[{source}.traits] {str(name)[:40]!r}: {exc}; rename the trait"
                ) from None
            merged[checked] = spec if isinstance(spec, TraitField) else TraitField(property=spec)
    return merged


def crm_trait_records(
    account_ref: str,
    value_of: Callable[[str], object],
    traits: Mapping[str, TraitField],
    seen_at: datetime | None,
) -> list[Record]:
    """A CRM record's traits: each trait's property as read by `value_of`, typed at write
    time (the declared kind, else the stored kind, else inferred over the page)."""
    return [
        trait_record(account_ref, name, value_of(field.property), kind=field.kind, seen_at=seen_at)
        for name, field in traits.items()
    ]


@dataclass(frozen=True)
class PendingTrait:
    """A trait record of a mapped page, with the record key and payload it came from."""

    key: str
    payload: Mapping[str, Any]
    record: Record


def _account_ids(session: Session, source: str, by: AccountBy, refs: set[str]) -> dict[str, int]:
    accounts = table_of(Account).c
    found: dict[str, int] = {}
    ordered = sorted(refs)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        if by == "record":
            stmt = select(accounts.external_id, accounts.id).where(
                accounts.source == source, accounts.external_id.in_(chunk)
            )
        else:  # like identity's crm_hint: the survivor of an account merged away
            survivor = table_of(Account).alias("survivor")
            merged = (survivor.c.source == accounts.source) & (
                survivor.c.external_id == accounts.merged_into
            )
            stmt = (
                select(accounts.external_id, func.min(func.coalesce(survivor.c.id, accounts.id)))
                .select_from(table_of(Account).outerjoin(survivor, merged))
                .where(accounts.external_id.in_(chunk))
                .group_by(accounts.external_id)
            )
        found.update({ref: int(account_id) for ref, account_id in session.execute(stmt)})
    return found


def _stored_kinds(session: Session, names: Iterable[str]) -> dict[str, str]:
    """The kind of each trait's most recent row, whatever the account."""
    traits = table_of(AccountTrait).c
    latest = (
        select(traits.name, func.max(traits.id).label("id"))
        .where(traits.name.in_(sorted(set(names))))
        .group_by(traits.name)
        .subquery()
    )
    stmt = select(traits.name, traits.kind).join(latest, traits.id == latest.c.id)
    return {name: kind for name, kind in session.execute(stmt)}


def _history(
    session: Session, accounts: Sequence[int], names: set[str]
) -> dict[tuple[int, str], list[tuple[datetime, TraitValue]]]:
    """The stored rows of these accounts and traits, oldest first."""
    traits = table_of(AccountTrait).c
    out: dict[tuple[int, str], list[tuple[datetime, TraitValue]]] = defaultdict(list)
    for start in range(0, len(accounts), CHUNK):
        stmt = (
            select(
                traits.account_id,
                traits.name,
                traits.kind,
                traits.number,
                traits.text,
                traits.seen_at,
            )
            .where(
                traits.account_id.in_(accounts[start : start + CHUNK]),
                traits.name.in_(sorted(names)),
            )
            .order_by(traits.seen_at, traits.id)
        )
        for account_id, name, kind, number, text, seen_at in session.execute(stmt):
            out[(account_id, name)].append((seen_at, TraitValue(kind, number, text)))
    return out


def _as_of(history: list[tuple[datetime, TraitValue]], moment: datetime) -> TraitValue | None:
    value = None
    for seen_at, stored in history:
        if seen_at > moment:
            break
        value = stored
    return value


def write_trait_records(
    session: Session, pending: Sequence[PendingTrait], now: datetime
) -> list[dict[str, Any]]:
    """Write a page's trait values (see the module docstring); return quarantine entries
    (`record_key`, `payload`, `reason`) for the records whose account is not stored."""
    refs: dict[tuple[str, AccountBy], set[str]] = defaultdict(set)
    for item in pending:
        values = item.record.values
        refs[(str(values["source"]), values["by"])].add(str(values["account_ref"]))
    ids = {
        (source, by): _account_ids(session, source, by, wanted)
        for (source, by), wanted in refs.items()
    }
    quarantine: dict[str, dict[str, Any]] = {}
    placed: list[tuple[PendingTrait, int]] = []
    for item in pending:
        values = item.record.values
        ref = str(values["account_ref"])
        account_id = ids[(str(values["source"]), values["by"])].get(ref)
        if account_id is None:
            what = "account id" if values["by"] == "record" else "CRM id"
            quarantine.setdefault(
                item.key,
                {
                    "record_key": item.key,
                    "payload": item.payload,
                    "reason": f"{what} {ref[:100]!r} matches no stored account: "
                    "import or sync the account first",
                },
            )
        else:
            placed.append((item, account_id))
    undeclared = {str(i.record.values["name"]) for i, _ in placed if not i.record.values["kind"]}
    kinds = _stored_kinds(session, undeclared) if undeclared else {}
    for name in undeclared - set(kinds):
        kinds[name] = infer_kind(
            i.record.values["raw"] for i, _ in placed if i.record.values["name"] == name
        )
    by_moment: dict[datetime, dict[int, dict[str, TraitValue]]] = defaultdict(dict)
    failures: dict[str, tuple[str, str, int]] = {}
    for item, account_id in placed:
        values = item.record.values
        name = str(values["name"])
        kind = values["kind"] or kinds[name]
        try:
            value = TraitValue.parse(kind, values["raw"])
        except TraitError as exc:
            first = failures.get(name)
            failures[name] = (
                (first[0], first[1], first[2] + 1)
                if first
                else (str(values["account_ref"]), str(exc), 1)
            )
            continue
        moment = values["seen_at"] or now
        by_moment[moment].setdefault(account_id, {})[name] = value
    for name, (ref, reason, count) in failures.items():
        log.warning(
            "trait %s of account %s is not a %s: %s (%d value%s of it skipped)",
            name,
            ref,
            kinds.get(name, "value"),
            reason,
            count,
            "" if count == 1 else "s",
        )
    _write(session, by_moment, source=_one_source(pending))
    return list(quarantine.values())


def _one_source(pending: Sequence[PendingTrait]) -> str:
    return str(pending[0].record.values["source"]) if pending else ""


def _write(
    session: Session, by_moment: dict[datetime, dict[int, dict[str, TraitValue]]], source: str
) -> None:
    """Oldest moment first, the values that differ from the value stored as of it."""
    if not by_moment:
        return
    accounts = sorted({a for values in by_moment.values() for a in values})
    names = {n for values in by_moment.values() for v in values.values() for n in v}
    history = _history(session, accounts, names)
    for moment in sorted(by_moment):
        changed: dict[int, dict[str, TraitValue]] = {}
        for account_id, values in by_moment[moment].items():
            for name, value in values.items():
                rows = history.setdefault((account_id, name), [])
                before = _as_of(rows, moment)
                if before == value or (before is None and value.empty):
                    continue
                changed.setdefault(account_id, {})[name] = value
                rows.append((moment, value))
                rows.sort(key=lambda row: row[0])
        if changed:
            write_traits(session, source, changed, moment)
