"""Playbook tasks copied to HubSpot exactly once: the request in the spec's shape, nothing
written twice by a second run, two runs at once, a crash right after the POST, or an answer
lost on the way back; interrupted writes are looked up and adopted once their claim times out.

What happens after a crash between HubSpot creating the task and the store recording its id:
the task keeps its claim (`pending:<time>:<ref>`), so runs within the claim timeout leave it
alone (`waiting`); the first run after it searches HubSpot for the task carrying the ref and
adopts its id (`recovered`): one task in HubSpot, its id in the store.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from connectors import task_writeback
from connectors.errors import AuthError
from connectors.http import ClientOptions
from connectors.hubspot_tasks import TASK_TO_COMPANY
from connectors.task_writeback import CrmSummary, write_to_crm
from notifications.playbooks import run_playbooks, start_playbook
from settings import HubSpotSettings, PlaybookSettings, Settings
from store import session_scope
from store.db import make_engine
from store.models import Account, Alert, Csm, PlaybookTask
from tests.connectors.fake_hubspot import TOKEN, FakeHubSpot
from tests.sandbox.openapi import assert_valid, response_validator
from tests.specs import specs_dir

NOW = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)  # past the default claim timeout of 60 minutes


class FakeHubSpotTasks(FakeHubSpot):
    """The fake with task search too (subject EQ, create date GTE), for recovery."""

    def route(self, request: httpx.Request) -> str:
        if request.url.path == "/crm/v3/objects/tasks/search":
            return "tasks_search"
        return super().route(request)

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        if route != "tasks_search":
            return super().serve(route, request)
        body = json.loads(request.content)
        filters = {f["propertyName"]: f["value"] for f in body["filterGroups"][0]["filters"]}
        since = datetime.fromtimestamp(int(filters["hs_createdate"]) / 1000, UTC)
        found = [
            {"id": t["id"], "properties": {k: t["properties"][k] for k in body["properties"]}}
            for t in self.tasks
            if t["properties"]["hs_task_subject"] == filters["hs_task_subject"]
            and datetime.fromisoformat(t["properties"]["hs_createdate"]) >= since
        ]
        return httpx.Response(200, json={"total": len(found), "results": found})


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PLAYBOOKS__PATH", "PLAYBOOKS__CRM_WRITE_BACK", "HUBSPOT__TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.fixture
def hubspot() -> FakeHubSpotTasks:
    fake = FakeHubSpotTasks()
    fake.clock = lambda: NOW
    return fake


def _settings(*, write_back: bool = True, token: str = TOKEN) -> Settings:
    return Settings(
        hubspot=HubSpotSettings(token=SecretStr(token)),
        playbooks=PlaybookSettings(crm_write_back=write_back),
    )


def _write(
    engine: Engine, fake: FakeHubSpot, now: datetime = NOW, settings: Settings | None = None
) -> CrmSummary:
    options = ClientOptions(transport=fake.transport(), sleep=lambda _seconds: None)
    return write_to_crm(engine, settings or _settings(), now, options=options)


def _book(engine: Engine, source: str = "hubspot") -> int:
    """A HubSpot company owned by Jo (HubSpot owner 501), with a failed payment alert."""
    with session_scope(engine) as s:
        s.add(Csm(source="hubspot", external_id="501", email="jo@example.com"))
        acme = Account(
            source=source,
            external_id="9001",
            name="Acme Robotics",
            owner_email="jo@example.com",
            owner_external_id="501",
        )
        s.add(acme)
        s.flush()
        assert acme.id is not None
        s.add(
            Alert(
                fingerprint=f"payment_failed:{acme.id}",
                account_id=acme.id,
                rule="payment_failed",
                created_at=NOW - timedelta(hours=1),
            )
        )
        return acme.id


def _tasks(engine: Engine) -> list[PlaybookTask]:
    with Session(engine) as s:
        return list(s.exec(select(PlaybookTask).order_by(col(PlaybookTask.id))))


def _one_task(engine: Engine) -> PlaybookTask:
    _book(engine)
    assert run_playbooks(engine, NOW).created == 1
    [task] = _tasks(engine)
    return task


def _request_validator() -> Draft7Validator:
    with (specs_dir() / "hubspot" / "tasks.json").open(encoding="utf-8") as handle:
        spec = json.load(handle)
    schema = spec["paths"]["/crm/v3/objects/tasks"]["post"]["requestBody"]["content"]
    return Draft7Validator(
        {**schema["application/json"]["schema"], "components": spec["components"]}
    )


def test_tasks_are_written_to_hubspot_once(engine: Engine, hubspot: FakeHubSpotTasks) -> None:
    task = _one_task(engine)
    first = _write(engine, hubspot)
    second = _write(engine, hubspot, NOW + timedelta(minutes=5))
    assert (first.written, second.written) == (1, 0)
    assert first.describe() == "CRM tasks written: 1"
    assert hubspot.calls("tasks_create") == 1
    [body] = hubspot.task_requests
    properties = body["properties"]
    assert properties["hs_task_subject"] == task.title
    assert properties["hs_task_status"] == "NOT_STARTED"
    assert properties["hubspot_owner_id"] == "501"
    due = datetime(2026, 3, 10, 12, tzinfo=UTC)  # Friday + 2 business days, noon UTC
    assert task.due_on == date(2026, 3, 10)
    assert properties["hs_timestamp"] == str(int(due.timestamp() * 1000))
    assert "<li>Check the failed invoice" in properties["hs_task_body"]
    assert body["associations"] == [
        {
            "to": {"id": "9001"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
        }
    ]
    assert TASK_TO_COMPANY == 192
    [stored] = _tasks(engine)
    assert (stored.crm_source, stored.crm_task_id) == ("hubspot", hubspot.tasks[0]["id"])


def test_requests_and_answers_match_the_spec(engine: Engine, hubspot: FakeHubSpotTasks) -> None:
    _one_task(engine)
    validator = _request_validator()
    answers: list[dict[str, Any]] = []
    serve = hubspot.serve

    def recording(route: str, request: httpx.Request) -> httpx.Response:
        response = serve(route, request)
        answers.append(response.json())
        return response

    hubspot.serve = recording  # type: ignore[method-assign]  # record the fake's answers
    _write(engine, hubspot)
    [body] = hubspot.task_requests
    assert_valid(validator, body)
    assert_valid(
        response_validator("hubspot/tasks.json", "/crm/v3/objects/tasks", "post", "201"),
        answers[0],
    )


def test_a_crash_right_after_the_post_writes_nothing_twice(
    engine: Engine, hubspot: FakeHubSpotTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    _one_task(engine)
    store = task_writeback._store

    def crash(*args: Any) -> None:
        raise RuntimeError("the process died before the id was stored")

    monkeypatch.setattr(task_writeback, "_store", crash)
    with pytest.raises(RuntimeError, match="process died"):
        _write(engine, hubspot)
    monkeypatch.setattr(task_writeback, "_store", store)
    [claimed] = _tasks(engine)
    assert claimed.crm_task_id is not None
    assert claimed.crm_task_id.startswith("pending:")
    assert len(hubspot.tasks) == 1  # HubSpot has the task; the store does not know its id

    soon = _write(engine, hubspot, NOW + timedelta(minutes=10))
    assert (soon.waiting, soon.written) == (1, 0)
    recovered = _write(engine, hubspot, LATER)
    assert (recovered.recovered, recovered.written, recovered.rewritten) == (1, 0, 0)
    assert hubspot.calls("tasks_create") == 1
    assert hubspot.calls("tasks_search") == 1
    [stored] = _tasks(engine)
    assert stored.crm_task_id == hubspot.tasks[0]["id"]
    assert _write(engine, hubspot, LATER + timedelta(hours=1)) == CrmSummary()


@pytest.mark.parametrize("lost", ["timeout", "502"])
def test_a_lost_answer_is_looked_up_not_resent(
    engine: Engine, hubspot: FakeHubSpotTasks, lost: str
) -> None:
    _one_task(engine)
    hubspot.after_task_create = [lost]
    unknown = _write(engine, hubspot)
    assert (unknown.uncertain, unknown.written) == (1, 0)
    assert "outcome unknown" in unknown.problems[0]
    assert _write(engine, hubspot, NOW + timedelta(minutes=30)).waiting == 1
    assert _write(engine, hubspot, LATER).recovered == 1
    assert len(hubspot.tasks) == 1
    assert _tasks(engine)[0].crm_task_id == hubspot.tasks[0]["id"]


def test_a_server_error_without_a_task_is_written_again(
    engine: Engine, hubspot: FakeHubSpotTasks
) -> None:
    _one_task(engine)
    hubspot.failures["tasks_create"] = ["503"]  # refused before anything was created
    assert _write(engine, hubspot).uncertain == 1
    again = _write(engine, hubspot, LATER)
    assert (again.recovered, again.rewritten) == (0, 1)
    assert len(hubspot.tasks) == 1
    assert _tasks(engine)[0].crm_task_id == hubspot.tasks[0]["id"]


@pytest.mark.parametrize(
    "refuse",
    [
        lambda fake: fake.throttle.update({"tasks_create": "10"}),
        lambda fake: fake.failures.update({"tasks_create": ["400"]}),
    ],
    ids=["rate-limited", "rejected"],
)
def test_nothing_created_gives_the_claim_back(
    engine: Engine, hubspot: FakeHubSpotTasks, refuse: Callable[[FakeHubSpot], None]
) -> None:
    _one_task(engine)
    refuse(hubspot)
    refused = _write(engine, hubspot)
    assert (refused.released, refused.written) == (1, 0)
    assert _tasks(engine)[0].crm_task_id is None
    assert _write(engine, hubspot, NOW + timedelta(minutes=1)).written == 1
    assert len(hubspot.tasks) == 1


def test_a_rate_limited_run_stops_at_the_first_task(
    engine: Engine, hubspot: FakeHubSpotTasks
) -> None:
    acme = _book(engine)
    with session_scope(engine) as s:
        red = Alert(fingerprint="red", account_id=acme, rule="band_drop", payload={"band": "red"})
        s.add(red)
        red.created_at = NOW - timedelta(hours=1)
    run_playbooks(engine, NOW)
    assert len(_tasks(engine)) == 3
    hubspot.throttle["tasks_create"] = "10"
    stopped = _write(engine, hubspot)
    assert (stopped.released, stopped.written, hubspot.calls("tasks_create")) == (1, 0, 1)
    assert "remaining tasks wait for the next run" in stopped.problems[-1]
    assert _write(engine, hubspot, NOW + timedelta(minutes=1)).written == 3


def test_a_refused_token_stops_and_gives_the_claim_back(
    engine: Engine, hubspot: FakeHubSpotTasks
) -> None:
    _one_task(engine)
    with pytest.raises(AuthError, match="HUBSPOT__TOKEN") as caught:
        _write(engine, hubspot, settings=_settings(token="pat-na1-wrong"))
    assert "pat-na1-wrong" not in str(caught.value)
    assert _tasks(engine)[0].crm_task_id is None


def test_runs_at_once_write_each_task_once(
    engine: Engine, db_url: str, hubspot: FakeHubSpotTasks
) -> None:
    acme = _book(engine)
    with session_scope(engine) as s:
        red = Alert(fingerprint="red", account_id=acme, rule="band_drop", payload={"band": "red"})
        s.add(red)
        s.flush()
        red_id = red.id
    assert red_id is not None
    start_playbook(engine, red_id, None, now=NOW)
    run_playbooks(engine, NOW)
    assert len(_tasks(engine)) == 3
    shared = engine.dialect.name == "sqlite"  # SQLite has one writer: threads take turns
    engines = [engine if shared else make_engine(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    summaries: list[CrmSummary] = []

    def run(own: Engine) -> None:
        barrier.wait()
        summaries.append(_write(own, hubspot))

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for own in engines:
        if own is not engine:
            own.dispose()
    assert sum(s.written for s in summaries) == 3
    assert hubspot.calls("tasks_create") == 3
    assert len({t.crm_task_id for t in _tasks(engine)}) == 3


def test_only_hubspot_accounts_and_only_when_switched_on(
    engine: Engine, hubspot: FakeHubSpotTasks
) -> None:
    _book(engine, source="salesforce")
    run_playbooks(engine, NOW)
    off = _write(engine, hubspot, settings=_settings(write_back=False))
    assert (off.enabled, off.describe()) == (False, "CRM tasks: off (PLAYBOOKS__CRM_WRITE_BACK)")
    assert _write(engine, hubspot) == CrmSummary()
    assert hubspot.routes == []
    no_crm = Settings(playbooks=PlaybookSettings(crm_write_back=True))
    assert write_to_crm(engine, no_crm, NOW) == CrmSummary()
    assert _tasks(engine)[0].crm_task_id is None
