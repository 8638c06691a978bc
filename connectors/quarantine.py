"""Replaying quarantined records after a fix (`health-agent sources quarantine --retry`).

A record that could not be mapped is kept whole in the quarantine with its reason. Once the
cause is fixed (a mapping, a setting, a newer version of the agent), replaying runs each
kept payload through its stream's mapper again: what maps now is written like a synced page
and its quarantine entry is resolved; what still fails stays, with the new reason. Only the
oldest unresolved version can be here: a later successful sync of the same record resolves
its entry, so a replay never overwrites newer data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select, update

from connectors.base import Connector, table_of
from connectors.identity import resolve_identities
from connectors.sync import map_records, write_page
from store.db import session_scope
from store.models import QuarantinedRecord
from store.types import utcnow

__all__ = ["ReplaySummary", "replay_quarantine"]


@dataclass
class ReplaySummary:
    """What a replay did: records now stored, still failing, and sources not configured."""

    replayed: int = 0
    still_failing: int = 0
    waiting: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        text = f"replayed {self.replayed} quarantined records; {self.still_failing} still fail"
        for source, count in sorted(self.waiting.items()):
            text += f"; {count} of {source} kept ({source} is not configured)"
        return text


def replay_quarantine(
    engine: Engine, connectors: Sequence[Connector], now: datetime | None = None
) -> ReplaySummary:
    """Map every unresolved quarantined record again; one transaction, identities resolved."""
    now = now or utcnow()
    by_source = {c.source: c for c in connectors}
    summary = ReplaySummary()
    quarantine = table_of(QuarantinedRecord).c
    with session_scope(engine) as session:
        kept = session.execute(
            select(QuarantinedRecord).where(quarantine.resolved_at.is_(None))
        ).scalars()
        groups: dict[tuple[str, str], list[QuarantinedRecord]] = defaultdict(list)
        for record in kept:
            groups[(record.source, record.stream)].append(record)
        for (source, stream), records in sorted(groups.items()):
            connector = by_source.get(source)
            if connector is None:
                summary.waiting[source] = summary.waiting.get(source, 0) + len(records)
                continue
            spec = connector.stream(stream)
            mapped = map_records(source, spec, [r.payload for r in records])
            write_page(session, source, stream, mapped, now)
            failing = {q["record_key"] for q in mapped.quarantine}
            settled = [r.record_key for r in records if r.record_key not in failing]
            if settled:  # mapped now, or now a record the stream skips on purpose
                session.execute(
                    update(table_of(QuarantinedRecord))
                    .where(
                        quarantine.source == source,
                        quarantine.stream == stream,
                        quarantine.record_key.in_(settled),
                    )
                    .values(resolved_at=now)
                )
            summary.replayed += len(mapped.mapped_keys)
            summary.still_failing += len(failing)
        resolve_identities(session, now)
    return summary
