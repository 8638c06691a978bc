"""No secret reaches a log line, an exception message or the CLI's output.

Every secret setting gets a recognisable value. Then things fail, logged at DEBUG with the
HTTP libraries' own debug lines switched on: every source syncs against a local server that
answers 401, 400, 500 or garbage and echoes back the credentials it was sent (in its body
and in a response header, which httpcore logs); Slack delivery meets a refused token, an
outage and an echoing server; `health-agent` commands fail on bad configuration. Everything
written is collected, the configured handler's JSON lines and pytest's capture alike, and
searched for every secret and for every credential the servers received.
"""

from __future__ import annotations

import io
import logging
import socket
import traceback
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner, Result

import logs
from cli import app
from connectors.http import ClientOptions, RetryPolicy
from connectors.registry import sync_all
from notifications import deliver_pending
from notifications.slack import SlackAuthError, check_auth, make_slack_client
from sandbox.slack import slack_app
from settings import Settings, SlackSettings
from store import make_engine, session_scope
from store.models import Alert
from tests.notifications.builders import NOW, account, alert, csm
from tests.notifications.server import serve
from tests.test_logs import logging_restored

JO = "jo@example.com"
SQL_PASSWORD = "sql-secret-SQL-1234"
DB_PASSWORD = "db-secret-DATABASE-1234"
KNOWN_SECRETS = {
    "HUBSPOT__TOKEN": "pat-secret-HUBSPOT-1234",
    "HUBSPOT__WEBHOOK_SECRET": "hubspot-webhook-secret-HUBSPOT-5678",
    "SALESFORCE__CLIENT_SECRET": "sf-client-secret-SALESFORCE-1234",
    "ZENDESK__API_TOKEN": "zd-secret-ZENDESK-1234",
    "ZENDESK__WEBHOOK_SECRET": "zd-webhook-secret-ZENDESK-5678",
    "STRIPE__API_KEY": "sk_live_secretSTRIPE1234",
    "STRIPE__WEBHOOK_SECRET": "whsec_secretSTRIPE5678",
    "FRESHDESK__API_KEY": "fd-secret-FRESHDESK-1234",
    "INTERCOM__ACCESS_TOKEN": "ic-secret-INTERCOM-1234",
    "CHARGEBEE__API_KEY": "cb-secret-CHARGEBEE-1234",
    "SLACK__BOT_TOKEN": "xoxb-secret-SLACK-1234",
    "SLACK__SIGNING_SECRET": "slack-signing-secret-SLACK-5678",
    "SLACK__APP_TOKEN": "xapp-secret-SLACK-9012",
}
SALESFORCE_SESSION = "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog"
"""The access token the echo server's Salesforce login hands out: a secret of no setting."""


def secret_variables() -> list[str]:
    """Every `SecretStr` setting, as its environment variable."""
    found = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, sub in model.model_fields.items():
                if SecretStr in (sub.annotation, *typing.get_args(sub.annotation)):
                    found.append(f"{section.upper()}__{name.upper()}")
        elif SecretStr in (model, *typing.get_args(model)):
            found.append(section.upper())
    return found


def _secret_env(sql_port: int) -> dict[str, str]:
    """A recognisable value for every secret setting, new ones included."""
    env = {}
    for variable in secret_variables():
        value = KNOWN_SECRETS.get(variable, f"{variable.lower().replace('__', '-')}-secret-4321")
        env[variable] = value
    env["SQL__URL"] = f"postgresql+psycopg://reader:{SQL_PASSWORD}@127.0.0.1:{sql_port}/analytics"
    return env


