"""HubSpot CRM v3 records of the book: owners, company and deal property maps, search filters.

Property values are strings, as HubSpot returns them: date-times in ISO 8601 with
milliseconds (`2026-04-15T16:01:08.286Z`), dates as `YYYY-MM-DD`, numbers as decimal
strings, booleans as `"true"`/`"false"`; unset properties are null. Search filters accept
date-times as epoch milliseconds or ISO 8601, like HubSpot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any

from sandbox.emulator import iso_ms
from sandbox.gen_billing import billing_currency
from sandbox.records import Company, Deal, Owner

__all__ = [
    "COMPANY_DEFAULTS",
    "DEAL_DEFAULTS",
    "CrmObject",
    "FilterError",
    "broken",
    "company_object",
    "deal_object",
    "matches",
    "owner_object",
    "sort_key",
]

COMPANY_DEFAULTS = ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")
DEAL_DEFAULTS = (
    "amount",
    "closedate",
    "createdate",
    "dealname",
    "dealstage",
    "hs_lastmodifieddate",
    "hs_object_id",
    "pipeline",
)
ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
_DATETIME = frozenset({"createdate", "hs_lastmodifieddate", "closedate"})
_DATE = frozenset({"renewal_date"})
_NUMBER = frozenset(
    {"annualrevenue", "numberofemployees", "amount", "hs_arr", "hs_mrr", "hs_object_id"}
)


class FilterError(ValueError):
    """A search filter HubSpot would refuse with a VALIDATION_ERROR."""


@dataclass(frozen=True)
class CrmObject:
    """One company or deal as HubSpot stores it."""

    id: str
    properties: Mapping[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None

    def render(self, wanted: list[str] | None, defaults: tuple[str, ...]) -> dict[str, Any]:
        """The object's JSON: requested properties (or the defaults) plus the ones always sent."""
        names = list(dict.fromkeys([*(wanted or defaults), *ALWAYS]))
        body: dict[str, Any] = {
            "id": self.id,
            "properties": {n: self.properties[n] for n in names if n in self.properties},
            "createdAt": iso_ms(self.created_at),
            "updatedAt": iso_ms(self.updated_at),
            "archived": self.archived_at is not None,
        }
        if self.archived_at is not None:
            body["archivedAt"] = iso_ms(self.archived_at)
        return body


def company_object(c: Company) -> CrmObject:
    props: dict[str, str | None] = {
        "name": c.name,
        "domain": c.domain,
        "hubspot_owner_id": c.owner_id,
        "lifecyclestage": c.lifecycle_stage,
        "customer_segment": c.segment,
        "industry": c.industry,
        "numberofemployees": str(c.employees),
        "annualrevenue": str(c.annual_revenue),
        "renewal_date": c.renewal_date.isoformat() if c.renewal_date else None,
        "csm_sentiment": c.csm_sentiment,
        "createdate": iso_ms(c.created_at),
        "hs_lastmodifieddate": iso_ms(c.updated_at),
        "hs_object_id": c.id,
    }
    return CrmObject(c.id, props, c.created_at, c.updated_at, c.archived_at)


def deal_object(d: Deal) -> CrmObject:
    props: dict[str, str | None] = {
        "dealname": d.name,
        "amount": str(d.amount),
        "dealstage": d.stage,
        "pipeline": d.pipeline,
        "dealtype": d.kind,
        "closedate": iso_ms(d.close_date),
        "hs_is_closed": str(d.is_closed).lower(),
        "hs_is_closed_won": str(d.is_won).lower(),
        "hs_arr": str(d.arr),
        "hs_mrr": f"{d.arr / 12:.2f}",
        "deal_currency_code": billing_currency(d.company_id),
        "hubspot_owner_id": d.owner_id,
        "createdate": iso_ms(d.created_at),
        "hs_lastmodifieddate": iso_ms(d.updated_at),
        "hs_object_id": d.id,
    }
    return CrmObject(d.id, props, d.created_at, d.updated_at)


@lru_cache(maxsize=1 << 17)
def _coerce(name: str, raw: str) -> float | str:
    """A property or filter value as something comparable: epoch ms, a number or a string.

    Cached: searches compare the same property values request after request."""
    if name in _DATETIME or name in _DATE:
        if raw.lstrip("-").isdigit():
            return float(raw)
        try:
            if len(raw) == 10:
                moment = datetime.combine(date.fromisoformat(raw), time(), UTC)
            else:
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise FilterError(f"{raw!r} is not a valid date for property {name}") from exc
        return moment.timestamp() * 1000
    if name in _NUMBER:
        try:
            return float(raw)
        except ValueError as exc:
            raise FilterError(f"{raw!r} is not a valid number for property {name}") from exc
    return raw.lower()


def sort_key(obj: CrmObject, name: str) -> tuple[int, float | str]:
    raw = obj.properties.get(name)
    return (1, "") if raw is None else (0, _coerce(name, raw))


_TESTS = {"EQ": (0,), "NEQ": (-1, 1), "GT": (1,), "GTE": (0, 1), "LT": (-1,), "LTE": (-1, 0)}


def matches(obj: CrmObject, flt: Mapping[str, Any]) -> bool:
    """Whether `obj` passes one search filter."""
    name, op = flt.get("propertyName"), flt.get("operator")
    if not isinstance(name, str) or not isinstance(op, str):
        raise FilterError("each filter needs a propertyName and an operator")
    raw = obj.properties.get(name)
    if op == "HAS_PROPERTY":
        return raw is not None
    if op == "NOT_HAS_PROPERTY":
        return raw is None
    if op in ("IN", "NOT_IN"):
        values = flt.get("values")
        if not isinstance(values, list):
            raise FilterError(f"operator {op} needs values")
        found = raw is not None and _coerce(name, raw) in {_coerce(name, str(v)) for v in values}
        return found if op == "IN" else not found
    value = flt.get("value")
    if value is None:
        raise FilterError(f"operator {op} needs a value")
    if raw is None:
        return op == "NEQ"
    have, want = _coerce(name, raw), _coerce(name, str(value))
    if op == "CONTAINS_TOKEN":
        return str(want).strip("*") in str(have)
    if op == "BETWEEN":
        high = _coerce(name, str(flt.get("highValue", "")))
        return _cmp(want, have) <= 0 <= _cmp(high, have)
    if op not in _TESTS:
        raise FilterError(f"operator {op} is not supported")
    return _cmp(have, want) in _TESTS[op]


def _cmp(a: float | str, b: float | str) -> int:
    """-1, 0 or 1; values of one property always share a type."""
    if isinstance(a, float) and isinstance(b, float):
        return (a > b) - (a < b)
    sa, sb = str(a), str(b)
    return (sa > sb) - (sa < sb)


def owner_object(o: Owner) -> dict[str, Any]:
    return {
        "id": o.id,
        "email": o.email,
        "type": "PERSON",
        "firstName": o.first_name,
        "lastName": o.last_name,
        "userId": o.user_id,
        "userIdIncludingInactive": o.user_id,
        "createdAt": iso_ms(o.created_at),
        "updatedAt": iso_ms(o.updated_at),
        "archived": False,
        "teams": [{"id": o.team_id, "name": o.team_name, "primary": True}],
    }


def broken(body: dict[str, Any]) -> dict[str, Any]:
    """One record in an unexpected shape: properties as a list of pairs, no email."""
    broken = dict(body)
    if "properties" in broken:
        broken["properties"] = [[k, v] for k, v in body["properties"].items()]
    else:
        broken.pop("email", None)
        broken["teams"] = {"primary": body.get("teams")}
    return broken
