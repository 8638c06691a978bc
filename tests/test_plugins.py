"""A third-party connector installed through the `health_agent.connectors` entry points.

The example plugin in `tests/plugins/example_survey.py` is "installed" the way pip would
(a `*.dist-info` folder with `entry_points.txt` on the path), found by the registry, synced
through the shared engine like a built-in source, and its records matched to accounts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.http import ClientOptions
from connectors.registry import ENTRY_POINT_GROUP, build_connectors, sync_all
from settings import Settings
from store.db import session_scope
from store.models import Account, SurveyResponse
from store.upsert import bulk_upsert

HOUR = 3600
RESPONSES = [
    {"id": 1, "score": 9, "company_domain": "acme.test", "created_at": 1764000000},
    {"id": 2, "score": 3, "company_domain": "acme.test", "created_at": 1764000000 + HOUR},
    {"id": 3, "score": 11, "company_domain": "acme.test", "created_at": 1764000000 + 2 * HOUR},
    {"id": 4, "score": 7, "company_domain": "globex.test", "created_at": 1764000000 + 3 * HOUR},
]


def _survey_tool(request: httpx.Request) -> httpx.Response:
    if request.headers.get("Authorization") != "Bearer survey-secret":
        return httpx.Response(401, json={"error": "unauthorized"})
    since = int(request.url.params.get("since", "0"))
    start = int(request.url.params.get("cursor", "0"))
    limit = int(request.url.params["limit"])
    fresh = [r for r in RESPONSES if r["created_at"] >= since]
    page = fresh[start : start + limit]
    more = start + limit < len(fresh)
    return httpx.Response(
        200, json={"responses": page, "next_cursor": str(start + limit) if more else None}
    )


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "example_survey-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: example-survey\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nexample_survey = tests.plugins.example_survey:build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings init kwarg


def test_an_unconfigured_plugin_stays_disabled(installed: None) -> None:
    assert [c.source for c in build_connectors(_settings())] == []


def test_a_plugin_syncs_like_a_built_in_source(
    installed: None, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_SURVEY__TOKEN", "survey-secret")
    monkeypatch.setenv("EXAMPLE_SURVEY__BASE_URL", "https://survey.example")
    with session_scope(engine) as session:
        bulk_upsert(
            session,
            Account,
            [{"source": "hubspot", "external_id": "1", "name": "Acme", "domain": "acme.test"}],
        )
    client = ClientOptions(transport=httpx.MockTransport(_survey_tool), sleep=lambda _s: None)
    assert [c.source for c in build_connectors(_settings(), client=client)] == ["example_survey"]

    summary = sync_all(engine, _settings(), client=client)
    [result] = summary.streams
    assert (result.source, result.status, result.records, result.quarantined) == (
        "example_survey", "ok", 3, 1,
    )  # fmt: skip
    assert result.pages == 2
    with Session(engine) as session:
        answers: dict[str, Any] = {
            a.external_id: a for a in session.execute(select(SurveyResponse)).scalars()
        }
        acme = session.execute(select(Account)).scalar_one()
    assert answers["1"].account_id == acme.id  # matched by the company's domain
    assert answers["4"].account_id is None  # no such account: kept, waiting for review
    again = sync_all(engine, _settings(), client=client)
    assert again.streams[0].records <= 1  # only the lookback window comes again


def test_plugins_load_from_the_real_entry_point_machinery(installed: None) -> None:
    from importlib.metadata import entry_points

    [entry] = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == "example_survey"]
    assert entry.value == "tests.plugins.example_survey:build"
    assert "tests.plugins.example_survey" in sys.modules or entry.load() is not None