class EchoServer:
    """A vendor that refuses, fails or talks nonsense, repeating the credentials it got.

    `/{mode}/{anything}`: mode 401, 400 or 500 answers that status with a JSON error whose
    message repeats the Authorization header and the body; `garbage` answers 200 with HTML.
    Every answer repeats the Authorization header in `X-Echo-Authorization` too. A
    Salesforce login under 400 or `garbage` succeeds, handing out `SALESFORCE_SESSION`.
    """

    def __init__(self) -> None:
        self.credentials: list[str] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{mode}/{rest:path}", self.answer, methods=["GET", "POST"])]
        )

    async def answer(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        auth = request.headers.get("authorization", "")
        body = (await request.body()).decode("utf-8", "replace")
        if auth:
            self.credentials.append(auth)
        headers = {"X-Echo-Authorization": auth}
        said = f"you sent Authorization: {auth} with {body} and ?{request.url.query}"
        if mode in ("400", "garbage") and request.url.path.endswith("/services/oauth2/token"):
            instance = str(request.base_url).rstrip("/") + f"/{mode}/instance"
            token = {"access_token": SALESFORCE_SESSION, "instance_url": instance}
            return JSONResponse(token, headers=headers)
        if mode == "garbage":
            return PlainTextResponse(f"<html>{said}</html>", headers=headers)
        error = {"message": said, "error": "invalid_client", "error_description": said}
        return JSONResponse(error, status_code=int(mode), headers=headers)


class Evidence:
    """Everything written anywhere, to search for secrets."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *texts: str | None) -> None:
        self.texts.extend(text for text in texts if text)

    def exception(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.add(str(exc), "".join(traceback.format_exception(exc)))

    def cli(self, result: Result) -> None:
        self.add(result.output, result.stdout, result.stderr)
        self.exception(result.exception)

    def leaks(self, needles: set[str]) -> list[str]:
        """Each needle found, with what surrounds it."""
        found = []
        for needle in sorted(needles):
            for text in self.texts:
                at = text.find(needle)
                if at >= 0:
                    found.append(f"{needle!r} in ...{text[max(0, at - 200) : at + 80]!r}")
                    break
        return found


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    with logging_restored():
        yield


@pytest.fixture
def echo() -> Iterator[tuple[EchoServer, str, int]]:
    server = EchoServer()
    with serve(server.app()) as base:
        yield server, base, int(base.rsplit(":", 1)[1])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(tmp_path: Path, base: str, mode: str, sql_port: int, db_url: str) -> dict[str, str]:
    sources = tmp_path / "sources.toml"
    sources.write_text("[sql.queries]\nusage = 'select 1'\n")
    url = f"{base}/{mode}"
    return {
        **_secret_env(sql_port),
        "DATABASE_URL": db_url,
        "SOURCES_FILE": str(sources),
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
        "HUBSPOT__BASE_URL": f"{url}/hubspot",
        "SALESFORCE__CLIENT_ID": "3MVG9-consumer-key",
        "SALESFORCE__LOGIN_URL": f"{url}/salesforce",
        "ZENDESK__EMAIL": "ops@example.com",
        "ZENDESK__BASE_URL": f"{url}/zendesk",
        "STRIPE__BASE_URL": f"{url}/stripe",
        "FRESHDESK__BASE_URL": f"{url}/freshdesk",
        "INTERCOM__BASE_URL": f"{url}/intercom",
        "CHARGEBEE__BASE_URL": f"{url}/chargebee",
        "SLACK__BASE_URL": f"{url}/slack/",
    }


def _needles(env: dict[str, str], server: EchoServer) -> set[str]:
    """The configured secrets, and every credential the server saw, with and without its
    scheme (`Basic <base64 of user:key>` holds the key too)."""
    needles = {env[variable] for variable in secret_variables()}
    needles |= {SQL_PASSWORD, DB_PASSWORD, SALESFORCE_SESSION}
    for header in server.credentials:
        needles |= {header, header.split(" ", 1)[-1]}
    return {needle for needle in needles if len(needle) >= 8}


def _debug_everything(settings: Settings) -> io.StringIO:
    """The configured handler, at DEBUG, with the HTTP libraries' debug lines on too."""
    out = io.StringIO()
    logs.setup_logging(settings, stream=out)
    for chatty in logs.CHATTY:
        logging.getLogger(chatty).setLevel(logging.DEBUG)
    logging.getLogger("connectors.sync").setLevel(logging.DEBUG)
    return out


def _jo_and_account(engine: Engine) -> int:
    """A CSM Slack knows as Jo, and an account of theirs; its id."""
    with session_scope(engine) as s:
        csm(s, JO, None)
        return account(s, "Acme", JO)


def test_every_secret_setting_gets_a_recognisable_value() -> None:
    variables = secret_variables()
    assert {"HUBSPOT__TOKEN", "SQL__URL", "SLACK__BOT_TOKEN", "SALESFORCE__CLIENT_SECRET"} <= set(
        variables
    )
    env = _secret_env(5432)
    assert set(env) == set(variables)
    assert len(set(env.values())) == len(env)


def test_failing_syncs_and_slack_log_no_secret_at_debug(
    echo: tuple[EchoServer, str, int],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, base, port = echo
    monkeypatch.chdir(tmp_path)
    evidence = Evidence()
    engine = make_engine(sqlite_url)
    acme = _jo_and_account(engine)
    caplog.set_level(logging.DEBUG)
    handler_output: list[io.StringIO] = []
    quick = ClientOptions(sleep=lambda _: None, retry=RetryPolicy(attempts=2), timeout=10)
    failed: dict[str, set[str]] = {}
    for mode in ("401", "400", "500", "garbage"):
        env = _env(tmp_path, base, mode, port, sqlite_url)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = Settings()
        handler_output.append(_debug_everything(settings))
        summary = sync_all(engine, settings, client=quick)
        failed[mode] = {r.source for r in summary.failures}
        for result in summary.streams:
            evidence.add(result.error)
            evidence.exception(result.exception)
        # Slack repeating the token: its debug lines show it (delivery problems: see below)
        alert(engine, acme, JO, rule=f"echo_{mode}")
        deliver_pending(engine, make_slack_client(settings, backoff_seconds=0.01), now=NOW)

    # Slack refusing the token, then down, through the emulator
    with serve(slack_app([(JO, "Jo Park")], rate_limit=None)) as slack_base:
        monkeypatch.setenv("SLACK__BASE_URL", f"{slack_base}/api/")
        refused = make_slack_client(Settings(), backoff_seconds=0.01)
        alert(engine, acme, JO, rule="refused")
        with pytest.raises(SlackAuthError) as not_ours:
            deliver_pending(engine, refused, now=NOW)
        evidence.exception(not_ours.value)
        with pytest.raises(SlackAuthError) as auth_test:
            check_auth(refused)
        evidence.exception(auth_test.value)
    token = KNOWN_SECRETS["SLACK__BOT_TOKEN"]
    emulator = slack_app([(JO, "Jo Park")], token=token, rate_limit=None)
    emulator.state.recorder.outage(500)
    with serve(emulator) as slack_base:
        monkeypatch.setenv("SLACK__BASE_URL", f"{slack_base}/api/")
        alert(engine, acme, JO, rule="outage")
        down = deliver_pending(engine, make_slack_client(Settings(), backoff_seconds=0.01), now=NOW)
    engine.dispose()
    evidence.add(str(down))
    written = "".join(out.getvalue() for out in handler_output)
    evidence.add(written, caplog.text)
    for record in caplog.records:
        evidence.add(record.getMessage(), record.exc_text)
        if record.exc_info is not None:
            evidence.exception(record.exc_info[1])

    assert not evidence.leaks(_needles(env, server))
    # every source failed in every mode, Slack too, and it was all logged, redacted
    sources = {"hubspot", "salesforce", "zendesk", "freshdesk", "intercom", "stripe"}
    assert all(failed[mode] == sources | {"chargebee", "sql"} for mode in failed), failed
    assert down.deferred >= 1
    assert any("HTTP 500" in problem for problem in down.problems)
    loggers = {record.name.split(".")[0] for record in caplog.records}
    assert {"httpcore", "httpx", "slack_sdk", "connectors", "notifications"} <= loggers
    assert "x-echo-authorization" in caplog.text.lower()
    assert "[redacted]" in written
    assert '"source": "zendesk"' in written
    assert len(server.credentials) > 20


def test_an_echoing_slack_keeps_the_token_out_of_delivery_problems(
    echo: tuple[EchoServer, str, int], sqlite_url: str
) -> None:
    _, base, _ = echo
    engine = make_engine(sqlite_url)
    alert(engine, _jo_and_account(engine), JO)
    token = KNOWN_SECRETS["SLACK__BOT_TOKEN"]
    slack = SlackSettings(bot_token=SecretStr(token), base_url=f"{base}/garbage/slack/")
    summary = deliver_pending(engine, make_slack_client(slack, backoff_seconds=0.01), now=NOW)
    with Session(engine) as session:
        errors = [a.error or "" for a in session.exec(select(Alert))]
    engine.dispose()
    assert summary.unroutable + summary.failed == 1
    assert token not in str(summary) + "".join(errors)


def test_failing_commands_print_no_secret(
    echo: tuple[EchoServer, str, int],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, base, port = echo
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    engine = make_engine(sqlite_url)
    alert(engine, _jo_and_account(engine), JO)
    engine.dispose()
    runner = CliRunner()
    evidence = Evidence()
    database = f"postgresql+psycopg://health:{DB_PASSWORD}@127.0.0.1:{_closed_port()}/health"

    def run(args: list[str], env: dict[str, Any], code: int = 1) -> Result:
        result = runner.invoke(app, args, env=env)
        evidence.cli(result)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    refused = _env(tmp_path, base, "401", port, sqlite_url)
    synced = run(["sync"], refused)
    assert "HUBSPOT__TOKEN" in synced.stderr
    assert "salesforce refused the client credentials login" in synced.stderr
    run(["sync"], _env(tmp_path, base, "garbage", port, sqlite_url))
    checked = run(["sources", "check"], _env(tmp_path, base, "400", port, sqlite_url))
    assert "FAIL" in checked.stdout
    with serve(slack_app([(JO, "Jo Park")], rate_limit=None)) as slack_base:
        notified = run(["notify"], {**refused, "SLACK__BASE_URL": f"{slack_base}/api/"})
    assert "Slack refused the bot token (invalid_auth)" in notified.stderr
    echoed = run(["notify"], refused, code=0)  # the alert fails: Slack answered 401
    assert "unroutable 1" in echoed.stdout

    half = run(["sync"], {**refused, "ZENDESK__EMAIL": None, "ZENDESK__BASE_URL": None})
    assert "zendesk is half-configured" in half.stderr
    both = run(["sources", "list"], {**refused, "SALESFORCE__USERNAME": "api@example.com"})
    assert "SALESFORCE__CLIENT_SECRET" in both.stderr
    loud = run(["accounts"], {**refused, "LOG_LEVEL": "LOUD"})
    assert "LOG_LEVEL 'LOUD' is not a level" in loud.stderr
    invalid = run(["accounts"], {**refused, "HUBSPOT__PAGE_SIZE": "many"})
    assert "page_size" in str(invalid.exception)
    unreachable = run(["accounts"], {**refused, "DATABASE_URL": database})
    assert "127.0.0.1" in str(unreachable.exception)

    evidence.add(caplog.text, *(record.getMessage() for record in caplog.records))
    needles = _needles(refused, server) | {DB_PASSWORD}
    assert len(server.credentials) > 10
    assert not evidence.leaks(needles)
