"""An example third-party connector, as a plugin package would ship it.

It reads NPS answers from a (fictional) survey tool's REST API and is installed through the
`health_agent.connectors` entry-point group:

    [project.entry-points."health_agent.connectors"]
    example_survey = "example_survey:build"

The whole connector is one declared stream: its path, a paginator of three methods, a pure
mapper, and an incremental cursor. Retries, rate limits, auth, quarantine, checkpoints and
account matching come from the agent. The plugin reads its own settings from the
environment or `.env`, `EXAMPLE_SURVEY__TOKEN` and `EXAMPLE_SURVEY__BASE_URL`, and stays
disabled (returns None) while its token is not set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import (
    Connector,
    CursorKind,
    Page,
    Record,
    Request,
    StreamSpec,
    from_unix,
    normalise_domain,
)
from connectors.errors import MappingError
from connectors.http import BearerAuth, ClientOptions, HttpClient, HttpSource
from connectors.paginators import Paginator
from settings import Settings
from store.models import ExternalLink, SurveyResponse

SOURCE = "example_survey"


class ExampleSurveySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EXAMPLE_SURVEY__", env_file=".env", extra="ignore"
    )

    token: SecretStr | None = None
    base_url: str = "https://api.survey.example"


class NextCursorPaginator(Paginator):
    """`{"next_cursor": "..."}` in the body, `cursor=` in the next request; null ends."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        token = body.get("next_cursor")
        return token is not None, token

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"cursor": token})


def map_response(raw: Mapping[str, Any]) -> list[Record]:
    """One NPS answer -> a SurveyResponse, and a link from the company's domain."""
    score = raw.get("score")
    if not isinstance(score, int) or not 0 <= score <= 10:
        raise MappingError(f"response {raw.get('id')}: score {score!r} is not 0-10")
    domain = normalise_domain(raw.get("company_domain"))
    answer = {
        "external_id": str(raw["id"]),
        "account_ref": domain,
        "kind": "nps",
        "score": score,
        "scale_max": 10,
        "contact_email": raw.get("email"),
        "comment": raw.get("comment"),
        "responded_at": from_unix(raw.get("created_at"), "created_at"),
    }
    if domain is None:
        return [Record(SurveyResponse, answer)]  # kept, waiting for a link
    link = {"external_id": domain, "kind": "domain", "domain": domain, "name": domain}
    return [Record(SurveyResponse, answer), Record(ExternalLink, link)]


def _latest(page: Page) -> str | None:
    """The cursor: the newest answer's time on this page."""
    stamps = [r["created_at"] for r in page.records if isinstance(r.get("created_at"), int)]
    newest = from_unix(max(stamps)) if stamps else None
    return newest.isoformat() if newest else None


def build(settings: Settings, client: ClientOptions | None = None) -> Connector | None:
    """The entry point: a connector, or None while the plugin is not configured."""
    cfg = ExampleSurveySettings()
    if cfg.token is None:
        return None
    http = HttpSource(
        source=SOURCE,
        base_url=cfg.base_url,
        auth=BearerAuth(cfg.token),
        credential="the token",
        settings_hint="EXAMPLE_SURVEY__TOKEN",
        secrets=(cfg.token,),
    )
    stream = StreamSpec(
        name="responses",
        path="/v1/responses",
        query=lambda ctx: {"limit": 2, "since": int(ctx.since.timestamp()) if ctx.since else 0},
        records_key="responses",
        paginator=NextCursorPaginator,
        mapper=map_response,
        cursor_kind=CursorKind.TIMESTAMP,
        cursor=_latest,
    )
    return Connector(
        source=SOURCE,
        streams=(stream,),
        open=lambda: HttpClient(http, client),
        secrets=(cfg.token,),
    )
