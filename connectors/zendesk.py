"""Zendesk Support: organizations, tickets and CSAT ratings.

Organizations come from the time-based incremental export (cursor: its `end_time`) and
become `ExternalLink` rows that identity matches to CRM accounts (`external_id` is where
Zendesk admins keep the CRM id). Tickets come from the cursor-based incremental export;
its `after_cursor` is the stream cursor, so a resumed sync continues exactly where the last
committed page ended; deleted tickets arrive with status `deleted` and become soft deletes.
Satisfaction ratings do not name the organization, only the ticket, so a rating keeps the
ticket id as `ticket_ref` and identity takes the account from that ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import (
    Connector,
    CursorKind,
    Page,
    Record,
    StartContext,
    StreamSpec,
    from_unix,
    max_timestamp,
    normalise_domain,
    parse_iso,
)
from connectors.errors import MappingError
from connectors.http import BasicAuth, ClientOptions, HttpClient, HttpSource, QuotaHeaders
from connectors.paginators import (
    ZendeskCursorExportPaginator,
    ZendeskCursorListPaginator,
    ZendeskTimeExportPaginator,
)
from settings import ConfigError, Settings
from store.models import ExternalLink, SurveyResponse, Ticket

__all__ = [
    "SOURCE",
    "ZendeskOptions",
    "build",
    "map_organization",
    "map_rating",
    "map_ticket",
]

SOURCE = "zendesk"
QUOTAS = (
    QuotaHeaders("X-Rate-Limit-Remaining", window_seconds=60.0, low_water=10),
    QuotaHeaders("ratelimit-remaining", reset_seconds="ratelimit-reset", low_water=10),
)
NOT_ANSWERS = frozenset({"offered", "unoffered"})


@dataclass(frozen=True)
class ZendeskOptions:
    """Knobs of this connector beyond its settings."""

    export_page_size: int = 1000
    start_time: int = 0
    """Unix time the very first sync starts from (0: everything)."""


def _required_time(raw: Mapping[str, Any], field: str) -> datetime:
    value = parse_iso(raw.get(field), field)
    if value is None:
        raise MappingError(f"{field} is missing")
    return value


def map_organization(raw: Mapping[str, Any]) -> list[Record]:
    """An organization -> an ExternalLink waiting to be matched to a CRM account."""
    domains = raw.get("domain_names") or []
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise MappingError(f"organization {raw.get('id')}: domain_names is not a list of domains")
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise MappingError(f"organization {raw.get('id')} has no name")
    hint = raw.get("external_id")
    values: dict[str, Any] = {
        "external_id": str(raw["id"]),
        "kind": "organization",
        "name": raw.get("name"),
        "domain": normalise_domain(domains[0]) if domains else None,
        "crm_hint": str(hint).strip() if hint not in (None, "") else None,
        "deleted_at": parse_iso(raw.get("deleted_at"), "deleted_at"),
    }
    if (updated := parse_iso(raw.get("updated_at"), "updated_at")) is not None:
        values["updated_at"] = updated
    return [Record(ExternalLink, values)]


def _satisfaction(raw: Mapping[str, Any]) -> str | None:
    rating = raw.get("satisfaction_rating")
    score = rating.get("score") if isinstance(rating, Mapping) else None
    if isinstance(score, str):
        for answer in ("good", "bad"):
            if score.startswith(answer):
                return answer
    return None


def map_ticket(raw: Mapping[str, Any]) -> list[Record]:
    """A ticket -> a Ticket row; status `deleted` becomes a soft delete."""
    status = raw.get("status")
    if not status:
        raise MappingError(f"ticket {raw.get('id')} has no status")
    updated = _required_time(raw, "updated_at")
    org = raw.get("organization_id")
    values = {
        "external_id": str(raw["id"]),
        "account_ref": str(org) if org is not None else None,
        "subject": raw.get("subject") or raw.get("raw_subject"),
        "status": status,
        "priority": raw.get("priority"),
        "satisfaction": _satisfaction(raw),
        "created_at": _required_time(raw, "created_at"),
        "updated_at": updated,
        "deleted_at": updated if status == "deleted" else None,
    }
    return [Record(Ticket, values)]


def map_rating(raw: Mapping[str, Any]) -> list[Record]:
    """A CSAT rating -> a SurveyResponse (1 good, 0 bad); offers without answers are skipped."""
    score = raw.get("score")
    if score in NOT_ANSWERS:
        return []
    if not isinstance(score, str) or not score.startswith(("good", "bad")):
        raise MappingError(f"satisfaction score {score!r} is not good or bad")
    ticket = raw.get("ticket_id")
    values = {
        "external_id": str(raw["id"]),
        "ticket_ref": str(ticket) if ticket is not None else None,
        "kind": "csat",
        "score": 1 if score.startswith("good") else 0,
        "scale_max": 1,
        "comment": raw.get("comment") or None,
        "responded_at": parse_iso(raw.get("updated_at")) or _required_time(raw, "created_at"),
    }
    return [Record(SurveyResponse, values)]


def _created(raw: Mapping[str, Any]) -> datetime | None:
    return parse_iso(raw.get("created_at"))


def _end_time(page: Page) -> str | None:
    end = from_unix(page.body.get("end_time"), "end_time")
    return end.isoformat() if end else None


def build(
    settings: Settings, client: ClientOptions | None = None, options: ZendeskOptions | None = None
) -> Connector:
    """The Zendesk connector for these settings."""
    cfg = settings.zendesk
    opts = options or ZendeskOptions()
    if cfg.api_token is None or not cfg.email:
        raise ConfigError("zendesk is not configured: set ZENDESK__EMAIL and ZENDESK__API_TOKEN")
    http = HttpSource(
        source=SOURCE,
        base_url=cfg.resolved_base_url(),
        auth=BasicAuth(f"{cfg.email}/token", cfg.api_token),
        credential="the email or API token",
        settings_hint="ZENDESK__EMAIL and ZENDESK__API_TOKEN",
        secrets=(cfg.api_token,),
        quotas=QUOTAS,
    )

    def since(ctx: StartContext) -> int:
        return int(ctx.since.timestamp()) if ctx.since else opts.start_time

    def tickets_query(ctx: StartContext) -> dict[str, Any]:
        start: dict[str, Any] = {"cursor": ctx.cursor} if ctx.cursor else {"start_time": since(ctx)}
        return {**start, "per_page": opts.export_page_size}

    streams = (
        StreamSpec(
            name="organizations",
            path="/api/v2/incremental/organizations.json",
            query=lambda ctx: {"start_time": since(ctx), "per_page": opts.export_page_size},
            records_key="organizations",
            paginator=ZendeskTimeExportPaginator,
            mapper=map_organization,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=_end_time,
        ),
        StreamSpec(
            name="tickets",
            path="/api/v2/incremental/tickets/cursor.json",
            query=tickets_query,
            records_key="tickets",
            paginator=ZendeskCursorExportPaginator,
            mapper=map_ticket,
            cursor_kind=CursorKind.OPAQUE,
            cursor=lambda page: page.body.get("after_cursor"),
        ),
        StreamSpec(
            name="satisfaction_ratings",
            path="/api/v2/satisfaction_ratings.json",
            query=lambda ctx: {"start_time": since(ctx), "page[size]": cfg.page_size},
            records_key="satisfaction_ratings",
            paginator=ZendeskCursorListPaginator,
            mapper=map_rating,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=max_timestamp(_created),
        ),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: HttpClient(http, client),
        secrets=(cfg.api_token,),
    )
