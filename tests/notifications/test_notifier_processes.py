"""Real `health-agent notify` processes: two racing, then a restart, and no alert twice.

The store (SQLite and PostgreSQL) holds accounts whose scores dropped today; the Slack
emulator listens on 127.0.0.1. Two notifier processes start at the same moment, then a
third runs after both have exited, as after a restart. Every alert is posted exactly once,
to its owner's DM (an account's alerts in one message), and the restart posts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sandbox.slack import SLACK_BOT_TOKEN, dm_channel_id, user_id
from store import session_scope
from store.models import Alert, PlaybookTask
from tests.notifications.conftest import CSMS, SandboxFactory
from tests.notifications.test_alerts import _score
from tests.scoring.seed import account

OWNERS = [email for email, _ in CSMS]


def _seed(engine: Engine, today: date) -> None:
    with session_scope(engine) as s:
        for n in range(12):
            a = account(s, f"Dropping {n}", owner_email=OWNERS[n % 2], arr_minor=10_000_00)
            _score(s, a, today - timedelta(days=8), 90, "green")
            _score(s, a, today - timedelta(days=1), 80, "green")
            _score(s, a, today, 30, "red")


def _notifier(engine: Engine, api_url: str, workdir: Path) -> subprocess.Popen[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "SLACK__BOT_TOKEN": SLACK_BOT_TOKEN,
        "SLACK__BASE_URL": api_url,
        "ALERTS__DAILY_BUDGET": "100",
    }
    command = [sys.executable, "-c", "import cli; cli.main()", "notify"]
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    return output


def test_two_notifier_processes_and_a_restart_send_each_alert_once(
    engine: Engine, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    slack = slack_sandbox(rate_limit=None)  # a lasting 429 rightly leaves alerts for later
    _seed(engine, date.today())
    racing = [_notifier(engine, slack.api_url, tmp_path) for _ in range(2)]
    outputs = [_finish(process) for process in racing]
    after_race = len(slack.recorder.messages)
    outputs.append(_finish(_notifier(engine, slack.api_url, tmp_path)))  # the restart

    with Session(engine) as s:
        alerts = list(s.exec(select(Alert).where(col(Alert.rule) == "band_drop")))
        sent = list(s.exec(select(Alert).where(col(Alert.status) == "sent")))
        tasks = list(s.exec(select(PlaybookTask)))
    messages = slack.recorder.messages
    assert [m["text"][:80] for m in messages[after_race:]] == [], outputs  # restart: nothing
    assert len(alerts) == 12
    assert all(a.status == "sent" for a in alerts)
    alert_buttons = Counter(_button_values(messages, "alert_acknowledge"))
    task_buttons = Counter(_button_values(messages, "task_done"))
    leads = [a for a in sent if a.rolled_into is None]  # the others went out in their message
    assert alert_buttons == Counter(str(a.id) for a in leads if a.rule != "daily_summary")
    assert task_buttons == Counter(str(t.id) for t in tasks if t.posted_at is not None)
    assert len(messages) == len(leads) + sum(task_buttons.values())
    for a in alerts:
        [message] = [m for m in messages if m["ts"] == a.message_ts]
        assert a.recipient_email in OWNERS
        assert message["channel"] == dm_channel_id(user_id(a.recipient_email or ""))
        assert message["text"].startswith(f"{a.payload['account_name']} dropped")


def _button_values(messages: list[dict[str, Any]], action_id: str) -> list[str]:
    return [
        element["value"]
        for message in messages
        for block in message.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
