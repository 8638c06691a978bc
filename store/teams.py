"""Team settings from configuration: each team's lead and channel, as the sources file says.

CRMs name their teams but rarely who leads them or which Slack channel they work in, which
the weekly digest and escalations need. The sources file's `[teams."Team name"]` tables say
it, as code an admin reviews; `configure_teams` writes them onto the stored teams after each
sync and before digests and deliveries, so a team the CRM creates later is configured too.
A set value wins over the store's; a name that matches no team is reported, not dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from settings import Settings, TeamConfig
from store.db import session_scope
from store.models import Team
from store.types import utcnow

__all__ = ["apply_team_configs", "configure_teams"]

log = logging.getLogger(__name__)


def apply_team_configs(session: Session, configs: Mapping[str, TeamConfig]) -> list[str]:
    """Write each configured team's set values onto the stored teams of that name (case
    does not matter) or external id; returns the configured names no stored team has."""
    unknown = []
    for name, config in configs.items():
        values = config.model_dump(exclude_none=True)
        ids = session.exec(
            select(Team.id).where(
                (func.lower(col(Team.name)) == name.lower()) | (col(Team.external_id) == name)
            )
        ).all()
        if not ids:
            unknown.append(name)
            continue
        if values:
            session.exec(
                update(Team).where(col(Team.id).in_(ids)).values(**values, updated_at=utcnow())
            )
    return unknown


def configure_teams(engine: Engine, settings: Settings) -> list[str]:
    """Apply the sources file's `[teams]` to the store; the configured names that match no
    team (see `health-agent team`'s names)."""
    configs = settings.team_configs()
    if not configs:
        return []
    with session_scope(engine) as session:
        unknown = apply_team_configs(session, configs)
    for name in unknown:
        log.warning(
            "sources file: [teams.%r] matches no team's name or id; check the spelling "
            "against the CRM's teams (`health-agent team` lists them)",
            name,
        )
    return unknown
