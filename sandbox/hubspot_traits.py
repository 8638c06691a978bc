"""The book's CRM traits as HubSpot company custom properties, with their history.

Every company carries `contract_type`, `payment_method`, `plan` and
`onboarding_completed` as custom properties (strings, as HubSpot returns them), at their
current values. `GET /crm/v3/objects/companies?propertiesWithHistory=plan` also answers,
as HubSpot does, each named property's past values newest first, each with the time it
was set, so a reader can tell what the plan was on a past day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sandbox.emulator import iso_ms
from sandbox.hubspot_records import CrmObject
from sandbox.records import TraitChange

__all__ = ["HISTORY_PAGE_LIMIT", "TraitHistory", "render_history", "with_traits"]

HISTORY_PAGE_LIMIT = 50
"""HubSpot answers at most 50 objects per page when property history is asked for."""

TraitHistory = Mapping[str, Mapping[str, Sequence[TraitChange]]]
"""Company id -> property name -> its changes, oldest first."""


def _history(changes: Iterable[TraitChange]) -> dict[str, dict[str, list[TraitChange]]]:
    out: dict[str, dict[str, list[TraitChange]]] = {}
    for t in changes:
        out.setdefault(t.company_id, {}).setdefault(t.name, []).append(t)
    for props in out.values():
        for entries in props.values():
            entries.sort(key=lambda t: t.changed_at)
    return out


def with_traits(
    companies: Sequence[CrmObject], changes: Iterable[TraitChange]
) -> tuple[list[CrmObject], TraitHistory]:
    """The companies with their custom properties at today's values, and their history."""
    history = _history(changes)
    out = []
    for c in companies:
        props = history.get(c.id)
        if props:
            current = {name: entries[-1].value for name, entries in props.items()}
            c = replace(c, properties={**c.properties, **current})
        out.append(c)
    return out, history


def render_history(
    body: dict[str, Any], obj: CrmObject, names: Sequence[str], history: TraitHistory
) -> dict[str, Any]:
    """`body` with `propertiesWithHistory` for `names`: a custom property's changes, or a
    standard property's current value as set when the object was created."""
    past: dict[str, list[dict[str, Any]]] = {}
    known = history.get(obj.id, {})
    for name in names:
        current = obj.properties.get(name)
        entries: list[tuple[str, datetime]] = []
        if name in known:
            entries = [(t.value, t.changed_at) for t in reversed(known[name])]
        elif current is not None:
            entries = [(current, obj.created_at)]
        past[name] = [
            {"value": value, "timestamp": iso_ms(at), "sourceType": "CRM_UI"}
            for value, at in entries
        ]
    return {**body, "propertiesWithHistory": past}
