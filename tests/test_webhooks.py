"""Vendor webhooks into `health-agent serve`: signatures checked before anything is read,
each event applied once, and only the account it is about scored and alerted.

Requests are signed by `sandbox.webhooks`, written from the vendors' documentation apart
from the agent's own checks. Every test that touches the store runs on SQLite and
PostgreSQL (the `engine` fixture).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, col, select
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner

import webapp
from cli import app as cli_app
from connectors import hubspot_webhook, stripe_webhook, zendesk_webhook
from connectors.http import ClientOptions
from connectors.webhooks import SignedRequest
from notifications import detect_alerts, load_rules
from sandbox.slack import SLACK_BOT_TOKEN, slack_app
from sandbox.webhooks import (
    hubspot_event,
    hubspot_headers,
    stripe_event,
    stripe_headers,
    zendesk_event,
    zendesk_headers,
)
from scoring import load_scorecard, score_accounts
from settings import (
    ConfigError,
    HubSpotSettings,
    Settings,
    SlackSettings,
    StripeSettings,
    ZendeskSettings,
)
from store.db import make_engine, session_scope
from store.models import (
    Account,
    Alert,
    Csm,
    ExternalLink,
    HealthScore,
    Invoice,
    QuarantinedRecord,
    Subscription,
    Ticket,
    WebhookEvent,
)
from tests.notifications.serve_world import Asgi
from tests.notifications.server import serve
from tests.notifications.test_serve import BODIES as SLACK_BODIES
from tests.scoring import seed as scoring_seed

FIXTURES = Path(__file__).parent / "fixtures" / "connectors" / "stripe"
STRIPE_SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"
HUBSPOT_SECRET = "hs-client-secret-6f1c2b7e-0000-4a8e-9d6b-1b2c3d4e5f60"
ZENDESK_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
JO = "jo@example.com"
ACME, GLOBEX = "5001", "5002"
CUSTOMER = "cus_QAcme00000001"
ORGANIZATION = "360001234567"
BASE = "http://agent"


def settings_with(
    *, stripe: bool = True, hubspot: bool = True, zendesk: bool = True, **extra: Any
) -> Settings:
    """Settings of the webhook secrets asked for (Slack off), ignoring any `.env`."""
    return Settings(
        _env_file=None,
        stripe=StripeSettings(webhook_secret=SecretStr(STRIPE_SECRET) if stripe else None),
        hubspot=HubSpotSettings(webhook_secret=SecretStr(HUBSPOT_SECRET) if hubspot else None),
        zendesk=ZendeskSettings(webhook_secret=SecretStr(ZENDESK_SECRET) if zendesk else None),
        **extra,
    )


@dataclass
class Book:
    """Two accounts of one CSM: Acme (Stripe customer and Zendesk organization) and Globex."""

    acme: int
    globex: int


def seed(engine: Engine) -> Book:
    """The CRM's accounts and owner, and the billing and helpdesk records that name Acme."""
    with session_scope(engine) as session:
        session.add(Csm(source="hubspot", external_id="o1", email=JO, name="Jo Park"))
        ids = []
        for external_id, name, domain in ((ACME, "Acme", "acme.com"), (GLOBEX, "Globex", None)):
            account = Account(
                source="hubspot",
                external_id=external_id,
                name=name,
                domain=domain,
                owner_external_id="o1",
                owner_email=JO,
                arr_minor=60_000_00,
            )
            session.add(account)
            session.flush()
            assert account.id is not None
            ids.append(account.id)
        links = (("stripe", CUSTOMER, "customer"), ("zendesk", ORGANIZATION, "organization"))
        for source, external_id, kind in links:
            session.add(
                ExternalLink(
                    source=source,
                    external_id=external_id,
                    kind=kind,
                    crm_hint=ACME,
                    account_id=ids[0],
                    status="matched",
                    method="explicit_id",
                    confidence=1.0,
                )
            )
        session.add(
            Subscription(
                source="stripe",
                external_id="sub_1Acme00000001",
                account_ref=CUSTOMER,
                account_id=ids[0],
                status="active",
                mrr_minor=5000,
                started_at=datetime.now(UTC) - timedelta(days=400),
                created_at=datetime.now(UTC) - timedelta(days=400),
            )
        )
    return Book(*ids)


