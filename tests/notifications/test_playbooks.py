"""Playbooks: templates and due dates, tasks created once (also under a race), completed once,
posted to the assignee's DM with a Done button, reminded at most daily, and the CLI."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from cli import app
from notifications.playbooks import (
    ACTION_TASK_DONE,
    AlertNotFoundError,
    TaskNotFoundError,
    complete_task,
    post_tasks,
    remind_overdue,
    run_playbooks,
    start_playbook,
)
from notifications.playbooks_config import (
    DEFAULT_PLAYBOOKS,
    TEMPLATE_FIELDS,
    PlaybookConfigError,
    add_business_days,
    business_days_between,
    load_playbooks,
    parse_playbooks,
)
from notifications.playbooks_slack import build_task_message
from sandbox.slack import channel_id, dm_channel_id, user_id
from store import session_scope
from store.db import make_engine
from store.models import Account, Alert, Csm, PlaybookTask, Team
from tests.notifications.conftest import SandboxFactory

NOW = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # a Friday
JO, SAM = "jo@example.com", "sam@example.com"  # both in the Slack sandbox; Sam leads Jo's team


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PLAYBOOKS__PATH", "PLAYBOOKS__LOOKBACK_DAYS", "PLAYBOOKS__CRM_WRITE_BACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _book(engine: Engine, owner: str | None = JO) -> int:
    """Jo's account Acme, in Sam's team; its id."""
    with session_scope(engine) as s:
        s.add(Team(source="hubspot", external_id="t1", name="Enterprise", lead_email=SAM))
        s.add(Csm(source="hubspot", external_id="501", email=JO, team_external_id="t1"))
        acme = Account(
            source="hubspot",
            external_id="9001",
            name="Acme Robotics",
            owner_email=owner,
            owner_external_id="501",
            renewal_date=date(2026, 5, 1),
            arr_minor=120_000_00,
        )
        s.add(acme)
        s.flush()
        assert acme.id is not None
        return acme.id


def _alert(
    engine: Engine,
    account_id: int,
    rule: str = "band_drop",
    band: str | None = "red",
    *,
    severity: str = "critical",
    created: datetime = NOW - timedelta(hours=1),
) -> int:
    with session_scope(engine) as s:
        alert = Alert(
            fingerprint=f"{rule}:{account_id}:{band}:{created.isoformat()}",
            account_id=account_id,
            rule=rule,
            severity=severity,
            payload={"band": band, "score": 34} if band else {},
            created_at=created,
        )
        s.add(alert)
        s.flush()
        assert alert.id is not None
        return alert.id


def _tasks(engine: Engine) -> list[PlaybookTask]:
    with Session(engine) as s:
        return list(s.exec(select(PlaybookTask).order_by(col(PlaybookTask.id))))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "playbooks.toml"
    path.write_text(text)
    return path


# ---- the file ---------------------------------------------------------------------------


def test_default_playbooks_cover_the_usual_alerts() -> None:
    config = load_playbooks()
    rules = {p.trigger.rule for p in config.playbooks}
    assert {"band_drop", "payment_failed", "renewal_at_risk", "sentiment_stale"} <= rules
    values = {name: f"<{name}>" for name in TEMPLATE_FIELDS}
    for playbook in config.playbooks:
        for template in playbook.tasks:
            title, steps = template.render(values)
            assert "{" not in title
            assert all("{" not in s for s in steps)
    red = config.triggered("band_drop", "red", "critical")
    assert [p.name for p in red] == ["red-account-save-plan"]
    assert config.triggered("band_drop", "green", "warning") == []


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (date(2026, 3, 6), 2, date(2026, 3, 10)),  # Friday + 2 -> Tuesday
        (date(2026, 3, 4), 2, date(2026, 3, 6)),  # Wednesday + 2 -> Friday
        (date(2026, 3, 7), 0, date(2026, 3, 9)),  # Saturday, due now -> Monday
        (date(2026, 3, 7), 2, date(2026, 3, 10)),  # Saturday + 2 -> Tuesday
        (date(2026, 3, 5), 5, date(2026, 3, 12)),  # a week of business days
        (date(2026, 3, 2), 0, date(2026, 3, 2)),
    ],
)
def test_business_days_skip_weekends(start: date, days: int, due: date) -> None:
    assert add_business_days(start, days) == due
    assert business_days_between(start, due) == days or start.weekday() >= 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[playbooks]\nname =", "not valid TOML"),
        (
            '[[playbooks]]\nname = "x"\ntrigger = { rule = "band_drop" }\n'
            '[[playbooks.tasks]]\ntitle = "Call {acount}"\n',
            'playbooks[0].tasks[0].title (playbook "x"): Value error, unknown field {acount}',
        ),
        (
            '[[playbooks]]\nname = "x"\ntrigger = { rule = "band_drop" }\n'
            '[[playbooks.tasks]]\ntitle = "Call"\nassignee = "ceo"\n',
            'playbooks[0].tasks[0].assignee (playbook "x")',
        ),
        (
            '[[playbooks]]\nname = "x"\ntrigger = { rule = "band_drop", band = "purple" }\n'
            '[[playbooks.tasks]]\ntitle = "Call"\n',
            'playbooks[0].trigger.band[0] (playbook "x"): Input should be',
        ),
        (
            '[[playbooks]]\nname = "x"\ntrigger = { rule = "band_drop" }\n'
            '[[playbooks.tasks]]\ntitle = "Call"\ndue_in_days = 2\n',
            "playbooks[0].tasks[0].due_in_days",
        ),
        ('[[playbooks]]\nname = "x"\ntrigger = { rule = "band_drop" }\n', "playbooks[0].tasks"),
        (
            '[[playbooks]]\nname = "x"\ntrigger = { rule = "a" }\n[[playbooks.tasks]]\n'
            'title = "T"\n[[playbooks]]\nname = "x"\ntrigger = { rule = "b" }\n'
            '[[playbooks.tasks]]\ntitle = "T"\n',
            "two playbooks are named 'x'",
        ),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PlaybookConfigError) as caught:
        load_playbooks(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message.splitlines()[0]


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(PlaybookConfigError, match="PLAYBOOKS__PATH"):
        load_playbooks(tmp_path / "nope.toml")


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    body = (
        '[[playbooks]]\nname = "{}"\ntrigger = {{ rule = "x" }}\n[[playbooks.tasks]]\ntitle = "T"\n'
    )
    path = _write(tmp_path, body.format("first"))
    assert load_playbooks(path).playbooks[0].name == "first"
    path.write_text(body.format("second-one"))
    assert load_playbooks(path).playbooks[0].name == "second-one"


def test_shipped_file_parses_like_any_other() -> None:
    text = DEFAULT_PLAYBOOKS.read_text()
    assert parse_playbooks(text, "defaults") == load_playbooks()


# ---- starting and completing --------------------------------------------------------------


def test_start_playbook_creates_the_tasks_once(engine: Engine) -> None:
    acme = _book(engine)
    alert = _alert(engine, acme)
    first = start_playbook(engine, alert, "jo@example.com", now=NOW)
    again = start_playbook(engine, alert, "sam@example.com", now=NOW + timedelta(days=1))
    assert [t.id for t in first] == [t.id for t in again]
    owner_task, lead_task = _tasks(engine)
    assert owner_task.fingerprint == f"playbook:red-account-save-plan:{acme}:{alert}:0"
    assert lead_task.fingerprint == f"playbook:red-account-save-plan:{acme}:{alert}:1"
    assert owner_task.title == "Red account: build a save plan for Acme Robotics"
    assert (owner_task.assignee_email, owner_task.due_on) == (JO, date(2026, 3, 11))
    assert (lead_task.assignee_email, lead_task.due_on) == (SAM, date(2026, 3, 13))
    assert owner_task.steps[0].startswith("Read the drivers")
    assert (owner_task.status, owner_task.alert_id, owner_task.created_at) == ("open", alert, NOW)


def test_lead_falls_back_to_the_owner_and_templates_fill_in(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path,
        '[[playbooks]]\nname = "renewal"\ntrigger = { rule = "renewal_at_risk" }\n'
        '[[playbooks.tasks]]\ntitle = "{account}: {renewal_date}, {arr}, {band} {score}"\n'
        'steps = ["Due {due_on} ({playbook}, {severity})"]\nassignee = "lead"\n'
        "due_in_business_days = 0\n",
    )
    monkeypatch.setenv("PLAYBOOKS__PATH", str(path))
    with session_scope(engine) as s:
        solo = Account(source="crm", external_id="1", name="Solo", owner_email="x@example.com")
        s.add(solo)
        s.flush()
        solo_id = solo.id
    assert solo_id is not None
    alert = _alert(engine, solo_id, "renewal_at_risk", None, severity="warning")
    [task] = start_playbook(engine, alert, None, now=datetime(2026, 3, 7, 12, tzinfo=UTC))
    assert task.title == "Solo: unknown, unknown, unknown unknown"
    assert task.steps == ["Due 2026-03-09 (renewal, warning)"]
    assert task.assignee_email == "x@example.com"  # no team lead known: the owner


def test_start_playbook_unknown_alert_or_nothing_to_start(engine: Engine) -> None:
    acme = _book(engine)
    with pytest.raises(AlertNotFoundError) as caught:
        start_playbook(engine, 4242, None, now=NOW)
    assert isinstance(caught.value, LookupError)
    assert str(caught.value) == "alert 4242 no longer exists"
    green = _alert(engine, acme, band="green")
    assert start_playbook(engine, green, None, now=NOW) == []
    with session_scope(engine) as s:
        orphan = Alert(fingerprint="orphan", rule="band_drop", payload={"band": "red"})
        s.add(orphan)
        s.flush()
        orphan_id = orphan.id
    assert orphan_id is not None
    assert start_playbook(engine, orphan_id, None, now=NOW) == []
    assert _tasks(engine) == []


def test_start_playbook_in_the_callers_session(engine: Engine) -> None:
    alert = _alert(engine, _book(engine))
    with session_scope(engine) as s:
        tasks = start_playbook(s, alert, None, now=NOW)
        assert len(tasks) == 2
    assert len(_tasks(engine)) == 2


def test_racing_starts_create_each_task_once(engine: Engine, db_url: str) -> None:
    """Eight starts at once, each on its own engine on PostgreSQL (one engine on SQLite)."""
    alert = _alert(engine, _book(engine))
    shared = engine.dialect.name == "sqlite"  # SQLite has one writer: threads take turns
    engines = [engine if shared else make_engine(db_url) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    results: list[list[int | None]] = []
    errors: list[BaseException] = []

    def start(own: Engine) -> None:
        try:
            barrier.wait()
            results.append([t.id for t in start_playbook(own, alert, None, now=NOW)])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for own in engines:
        if own is not engine:
            own.dispose()
    assert errors == []
    assert len(results) == 8
    assert len({tuple(r) for r in results}) == 1
    assert len(_tasks(engine)) == 2


def test_complete_task_once(engine: Engine) -> None:
    alert = _alert(engine, _book(engine))
    task, _ = start_playbook(engine, alert, None, now=NOW)
    assert task.id is not None
    done = complete_task(engine, task.id, JO, now=NOW + timedelta(hours=2))
    again = complete_task(engine, task.id, SAM, now=NOW + timedelta(days=1))
    assert (done.status, done.completed_at) == ("done", NOW + timedelta(hours=2))
    assert (again.status, again.completed_at) == ("done", NOW + timedelta(hours=2))
    with pytest.raises(TaskNotFoundError, match=r"^task 999 no longer exists$") as caught:
        complete_task(engine, 999, JO)
    assert isinstance(caught.value, LookupError)


def test_run_playbooks_starts_auto_playbooks_for_new_alerts(engine: Engine) -> None:
    acme = _book(engine)
    red = _alert(engine, acme)
    _alert(engine, acme, band="yellow", severity="warning")  # its playbook is started by hand
    _alert(engine, acme, "payment_failed", None, severity="warning")
    _alert(engine, acme, "payment_failed", None, created=NOW - timedelta(days=30))  # too old
    _alert(engine, acme, "unknown_rule", None)
    first = run_playbooks(engine, NOW)
    second = run_playbooks(engine, NOW + timedelta(minutes=5))
    assert (first.alerts, first.started, first.created) == (2, 2, 3)
    assert "2 started for 2 alerts, 3 tasks created" in first.describe()
    assert (second.started, second.created) == (0, 0)
    titles = sorted(t.title for t in _tasks(engine))
    assert titles == [
        "Payment failed: contact Acme Robotics's billing contact",
        "Red account: build a save plan for Acme Robotics",
        "Review the save plan for Acme Robotics with its CSM",
    ]
    assert len(start_playbook(engine, red, None, now=NOW)) == 2  # the same two


# ---- Slack --------------------------------------------------------------------------------


def _done_button(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    parsed = Block.parse_all(blocks)
    assert [b.to_dict() for b in parsed] == blocks  # valid Block Kit, nothing dropped
    [actions] = [b for b in parsed if isinstance(b, ActionsBlock)]
    [button] = actions.elements
    return dict(button.to_dict())


def test_post_tasks_to_the_assignees_dm_with_a_done_button(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox(rate_limit=None)
    alert = _alert(engine, _book(engine))
    owner_task, lead_task = start_playbook(engine, alert, None, now=NOW)
    first = post_tasks(engine, slack.client(), NOW)
    again = post_tasks(engine, slack.client(), NOW + timedelta(minutes=1))
    assert (first.posted, again.posted) == (2, 0)
    assert first.describe() == "tasks posted: 2"
    to_jo, to_sam = slack.recorder.messages
    assert to_jo["channel"] == dm_channel_id(user_id(JO))
    assert to_sam["channel"] == dm_channel_id(user_id(SAM))
    assert to_jo["text"].startswith("New task: Red account: build a save plan for Acme Robotics")
    button = _done_button(to_jo["blocks"])
    assert (button["action_id"], button["value"]) == (ACTION_TASK_DONE, str(owner_task.id))
    assert button["text"]["text"] == "Done"
    assert "Read the drivers" in json.dumps(to_jo["blocks"])
    assert _done_button(to_sam["blocks"])["value"] == str(lead_task.id)
    assert all(t.posted_at == NOW for t in _tasks(engine))
    assert slack.recorder.methods().count("users.lookupByEmail") == 2


def test_long_tasks_stay_within_block_kit_limits() -> None:
    task = PlaybookTask(
        id=7,
        fingerprint="f",
        playbook="save-plan",
        title="T" * 200,
        steps=[f"Step {n} " + "x" * 490 for n in range(20)],
        due_on=date(2026, 3, 2),
        alert_id=3,
    )
    message = build_task_message(
        task, "A <very> long & odd name " * 40, today=date(2026, 3, 6), reminder=True
    )
    blocks = [b.to_dict() for b in message.blocks]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert len(blocks[1]["text"]["text"]) <= 3000
    assert all(len(f["text"]) <= 2000 for f in blocks[1]["fields"])
    assert len(json.dumps(blocks)) < 12_000
    assert "&lt;very&gt;" in blocks[1]["fields"][0]["text"]
    assert "4 days overdue" in message.text
    assert _done_button(blocks)["value"] == "7"


def test_unroutable_tasks_wait_or_go_to_the_admin_channel(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox(rate_limit=None, channels=["cs-ops"])
    acme = _book(engine, owner="ghost@example.com")
    _alert(engine, acme, "payment_failed", None)
    run_playbooks(engine, NOW)
    waiting = post_tasks(engine, slack.client(), NOW)
    assert (waiting.posted, waiting.waiting) == (0, 1)
    assert "no Slack user has the email ghost@example.com" in waiting.problems[0]
    assert _tasks(engine)[0].posted_at is None
    admin = post_tasks(engine, slack.client(), NOW, admin_channel="#cs-ops")
    assert admin.posted == 1
    [message] = slack.recorder.messages
    assert message["channel"] == channel_id("cs-ops")


def test_a_rate_limited_post_is_given_back(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox(rate_limit=None)
    start_playbook(engine, _alert(engine, _book(engine)), None, now=NOW)
    slack.recorder.inject("chat.postMessage", 429)
    client = slack.client(rate_limit_retries=0)
    deferred = post_tasks(engine, client, NOW)
    assert (deferred.posted, deferred.deferred) == (0, 2)
    assert all(t.posted_at is None for t in _tasks(engine))
    assert post_tasks(engine, client, NOW).posted == 2


def test_overdue_tasks_are_reminded_at_most_once_a_day(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox(rate_limit=None)
    alert = _alert(engine, _book(engine))
    owner_task, _lead_task = start_playbook(engine, alert, None, now=NOW)
    assert owner_task.id is not None
    client = slack.client()
    assert remind_overdue(engine, client, NOW + timedelta(days=10)).posted == 0  # not posted
    post_tasks(engine, client, NOW)
    assert remind_overdue(engine, client, NOW + timedelta(days=3)).posted == 0  # not due yet
    day = datetime(2026, 3, 12, 8, tzinfo=UTC)  # the owner's task was due the day before
    first = remind_overdue(engine, client, day)
    later = remind_overdue(engine, client, day + timedelta(hours=9))
    assert (first.posted, later.posted) == (1, 0)
    reminder = slack.recorder.messages[-1]
    assert reminder["text"].startswith("Overdue: Red account")
    assert "1 day overdue" in reminder["text"]
    assert _done_button(reminder["blocks"])["value"] == str(owner_task.id)
    next_day = remind_overdue(engine, client, day + timedelta(days=1))
    assert next_day.posted == 1
    complete_task(engine, owner_task.id, JO, now=day + timedelta(days=1, hours=1))
    assert remind_overdue(engine, client, day + timedelta(days=5)).posted == 1  # the lead's
    assert remind_overdue(engine, client, day + timedelta(days=5, hours=1)).posted == 0


# ---- the command --------------------------------------------------------------------------


@pytest.fixture
def cli_env(sqlite_url: str) -> dict[str, str]:
    return {"DATABASE_URL": sqlite_url, "COLUMNS": "200"}


def test_playbooks_list_command(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["playbooks", "list"], env=cli_env)
    assert shown.exit_code == 0, shown.output
    assert "red-account-save-plan" in shown.stdout
    assert "band_drop (band red)" in shown.stdout
    listed = runner.invoke(app, ["playbooks", "list", "--json"], env=cli_env)
    data = json.loads(listed.stdout)
    assert data[0]["tasks"][0]["due_in_business_days"] == 2
    broken = _write(tmp_path, "[[playbooks]]\nname = 1\n")
    refused = runner.invoke(
        app, ["playbooks", "list"], env={**cli_env, "PLAYBOOKS__PATH": str(broken)}
    )
    assert refused.exit_code == 1
    assert f"{broken}: playbooks[0].name" in refused.stderr


def test_tasks_command(cli_env: dict[str, str]) -> None:
    engine = make_engine(cli_env["DATABASE_URL"])
    alert = _alert(engine, _book(engine))
    long_ago = datetime(2025, 1, 6, 9, tzinfo=UTC)
    owner_task, _ = start_playbook(engine, alert, None, now=long_ago)
    assert owner_task.id is not None
    complete_task(engine, owner_task.id, JO, now=long_ago)
    engine.dispose()
    runner = CliRunner()
    shown = runner.invoke(app, ["tasks"], env=cli_env)
    assert shown.exit_code == 0, shown.output
    assert "Acme Robotics" in shown.stdout
    assert "overdue" in shown.stdout
    assert "done" in shown.stdout
    overdue = json.loads(runner.invoke(app, ["tasks", "--overdue", "--json"], env=cli_env).stdout)
    assert [(r["assignee"], r["status"], r["overdue"]) for r in overdue] == [(SAM, "open", True)]
    everything = json.loads(runner.invoke(app, ["tasks", "--json"], env=cli_env).stdout)
    assert len(everything) == 2
    assert everything[0]["account"] == "Acme Robotics"
    assert json.loads(runner.invoke(app, ["tasks", "--open", "--json"], env=cli_env).stdout) == [
        overdue[0]
    ]
