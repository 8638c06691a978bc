"""Logging set-up: JSON lines or text, context ids bound where a run's ids are known, and
redaction of whatever looks like a credential."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, col, select

import logs
from connectors.base import Connector, Record, StreamSpec, parse_iso
from connectors.http import BearerAuth, ClientOptions, HttpClient, HttpSource, RetryPolicy
from connectors.paginators import CursorAfterPaginator
from connectors.sync import sync_connector
from notifications import deliver_pending
from notifications.slack import make_slack_client
from sandbox.slack import SLACK_BOT_TOKEN, slack_app
from settings import AlertSettings, ConfigError, Settings, SlackSettings
from store import make_engine, session_scope
from store.models import SyncRun, Ticket
from tests.notifications.builders import NOW, account, alert, csm
from tests.notifications.server import serve

TOUCHED = ("", "connectors.sync", *logs.CHATTY)


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put back what `setup_logging` (and the CLI) change globally: the root handlers, the
    levels, the record factory and the secrets to redact."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in TOUCHED}
    factory = logging.getLogRecordFactory()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        logging.setLogRecordFactory(factory)
        logs.set_secrets([])


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    with logging_restored():
        yield


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=tmp_path / "none.env", **values)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# ---- output ----------------------------------------------------------------------------


def test_json_lines_off_a_terminal_with_ids_and_the_exception(tmp_path: Path) -> None:
    out = io.StringIO()
    logs.setup_logging(_settings(tmp_path, log_level="INFO"), stream=out)
    log = logging.getLogger("health.test")
    with logs.log_context(source="hubspot", stream="companies", run_id=7):
        log.info("page %d of %s", 2, "companies")
        try:
            raise RuntimeError("the vendor hung up")
        except RuntimeError:
            log.exception("the stream failed")
    log.debug("below the level")
    first, second = _lines(out)
    assert first["message"] == "page 2 of companies"
    assert (first["level"], first["logger"]) == ("INFO", "health.test")
    assert (first["source"], first["stream"], first["run_id"]) == ("hubspot", "companies", 7)
    assert "account_id" not in first
    assert "exception" not in first
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() == timedelta(0)
    assert second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback")
    assert "RuntimeError: the vendor hung up" in second["exception"]


def test_text_on_a_terminal_and_log_format_overrides_it(tmp_path: Path) -> None:
    terminal = _Terminal()
    logs.setup_logging(_settings(tmp_path), stream=terminal)
    with logs.log_context(account_id=42):
        logging.getLogger("notifications.deliver").warning("alert %s held", 9)
    assert terminal.getvalue() == "WARNING notifications.deliver: alert 9 held [account_id=42]\n"

    forced = _Terminal()
    logs.setup_logging(_settings(tmp_path, log_format="json"), stream=forced)
    logging.getLogger("x").warning("plain")
    assert _lines(forced)[0]["message"] == "plain"

    piped = io.StringIO()
    logs.setup_logging(_settings(tmp_path, log_format="text"), stream=piped)
    logging.getLogger("x").warning("plain")
    assert piped.getvalue() == "WARNING x: plain\n"


def test_setting_up_again_replaces_the_handler_and_follows_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, log_format="text")
    logs.setup_logging(settings)
    logs.setup_logging(settings)
    logging.getLogger("x").warning("once")
    assert capsys.readouterr().err == "WARNING x: once\n"


def test_log_level_caps_chatty_libraries_and_refuses_unknown_levels(tmp_path: Path) -> None:
    logs.setup_logging(_settings(tmp_path, log_level="debug"), stream=io.StringIO())
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("httpcore").level == logging.WARNING
    with pytest.raises(ConfigError, match="LOG_LEVEL 'LOUD'"):
        logs.setup_logging(_settings(tmp_path, log_level="LOUD"), stream=io.StringIO())


def test_env_example_documents_log_format() -> None:
    example = (Path(__file__).parent.parent / ".env.example").read_text()
    assert "\nLOG_FORMAT=auto\n" in example


# ---- context ids -----------------------------------------------------------------------


def test_contexts_nest_and_end() -> None:
    with logs.log_context(job_id="sync hubspot"):
        with logs.log_context(source="hubspot", stream=None):
            assert logs.current_log_context() == {"job_id": "sync hubspot", "source": "hubspot"}
        assert logs.current_log_context() == {"job_id": "sync hubspot"}
    assert logs.current_log_context() == {}


def test_ids_bound_in_a_scoped_function_end_with_it() -> None:
    seen: list[dict[str, Any]] = []

    @logs.log_scope
    def run(account: int) -> None:
        logs.bind_log_context(account_id=account)
        seen.append(logs.current_log_context())

    with logs.log_context(job_id="notify"):
        run(5)
        assert logs.current_log_context() == {"job_id": "notify"}
    assert seen == [{"job_id": "notify", "account_id": 5}]


def test_threads_keep_their_own_ids(tmp_path: Path) -> None:
    out = io.StringIO()
    logs.setup_logging(_settings(tmp_path, log_level="INFO"), stream=out)
    barrier = threading.Barrier(2)

    def work(source: str) -> None:
        with logs.log_context(source=source):
            barrier.wait(timeout=5)
            logging.getLogger("sync").info("working")

    threads = [threading.Thread(target=work, args=(s,)) for s in ("stripe", "zendesk")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(line["source"] for line in _lines(out)) == ["stripe", "zendesk"]


def test_ids_given_with_extra_win() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.account_id = 3
    with logs.log_context(account_id=1, source="crm"):
        logs.ContextFilter().filter(record)
    ids = vars(record)
    assert (ids["account_id"], ids["source"], ids["job_id"]) == (3, "crm", None)


# ---- bindings where the ids are known ----------------------------------------------------


def _toy_connector(failing: bool) -> Connector:
    pages = {None: {"items": [{"id": 1, "updated_at": "2025-06-01T00:00:00Z"}]}}

    def handler(request: httpx.Request) -> httpx.Response:
        if failing:
            return httpx.Response(503, json={"message": "down"})
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    def mapper(raw: Mapping[str, Any]) -> list[Record]:
        logging.getLogger("toy.mapper").info("mapping %s", raw["id"])
        at = parse_iso(raw["updated_at"])
        values = {"external_id": str(raw["id"]), "status": "open", "created_at": at}
        return [Record(Ticket, {**values, "updated_at": at})]

    http = HttpSource(
        source="toy",
        base_url="https://toy.test",
        auth=BearerAuth(SecretStr("toy-token-0042")),
        credential="the token",
        settings_hint="TOY__TOKEN",
    )
    options = ClientOptions(
        transport=httpx.MockTransport(handler),
        sleep=lambda _: None,
        retry=RetryPolicy(attempts=1),
    )
    stream = StreamSpec(
        name="tickets",
        path="/tickets",
        records_key="items",
        paginator=CursorAfterPaginator,
        mapper=mapper,
    )
    return Connector(source="toy", streams=(stream,), open=lambda: HttpClient(http, options))


def test_a_stream_run_logs_with_its_source_stream_and_sync_run_id(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(logs.ContextFilter())
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="connectors.sync")  # the CLI's sync may have raised it
    with logs.log_context(job_id="sync toy"):
        sync_connector(engine, _toy_connector(failing=False))
        sync_connector(engine, _toy_connector(failing=True))
    with Session(engine) as session:
        runs = session.exec(select(SyncRun).order_by(col(SyncRun.id))).all()
    assert [run.status for run in runs] == ["ok", "failed"]
    ok_run, failed_run = (run.id for run in runs)
    [mapped] = [r for r in caplog.records if r.name == "toy.mapper"]
    [warned] = [r for r in caplog.records if r.name == "connectors.sync"]
    assert "toy/tickets failed" in warned.getMessage()
    for record, run_id in ((mapped, ok_run), (warned, failed_run)):
        ids = vars(record)
        assert (ids["source"], ids["stream"], ids["run_id"], ids["job_id"]) == (
            "toy",
            "tickets",
            run_id,
            "sync toy",
        )
    assert logs.current_log_context() == {}


def test_delivery_logs_each_alert_with_its_account(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(sqlite_url)
    with session_scope(engine) as s:
        csm(s, "jo@example.com", None)
        first = account(s, "Acme", "jo@example.com")
        second = account(s, "Globex", "jo@example.com")
    alert(engine, first, "jo@example.com", rule="band_drop")
    alert(engine, second, "jo@example.com", rule="usage_drop")
    caplog.handler.addFilter(logs.ContextFilter())
    caplog.set_level(logging.INFO, logger="notifications.deliver")
    app = slack_app([("jo@example.com", "Jo Park")], rate_limit=None)
    with serve(app) as base:
        settings = SlackSettings(bot_token=SecretStr(SLACK_BOT_TOKEN), base_url=f"{base}/api/")
        client = make_slack_client(settings)
        policy = AlertSettings(daily_budget=0, summary_only="none")
        summary = deliver_pending(engine, client, settings=policy, now=NOW)
    engine.dispose()
    assert summary.sent == 2
    sent = [r for r in caplog.records if r.getMessage().startswith("alert ")]
    assert [vars(r)["account_id"] for r in sent] == [first, second]


# ---- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123 sent", "Authorization: [redacted] sent"),
        ("{'authorization': 'Basic ZW1haWw6c2VjcmV0'}", "{'authorization': '[redacted]'}"),
        ("(b'authorization', b'Bearer tok123456')", "(b'authorization', b'[redacted]')"),
        ("sent Bearer eyJhbGciOi.x-y_z", "sent Bearer [redacted]"),
        ("token xoxb-123-456-abcDEF, app xapp-1-A0-xyz", "token [redacted], app [redacted]"),
        (
            "key sk_live_51Habc and rk_test_9zz9, whsec_abcd1234",
            "key [redacted] and [redacted], [redacted]",
        ),
        ("pat-na1-11aa22bb-33cc", "[redacted]"),
        ("postgresql://reader:pa55w0rd@db:5432/x", "postgresql://reader:[redacted]@db:5432/x"),
        (
            '{"access_token": "00D5g!AQ", "client_secret": "s3"}',
            '{"access_token": "[redacted]", "client_secret": "[redacted]"}',
        ),
        ("password=hunter22&user=jo", "password=[redacted]&user=jo"),
    ],
)
def test_credentials_are_redacted_by_their_shape(text: str, expected: str) -> None:
    assert logs.redact(text) == expected


@pytest.mark.parametrize(
    "prose",
    [
        "the app's signing secret (Basic Information page) checks every request",
        "the JWT bearer flow signs with RS256",
        "password authentication failed for user reader",
        "lacks a scope or authorization, grant it",
        "set SLACK__BOT_TOKEN to the bot token (xoxb-...) of the installed Slack app",
    ],
)
def test_prose_about_credentials_is_left_alone(prose: str) -> None:
    assert logs.redact(prose) == prose


def test_every_secret_setting_and_the_database_password_are_redacted(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        database_url="postgresql+psycopg://health:db%2Fpass-99@db.internal/health",
        hubspot={"webhook_secret": "hs-hook-secret-1"},
        sql={"url": "postgresql://reader:sql-pass-2@warehouse/analytics"},
        slack={"signing_secret": "plain-signing-secret-3", "app_token": "ab"},
    )
    found = set(logs.settings_secrets(settings))
    assert {"hs-hook-secret-1", "plain-signing-secret-3", "db%2Fpass-99"} <= found
    logs.set_secrets(found)
    text = "hs-hook-secret-1 plain-signing-secret-3 db/pass-99 sql-pass-2 db%2Fpass-99 ab"
    assert logs.redact(text) == " ".join(["[redacted]"] * 5 + ["ab"])


def test_records_are_redacted_for_every_handler_once_set_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    settings = _settings(tmp_path, log_level="DEBUG", stripe={"api_key": "stripe-key-0007"})
    logs.setup_logging(settings, stream=out)
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("anything")
    log.debug("calling with %s", {"key": "stripe-key-0007"})
    try:
        raise ValueError("refused stripe-key-0007")
    except ValueError:
        log.warning("failed", exc_info=True)
    log.warning("ok %s", "nothing to hide")
    captured = caplog.text + out.getvalue() + "".join(r.getMessage() for r in caplog.records)
    assert "stripe-key-0007" not in captured
    assert captured.count("[redacted]") >= 4  # message and exception, in both outputs
    assert caplog.records[1].exc_info is None  # the exception survives as redacted text only
    assert caplog.records[2].args == ("nothing to hide",)  # untouched when nothing is secret


def test_arguments_that_do_not_fit_are_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    settings = _settings(tmp_path, log_format="text", slack={"bot_token": "xoxb-1-2-abcdef"})
    logs.setup_logging(settings, stream=out)
    logging.getLogger("x").warning("posting with %d", "xoxb-1-2-abcdef")
    assert out.getvalue() == "WARNING x: posting with %d\n"
    assert "xoxb" not in capsys.readouterr().err  # no logging error report either