def failed_invoice(created: datetime | None = None) -> dict[str, Any]:
    """A Stripe invoice whose first charge just failed, in the shape of API 2025-03-31."""
    events = json.loads((FIXTURES / "new_events.json").read_text())
    [event] = [e for e in events if e["type"] == "invoice.payment_failed"]
    invoice: dict[str, Any] = copy.deepcopy(event["data"]["object"])
    at = int((created or datetime.now(UTC) - timedelta(days=1)).timestamp())
    invoice.update(
        id="in_1AcmeFailed0001",
        customer=CUSTOMER,
        customer_email="billing@acme.com",
        customer_name="Acme",
        amount_due=50_000,
        amount_remaining=50_000,
        subtotal=50_000,
        total=50_000,
        attempt_count=1,
        created=at,
        period_start=at,
        period_end=at,
        due_date=None,
        status="open",
        status_transitions={
            "finalized_at": at,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
    )
    invoice["parent"]["subscription_details"]["subscription"] = "sub_1Acme00000001"
    return invoice


def payment_failed_body(event_id: str = "evt_1AcmeFailed0001") -> bytes:
    return stripe_event("invoice.payment_failed", failed_invoice(), event_id=event_id)


def zendesk_ticket(**changes: Any) -> dict[str, Any]:
    """A ticket as Zendesk's ticket events carry it in `detail`."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "actor_id": "8447388090494",
        "assignee_id": "8447388090494",
        "brand_id": "8447346621310",
        "created_at": now,
        "custom_status": "8447388087934",
        "description": "The export to S3 fails since this morning",
        "external_id": None,
        "form_id": "8447388081406",
        "group_id": "8447388082686",
        "id": "5158",
        "is_public": True,
        "organization_id": ORGANIZATION,
        "priority": "URGENT",
        "requester_id": "8447388090494",
        "status": "OPEN",
        "subject": "Exports failing",
        "submitter_id": "8447388090494",
        "tags": [],
        "type": "INCIDENT",
        "updated_at": now,
        "via": {"channel": "web_service"},
        **changes,
    }


Signer = Callable[[str], tuple[str, bytes, dict[str, str]]]
"""case -> (path, body, headers) of a request signed (or not) for that case."""


def _stripe(case: str) -> tuple[str, bytes, dict[str, str]]:
    body = payment_failed_body()
    stamp = int(time.time()) - (360 if case == "stale" else 0)
    secret = "whsec_someone_else" if case == "wrong_secret" else STRIPE_SECRET
    headers = stripe_headers(body, secret, timestamp=stamp)
    return "/webhooks/stripe", *_finish(case, body, headers, "Stripe-Signature")


def _hubspot(case: str) -> tuple[str, bytes, dict[str, str]]:
    change = hubspot_event("company.propertyChange", int(ACME), occurred_at=1_767_225_600_000)
    body = json.dumps([change]).encode()
    stamp = int(time.time() * 1000) - (360_000 if case == "stale" else 0)
    secret = "another-client-secret" if case == "wrong_secret" else HUBSPOT_SECRET
    uri = f"{BASE}/webhooks/hubspot"
    headers = hubspot_headers("POST", uri, body, secret, timestamp_ms=stamp)
    return "/webhooks/hubspot", *_finish(case, body, headers, "X-HubSpot-Signature-v3")


def _zendesk(case: str) -> tuple[str, bytes, dict[str, str]]:
    body = zendesk_event("zen:event-type:ticket.created", zendesk_ticket(), event_id="zd-1")
    at = datetime.now(UTC) - timedelta(seconds=360 if case == "stale" else 0)
    secret = "c29tZW9uZSBlbHNl" if case == "wrong_secret" else ZENDESK_SECRET
    headers = zendesk_headers(body, secret, timestamp=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return "/webhooks/zendesk", *_finish(case, body, headers, "X-Zendesk-Webhook-Signature")


def _finish(
    case: str, body: bytes, headers: dict[str, str], signature: str
) -> tuple[bytes, dict[str, str]]:
    if case == "tampered":
        changed = body.replace(b"5", b"6", 1)
        assert changed != body
        return changed, headers
    if case == "missing":
        return body, {k: v for k, v in headers.items() if k != signature}
    return body, headers


SIGNERS: dict[str, Signer] = {"stripe": _stripe, "hubspot": _hubspot, "zendesk": _zendesk}


def signed(vendor: str, case: str = "valid") -> tuple[str, bytes, dict[str, str]]:
    return SIGNERS[vendor](case)


@pytest.fixture
def book(engine: Engine) -> Book:
    return seed(engine)


@pytest.fixture
def agent(engine: Engine, book: Book) -> Asgi:
    """The app as `health-agent serve` builds it, with every webhook secret set, no Slack."""
    return Asgi(webapp.create_web_app(engine, settings_with()))


def post(agent: Asgi, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return agent.post(path, content=body, headers=headers)


def _count(session: Session, model: type[SQLModel]) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def state(engine: Engine) -> dict[str, Any]:
    """Everything a webhook could change, row by row."""
    with Session(engine) as session:
        counts = {
            m.__name__: _count(session, m)
            for m in (WebhookEvent, Invoice, Ticket, HealthScore, Alert, QuarantinedRecord)
        }
        subscriptions = session.exec(select(Subscription.status, Subscription.mrr_minor)).all()
        scores = session.exec(select(HealthScore.account_id, HealthScore.computed_at)).all()
        accounts = session.exec(select(Account.name, Account.lifecycle_stage)).all()
    return {
        **counts,
        "subscriptions": sorted(map(tuple, subscriptions)),
        "scores": sorted(map(tuple, scores)),
        "accounts": sorted(map(tuple, accounts)),
    }


# Signatures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["stripe", "hubspot", "zendesk"])
@pytest.mark.parametrize("case", ["tampered", "stale", "missing", "wrong_secret"])
def test_unverified_requests_get_401_and_change_nothing(
    engine: Engine, agent: Asgi, vendor: str, case: str
) -> None:
    before = state(engine)
    response = post(agent, *signed(vendor, case))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert state(engine) == before


@pytest.mark.parametrize("vendor", ["stripe", "hubspot", "zendesk"])
def test_a_signed_event_is_recorded_once(engine: Engine, agent: Asgi, vendor: str) -> None:
    response = post(agent, *signed(vendor))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "received": 1, "new": 1}
    with Session(engine) as session:
        [event] = session.exec(select(WebhookEvent)).all()
    assert (event.source, event.error) == (vendor, None)
    assert event.processed_at is not None


def test_an_unsigned_body_is_never_parsed(engine: Engine, agent: Asgi) -> None:
    before = state(engine)
    garbage = b"\xff{not json at all"
    assert post(agent, "/webhooks/stripe", garbage, {}).status_code == 401
    headers = stripe_headers(garbage, STRIPE_SECRET)
    response = post(agent, "/webhooks/stripe", garbage, headers)
    assert (response.status_code, response.json()["error"]) == (400, "not_an_event")
    assert state(engine) == before


def test_stripe_accepts_any_of_several_v1_signatures() -> None:
    body = payment_failed_body()
    now = datetime.now(UTC)
    rolled = stripe_headers(body, STRIPE_SECRET, extra_secrets=("whsec_old_secret_being_rolled",))
    assert rolled["Stripe-Signature"].count("v1=") == 2
    request = SignedRequest("POST", f"{BASE}/webhooks/stripe", _lower(rolled), body)
    assert stripe_webhook.verify(request, STRIPE_SECRET, now)
    assert stripe_webhook.verify(request, "whsec_old_secret_being_rolled", now)
    assert not stripe_webhook.verify(request, "whsec_neither", now)
    assert not stripe_webhook.verify(request, STRIPE_SECRET, now + timedelta(seconds=301))
    assert not stripe_webhook.verify(request, STRIPE_SECRET, now - timedelta(seconds=301))
    v0_only = {"stripe-signature": rolled["Stripe-Signature"].replace("v1=", "v0=")}
    assert not stripe_webhook.verify(SignedRequest("POST", "", v0_only, body), STRIPE_SECRET, now)


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_hubspot_signs_the_full_uri_with_its_encoded_characters_decoded() -> None:
    body = json.dumps([hubspot_event("company.creation", 42)]).encode()
    uri = "https://agent.example.com/webhooks/hubspot?portal=62515&note=a%3Ab%2Cc%20d"
    assert hubspot_webhook.signed_uri(uri).endswith("note=a:b,c%20d")
    request = SignedRequest("POST", uri, _lower(hubspot_headers("POST", uri, body, "s3")), body)
    now = datetime.now(UTC)
    assert hubspot_webhook.verify(request, "s3", now)
    for other in (uri.replace("https", "http"), uri.replace("62515", "62516")):
        moved = SignedRequest("POST", other, request.headers, body)
        assert not hubspot_webhook.verify(moved, "s3", now)
    assert not hubspot_webhook.verify(SignedRequest("PUT", uri, request.headers, body), "s3", now)
    assert not hubspot_webhook.verify(request, "s3", now + timedelta(minutes=6))


def test_zendesk_signs_the_timestamp_and_the_body() -> None:
    body = zendesk_event("zen:event-type:ticket.created", zendesk_ticket())
    now = datetime.now(UTC)
    headers = _lower(zendesk_headers(body, ZENDESK_SECRET))
    request = SignedRequest("POST", f"{BASE}/webhooks/zendesk", headers, body)
    assert zendesk_webhook.verify(request, ZENDESK_SECRET, now)
    odd = {**headers, "x-zendesk-webhook-signature-timestamp": "yesterday"}
    assert not zendesk_webhook.verify(SignedRequest("POST", "", odd, body), ZENDESK_SECRET, now)
    assert not zendesk_webhook.verify(request, ZENDESK_SECRET, now + timedelta(minutes=6))


# Configuration -------------------------------------------------------------------------------


def test_a_route_without_its_secret_answers_503_and_reads_nothing(
    engine: Engine, book: Book
) -> None:
    agent = Asgi(webapp.create_web_app(engine, settings_with(zendesk=False, hubspot=False)))
    before = state(engine)
    response = post(agent, *signed("zendesk"))
    assert response.status_code == 503
    assert response.json() == {
        "ok": False,
        "error": "not_configured",
        "message": "zendesk webhooks are not set up here: set ZENDESK__WEBHOOK_SECRET to "
        "receive them",
    }
    assert state(engine) == before
    assert post(agent, *signed("stripe")).status_code == 200
    assert agent.get("/healthz").json() == {"ok": True, "database": "reachable"}
    metrics = agent.get("/metrics")
    assert metrics.status_code == 200
    assert "\nhealth_agent_alerts_pending " in metrics.text  # the alerts the event raised
    assert agent.post("/slack/actions").status_code == 404  # Slack is not configured


def test_slack_alone_is_enough_and_its_routes_stay_as_they_were(engine: Engine) -> None:
    slack = SlackSettings(
        bot_token=SecretStr(SLACK_BOT_TOKEN),
        signing_secret=SecretStr("8f742231b10e8888abcd99yyyzzz85a5"),
        base_url="http://127.0.0.1:9/api/",
    )
    settings = settings_with(stripe=False, hubspot=False, zendesk=False, slack=slack)
    agent = Asgi(webapp.create_web_app(engine, settings))
    assert agent.post("/slack/actions", content=b"payload=%7B%7D").status_code == 401
    assert agent.get("/slack/commands").status_code == 405
    assert post(agent, *signed("stripe")).status_code == 503
    assert webapp.listening(settings, "http://h:1") == (
        "answering Slack at http://h:1/slack/actions and /slack/commands "
        "(health check: /healthz, metrics: /metrics); Ctrl-C stops"
    )


def test_the_app_refuses_to_start_with_nothing_to_serve(sqlite_url: str) -> None:
    nothing = settings_with(stripe=False, hubspot=False, zendesk=False)
    with pytest.raises(ConfigError) as refused:
        webapp.create_web_app(make_engine(sqlite_url), nothing)
    message = str(refused.value)
    assert "SLACK__SIGNING_SECRET is not set" in message
    for variable in (
        "STRIPE__WEBHOOK_SECRET",
        "HUBSPOT__WEBHOOK_SECRET",
        "ZENDESK__WEBHOOK_SECRET",
    ):
        assert variable in message
    env = {
        "DATABASE_URL": sqlite_url,
        "SLACK__SIGNING_SECRET": "",
        "SLACK__BOT_TOKEN": "",
        "STRIPE__WEBHOOK_SECRET": "",
        "HUBSPOT__WEBHOOK_SECRET": "",
        "ZENDESK__WEBHOOK_SECRET": "",
    }
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"], env=env)
    assert result.exit_code == 1
    assert "nothing to serve" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_listening_line_names_what_is_served() -> None:
    line = webapp.listening(settings_with(hubspot=False), "http://127.0.0.1:8080")
    assert line == (
        "answering webhooks at http://127.0.0.1:8080/webhooks/stripe, /webhooks/zendesk "
        "(health check: /healthz, metrics: /metrics); Ctrl-C stops"
    )


def test_secrets_never_reach_answers_or_logs(
    engine: Engine, agent: Asgi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [post(agent, *signed(v, c)).text for v in SIGNERS for c in ("valid", "tampered")]
    said = "\n".join([*answers, caplog.text])
    for secret in (STRIPE_SECRET, HUBSPOT_SECRET, ZENDESK_SECRET):
        assert secret not in said
    assert "refused a request to /webhooks/stripe" in caplog.text


# What an event does --------------------------------------------------------------------------


def test_a_failed_payment_scores_and_alerts_its_account_only(
    engine: Engine, agent: Asgi, book: Book
) -> None:
    assert post(agent, *signed("stripe")).status_code == 200
    with Session(engine) as session:
        invoice = session.exec(select(Invoice)).one()
        scores = session.exec(select(HealthScore)).all()
        alerts = session.exec(select(Alert).where(col(Alert.rule) == "payment_failed")).all()
        event = session.exec(select(WebhookEvent)).one()
    assert (invoice.source, invoice.external_id, invoice.status) == (
        "stripe",
        "in_1AcmeFailed0001",
        "open",
    )
    assert (invoice.account_id, invoice.amount_remaining_minor) == (book.acme, 50_000)
    assert (event.kind, event.account_id) == ("invoice.payment_failed", book.acme)
    assert [(s.account_id, s.as_of) for s in scores] == [(book.acme, date.today())]
    [alert] = alerts
    assert (alert.account_id, alert.recipient_email, alert.status) == (book.acme, JO, "pending")
    assert alert.text == "Acme: invoice payment failed"


@pytest.mark.parametrize("vendor", ["stripe", "hubspot", "zendesk"])
def test_a_replayed_event_changes_nothing(engine: Engine, agent: Asgi, vendor: str) -> None:
    path, body, headers = signed(vendor)
    assert post(agent, path, body, headers).json()["new"] == 1
    after_first = state(engine)
    again = signed(vendor)  # signed afresh, as vendors do on each attempt
    response = post(agent, *again)
    assert (response.status_code, response.json()) == (200, {"ok": True, "received": 1, "new": 0})
    assert state(engine) == after_first


def test_a_batch_records_each_event_once(engine: Engine, agent: Asgi) -> None:
    first = hubspot_event("company.propertyChange", int(ACME), event_id=7, occurredAt=1)
    second = hubspot_event("company.propertyChange", int(ACME), event_id=7, occurredAt=2)
    body = json.dumps([first, second, first]).encode()
    uri = f"{BASE}/webhooks/hubspot"
    response = post(
        agent, "/webhooks/hubspot", body, hubspot_headers("POST", uri, body, HUBSPOT_SECRET)
    )
    assert response.json() == {"ok": True, "received": 3, "new": 2}
    body = json.dumps([second]).encode()
    response = post(
        agent, "/webhooks/hubspot", body, hubspot_headers("POST", uri, body, HUBSPOT_SECRET)
    )
    assert response.json() == {"ok": True, "received": 1, "new": 0}


def test_a_subscription_event_keeps_the_mrr_it_cannot_compute(engine: Engine, agent: Asgi) -> None:
    events = json.loads((FIXTURES / "new_events.json").read_text())
    [event] = [e for e in events if e["type"] == "customer.subscription.updated"]
    subscription = copy.deepcopy(event["data"]["object"])
    subscription.update(
        id="sub_1Acme00000001", customer=CUSTOMER, status="past_due", discounts=["di_1AcmeCoupon"]
    )
    body = stripe_event("customer.subscription.updated", subscription, event_id="evt_sub_1")
    assert post(agent, "/webhooks/stripe", body, stripe_headers(body, STRIPE_SECRET)).is_success
    with Session(engine) as session:
        stored = session.exec(select(Subscription)).one()
    assert (stored.status, stored.mrr_minor) == ("past_due", 5000)


def test_an_event_that_cannot_be_mapped_is_quarantined(engine: Engine, agent: Asgi) -> None:
    broken = {**failed_invoice(), "status": None}
    body = stripe_event("invoice.payment_failed", broken, event_id="evt_broken")
    assert post(agent, "/webhooks/stripe", body, stripe_headers(body, STRIPE_SECRET)).is_success
    with Session(engine) as session:
        [kept] = session.exec(select(QuarantinedRecord)).all()
        event = session.exec(select(WebhookEvent)).one()
        invoices = _count(session, Invoice)
    assert (kept.source, kept.stream, kept.record_key) == ("stripe", "webhooks", "evt_broken")
    assert "has no status" in kept.reason
    assert kept.payload["data"]["object"]["id"] == "in_1AcmeFailed0001"
    assert event.processed_at is None
    assert event.error is not None
    assert event.error.startswith("quarantined: ")
    assert invoices == 0


def test_an_event_that_failed_here_is_processed_again_when_sent_again(
    engine: Engine, agent: Asgi
) -> None:
    """A resend (the vendor's dashboard, after a fix) of an event whose processing failed
    here is processed once more; one processed already, or in progress, is not."""
    broken = stripe_event(
        "invoice.payment_failed", {**failed_invoice(), "status": None}, event_id="evt_x"
    )
    assert (
        post(agent, "/webhooks/stripe", broken, stripe_headers(broken, STRIPE_SECRET)).json()["new"]
        == 1
    )
    fixed = stripe_event("invoice.payment_failed", failed_invoice(), event_id="evt_x")
    again = post(agent, "/webhooks/stripe", fixed, stripe_headers(fixed, STRIPE_SECRET))
    assert again.json() == {"ok": True, "received": 1, "new": 1}
    with Session(engine) as session:
        event = session.exec(select(WebhookEvent)).one()
        invoices = _count(session, Invoice)
    assert (event.error, invoices) == (None, 1)
    assert event.processed_at is not None
    third = post(agent, "/webhooks/stripe", fixed, stripe_headers(fixed, STRIPE_SECRET))
    assert third.json()["new"] == 0


def test_zendesk_ticket_events_update_the_ticket_and_keep_what_they_do_not_carry(
    engine: Engine, agent: Asgi, book: Book
) -> None:
    created = zendesk_event("zen:event-type:ticket.created", zendesk_ticket(), event_id="zd-1")
    assert post(
        agent, "/webhooks/zendesk", created, zendesk_headers(created, ZENDESK_SECRET)
    ).is_success
    with session_scope(engine) as session:
        ticket = session.exec(select(Ticket)).one()
        assert (ticket.status, ticket.priority, ticket.account_id) == ("open", "urgent", book.acme)
        ticket.satisfaction = "bad"
        session.add(ticket)
    detail = {k: v for k, v in zendesk_ticket(status="SOLVED").items() if k != "subject"}
    solved = zendesk_event("zen:event-type:ticket.status_changed", detail, event_id="zd-2")
    assert post(
        agent, "/webhooks/zendesk", solved, zendesk_headers(solved, ZENDESK_SECRET)
    ).is_success
    deleted = zendesk_event("zen:event-type:ticket.soft_deleted", detail, event_id="zd-3")
    with Session(engine) as session:
        ticket = session.exec(select(Ticket)).one()
    assert (ticket.status, ticket.subject, ticket.satisfaction) == (
        "solved",
        "Exports failing",
        "bad",
    )
    assert ticket.deleted_at is None
    assert post(
        agent, "/webhooks/zendesk", deleted, zendesk_headers(deleted, ZENDESK_SECRET)
    ).is_success
    with Session(engine) as session:
        ticket = session.exec(select(Ticket)).one()
    assert (ticket.status, ticket.deleted_at is not None) == ("deleted", True)


def _company(request: httpx.Request) -> httpx.Response:
    assert request.url.path == f"/crm/v3/objects/companies/{ACME}"
    assert "lifecyclestage" in request.url.params["properties"].split(",")
    assert request.headers["authorization"] == "Bearer pat-na1-test"
    properties = {
        "name": "Acme Robotics",
        "domain": "acme.com",
        "hubspot_owner_id": "o1",
        "lifecyclestage": "customer",
        "createdate": "2024-01-05T10:00:00Z",
        "hs_lastmodifieddate": datetime.now(UTC).isoformat(),
    }
    company = {"id": ACME, "properties": properties, "archived": False}
    return httpx.Response(200, json={**company, "createdAt": "2024-01-05T10:00:00Z"})


def test_a_changed_company_is_read_again_with_the_token(engine: Engine, book: Book) -> None:
    settings = settings_with(hubspot=True)
    settings.hubspot.token = SecretStr("pat-na1-test")
    options = ClientOptions(transport=httpx.MockTransport(_company), sleep=lambda _s: None)
    routes = (webapp.health_routes, partial(webapp.webhook_routes, client=options))
    agent = Asgi(webapp.create_web_app(engine, settings, route_lists=routes))
    assert post(agent, *signed("hubspot")).json()["new"] == 1
    with Session(engine) as session:
        acme = session.get(Account, book.acme)
        event = session.exec(select(WebhookEvent)).one()
    assert acme is not None
    assert (acme.name, acme.lifecycle_stage) == ("Acme Robotics", "customer")
    assert (event.account_id, event.error) == (book.acme, None)


def test_without_the_token_a_company_change_waits_for_the_sync(engine: Engine, agent: Asgi) -> None:
    before = state(engine)
    assert post(agent, *signed("hubspot")).json()["new"] == 1
    after = state(engine)
    assert after["WebhookEvent"] == before["WebhookEvent"] + 1
    assert {k: v for k, v in after.items() if k != "WebhookEvent"} == {
        k: v for k, v in before.items() if k != "WebhookEvent"
    }


# The follow-up's account filter --------------------------------------------------------------

PERCENTILE_CARD = (Path(__file__).parent.parent / "scoring" / "default_scorecard.toml").read_text()


def test_scoring_some_accounts_ranks_them_among_every_peer(engine: Engine, tmp_path: Path) -> None:
    linear = 'normalise = { kind = "linear", good = 0.8, bad = 0.2 }'
    assert linear in PERCENTILE_CARD, "the seat utilisation measure moved: update the test"
    path = tmp_path / "card.toml"
    path.write_text(PERCENTILE_CARD.replace(linear, 'normalise = { kind = "percentile" }'))
    card = load_scorecard(path)
    with session_scope(engine) as session:
        ids = [scoring_seed.account(session, f"A{n}", segment="Enterprise") for n in range(6)]
        for n, account_id in enumerate(ids):
            scoring_seed.subscription(session, account_id)
            for week in range(1, 13):
                scoring_seed.usage(session, account_id, scoring_seed.weeks_back(week), 4 + 6 * n)
    one = score_accounts(engine, scoring_seed.AS_OF, card, account_ids=[ids[2], 10_000])
    assert (one.accounts, one.scored) == (1, 1)
    with Session(engine) as session:
        alone = session.exec(select(HealthScore)).all()
    assert [s.account_id for s in alone] == [ids[2]]
    score_accounts(engine, scoring_seed.AS_OF, card)
    with Session(engine) as session:
        everyone = {s.account_id: s for s in session.exec(select(HealthScore)).all()}
    assert len(everyone) == 6
    assert everyone[ids[2]].components == alone[0].components  # same peers, same rank


def test_detecting_for_some_accounts_alerts_only_them(engine: Engine) -> None:
    with session_scope(engine) as session:
        ids = [scoring_seed.account(session, name) for name in ("Late", "Also late")]
        for account_id in ids:
            scoring_seed.subscription(session, account_id)
            scoring_seed.invoice(
                session,
                account_id,
                scoring_seed.ago(3),
                status="open",
                attempt_count=1,
                amount_remaining_minor=100_00,
            )
    score_accounts(engine, scoring_seed.AS_OF)
    rules = load_rules()
    found = detect_alerts(engine, scoring_seed.AS_OF, rules, account_ids=[ids[1]])
    assert found.found["payment_failed"] == 1
    with Session(engine) as session:
        alerted = {a.account_id for a in session.exec(select(Alert)).all()}
    assert alerted == {ids[1]}
    assert detect_alerts(engine, scoring_seed.AS_OF, rules, account_ids=[ids[1]]).created == 0
    everyone = detect_alerts(engine, scoring_seed.AS_OF, rules)
    assert everyone.new["payment_failed"] == 1  # the other account's, not the first again


class _Gate:
    """Holds the Slack emulator's `chat.postMessage` until `open` is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open = threading.Event()
        self.reached = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat.postMessage"):
            self.reached.set()
            await anyio.to_thread.run_sync(self.open.wait)
        await self.app(scope, receive, send)


def test_the_answer_goes_out_before_the_alert_is_sent(engine: Engine, book: Book) -> None:
    emulator = slack_app([(JO, "Jo Park")], rate_limit=None)
    gate = _Gate(emulator)
    recorder = emulator.state.recorder
    with serve(gate) as slack_url:
        settings = settings_with(
            slack=SlackSettings(bot_token=SecretStr(SLACK_BOT_TOKEN), base_url=f"{slack_url}/api/")
        )
        try:
            with serve(webapp.create_web_app(engine, settings)) as agent_url:
                body = payment_failed_body()
                headers = stripe_headers(body, STRIPE_SECRET)
                response = httpx.post(f"{agent_url}/webhooks/stripe", content=body, headers=headers)
                assert response.json()["new"] == 1  # answered...
                assert gate.reached.wait(30)  # ...while the DM is still being sent
                assert recorder.messages == []
                gate.open.set()
                deadline = time.monotonic() + 30
                while not recorder.messages and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            gate.open.set()
    assert recorder.messages[0]["text"].startswith("Acme: invoice payment failed")


def test_every_endpoint_that_takes_a_post_has_its_signature_tests(sqlite_url: str) -> None:
    """A new POST endpoint fails here until its signed-request tests exist: the Slack ones in
    tests/notifications/test_serve.py (`BODIES`), the vendors' in `SIGNERS` above."""
    slack = SlackSettings(
        bot_token=SecretStr(SLACK_BOT_TOKEN),
        signing_secret=SecretStr("8f742231b10e8888abcd99yyyzzz85a5"),
        base_url="http://127.0.0.1:9/api/",
    )
    app = webapp.create_web_app(make_engine(sqlite_url), settings_with(slack=slack))
    posts = {
        route.path
        for route in app.routes
        if isinstance(route, Route) and "POST" in (route.methods or ())
    }
    tested = set(SLACK_BODIES) | {f"/webhooks/{vendor}" for vendor in SIGNERS}
    assert posts == tested


def test_behind_a_proxy_the_signed_url_is_the_public_one(engine: Engine, book: Book) -> None:
    """HubSpot signs the URL it called; a proxy that rewrites Host sends another one here."""
    change = hubspot_event("company.propertyChange", int(ACME), occurred_at=1_767_225_600_000)
    body = json.dumps([change]).encode()
    public = "https://health.example.com"
    headers = hubspot_headers("POST", f"{public}/webhooks/hubspot", body, HUBSPOT_SECRET)
    as_is = Asgi(webapp.create_web_app(engine, settings_with()))
    assert post(as_is, "/webhooks/hubspot", body, headers).status_code == 401
    behind = Asgi(webapp.create_web_app(engine, settings_with(public_url=public + "/")))
    assert post(behind, "/webhooks/hubspot", body, headers).status_code == 200
