"""`health-agent serve`: one web app for Slack, the vendors' webhooks and the health check.

The app is made of route lists, each a function `(engine, settings) -> list[BaseRoute]`;
`ROUTE_LISTS` names the ones served, so adding a part (a metrics endpoint, say) is one more
entry there. Today:

    GET  /healthz             whether the database answers (notifications.serve)
    GET  /metrics             Prometheus metrics read from the store (status.metrics)
    POST /slack/actions       Slack buttons and forms, when SLACK__SIGNING_SECRET is set
    POST /slack/commands      /health and /sentiment, likewise
    POST /webhooks/<source>   one route per vendor webhook of `connectors.webhooks`
                              (billing, CRM, helpdesk), each with its own secret setting

At least Slack or one webhook must be configured, or the app refuses to start. A webhook
route whose secret is not set answers 503 `not_configured`, naming the variable to set, and
reads nothing: such a route never accepts an unsigned event, and the vendor retries the
delivery until the route is configured.

A webhook request's signature is checked on the raw body before anything in it is read
(see each vendor's module in `connectors/`): a missing, tampered or stale signature gets 401
and changes nothing. A verified delivery's events are recorded by id at once (a replay gets
200 and changes nothing), and the answer goes out. Then, in the background and one delivery
at a time, the new events' records are written and matched to accounts, and those accounts
only are scored, checked against the alert rules, and their due alerts sent to Slack (when
Slack is configured; otherwise they wait for `health-agent notify`).

Some vendors sign the URL they called, which is rebuilt from the request: behind a reverse
proxy, keep the `Host` header and send `X-Forwarded-Proto` (uvicorn trusts it from the
addresses in FORWARDED_ALLOW_IPS), or set PUBLIC_URL to the address the vendors call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from slack_sdk import WebClient
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import status
from connectors.errors import MappingError, scrub
from connectors.http import ClientOptions
from connectors.webhooks import (
    SignedRequest,
    VendorEvent,
    WebhookSource,
    apply_events,
    record_new,
    webhook_sources,
)
from notifications import deliver_pending, detect_alerts, load_rules, make_slack_client, serve
from notifications.rules import RuleSet
from notifications.serve_context import make_context
from scoring import score_accounts
from scoring.selection import ScorecardSet, load_scorecards
from settings import ConfigError, Settings
from store.types import utcnow

__all__ = [
    "MAX_WEBHOOK_BYTES",
    "ROUTE_LISTS",
    "Receiver",
    "RouteList",
    "create_web_app",
    "health_routes",
    "listening",
    "slack_routes",
    "webhook_routes",
]

log = logging.getLogger(__name__)

RouteList = Callable[[Engine, Settings], list[BaseRoute]]
MAX_WEBHOOK_BYTES = 4_000_000
"""Vendors' event payloads are kilobytes; a body this large is refused unread."""


def _slack_configured(settings: Settings) -> bool:
    secret = settings.slack.signing_secret
    return secret is not None and bool(secret.get_secret_value().strip())


# Route lists ---------------------------------------------------------------------------------


def health_routes(engine: Engine, settings: Settings) -> list[BaseRoute]:
    """`GET /healthz`."""
    return serve.health_routes(engine)


def slack_routes(engine: Engine, settings: Settings) -> list[BaseRoute]:
    """Slack's buttons, forms and slash commands; none when SLACK__SIGNING_SECRET is unset."""
    if not _slack_configured(settings):
        return []
    secret = serve.required(settings.slack.signing_secret, "SLACK__SIGNING_SECRET", "Slack")
    context = make_context(engine, settings, make_slack_client(settings))
    return serve.slack_routes(context, secret)


@dataclass
class Receiver:
    """What a new delivery's events set off, after the answer: one delivery at a time."""

    engine: Engine
    settings: Settings
    scorecards: ScorecardSet
    rules: RuleSet
    slack: WebClient | None
    today: Callable[[], date] = date.today
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    """Deliveries take turns; one waiting for its turn holds no worker thread."""

    async def process(self, hook: WebhookSource, events: Sequence[VendorEvent]) -> None:
        """After the answer: the events' records, then their accounts' scores and alerts."""
        async with self._turn:
            await run_in_threadpool(self.apply, hook, events)

    def apply(self, hook: WebhookSource, events: Sequence[VendorEvent]) -> None:
        """Write the events' records, then score, check and notify their accounts."""
        try:
            outcomes = apply_events(self.engine, hook, events, utcnow(), self._secrets())
            accounts = sorted({a for outcome in outcomes for a in outcome.account_ids})
            if accounts:
                self.follow_up(accounts)
        except Exception as exc:  # a background task has nobody to raise to: log it
            log.error("%s webhook: %s", hook.source, self._scrubbed(exc))

    def follow_up(self, account_ids: Sequence[int]) -> None:
        """Score these accounts as of today, detect their alerts, deliver what is due."""
        day = self.today()
        score_accounts(self.engine, day, self.scorecards, account_ids=account_ids)
        found = detect_alerts(
            self.engine,
            day,
            self.rules,
            account_ids=account_ids,
            stale_after=self.settings.stale_after,
        )
        log.info("webhook follow-up for accounts %s: %s", account_ids, found.describe())
        if self.slack is not None:
            delivery = deliver_pending(
                self.engine,
                self.slack,
                admin_channel=self.settings.slack.admin_channel,
                settings=self.settings.alerts,
            )
            for problem in delivery.problems:
                log.warning("%s", problem)

    def _secrets(self) -> list[str]:
        return self.settings.secrets()

    def _scrubbed(self, exc: Exception) -> str:
        return scrub(f"{type(exc).__name__}: {exc}", self._secrets())


def _uri(request: Request, public_url: str | None = None) -> str:
    """The URI as the client sent it: scheme, host, then path and query still encoded; with
    `public_url` (PUBLIC_URL), its scheme and host in place of the request's."""
    scope = request.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    path: str = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
    if public_url:
        return public_url.rstrip("/") + path
    host = request.headers.get("host", "")
    return f"{scope.get('scheme', 'http')}://{host}{path}"


def _answer(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error, "message": message}, status_code=status)


def _endpoint(
    hook: WebhookSource,
    receiver: Receiver | None,
    clock: Callable[[], datetime],
    public_url: str | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    what = hook.source

    async def receive(request: Request) -> Response:
        if receiver is None or not hook.configured():
            message = f"{what} webhooks are not set up here: set {hook.variable} to receive them"
            return _answer(503, "not_configured", message)
        body = await serve.read_body(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return _answer(413, "too_large", f"bodies of more than {MAX_WEBHOOK_BYTES} bytes")
        headers = {name.lower(): value for name, value in request.headers.items()}
        signed = SignedRequest(request.method, _uri(request, public_url), headers, body)
        if not hook.verified(signed, clock()):
            log.warning("refused a request to %s: no valid signature", request.url.path)
            return _answer(401, "invalid_signature", f"not signed by {what}, or too old")
        try:
            events = hook.parse(body)
        except MappingError as exc:
            log.warning("%s webhook: %s", hook.source, exc)
            return _answer(400, "not_an_event", str(exc))
        new = await run_in_threadpool(record_new, receiver.engine, hook.source, events, clock())
        later = BackgroundTask(receiver.process, hook, new) if new else None
        answer = {"ok": True, "received": len(events), "new": len(new)}
        return JSONResponse(answer, background=later)

    return receive


def webhook_routes(
    engine: Engine,
    settings: Settings,
    *,
    client: ClientOptions | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[BaseRoute]:
    """`POST /webhooks/<source>` for every vendor, configured or not (see the docstring)."""
    hooks = webhook_sources(settings, client)
    receiver = None
    if any(hook.configured() for hook in hooks):  # scorecards and rules are read once, here
        slack = make_slack_client(settings) if settings.slack.enabled() else None
        scorecards = load_scorecards(settings.scorecard_path)
        receiver = Receiver(
            engine, settings, scorecards, load_rules(settings.alerts.rules_path), slack
        )
    url = settings.public_url
    return [
        Route(hook.path, _endpoint(hook, receiver, clock, url), methods=["POST"]) for hook in hooks
    ]


ROUTE_LISTS: tuple[RouteList, ...] = (
    health_routes,
    status.routes,
    slack_routes,
    webhook_routes,
)
"""What `health-agent serve` answers; each entry adds its routes to the one app."""


def _check_something_to_serve(settings: Settings) -> None:
    hooks = webhook_sources(settings)
    if not _slack_configured(settings) and not any(hook.configured() for hook in hooks):
        variables = ", ".join(hook.variable for hook in hooks)
        raise ConfigError(
            "SLACK__SIGNING_SECRET is not set, and no webhook secret is either "
            f"({variables}): nothing to serve; add the Slack app's signing secret or a "
            "webhook secret to .env or the environment, or use --socket-mode with "
            "SLACK__APP_TOKEN"
        )


def create_web_app(
    engine: Engine, settings: Settings, route_lists: Sequence[RouteList] = ROUTE_LISTS
) -> Starlette:
    """The app of `route_lists`; a ConfigError when neither Slack nor a webhook is set up."""
    _check_something_to_serve(settings)
    return Starlette(routes=[route for routes in route_lists for route in routes(engine, settings)])


def listening(settings: Settings, base_url: str) -> str:
    """One line saying what the app answers at `base_url`."""
    parts = []
    if _slack_configured(settings):
        parts.append(f"Slack at {base_url}/slack/actions and /slack/commands")
    hooks = [hook.path for hook in webhook_sources(settings) if hook.configured()]
    if hooks:
        parts.append(f"webhooks at {base_url}{hooks[0]}" + "".join(f", {p}" for p in hooks[1:]))
    checks = "health check: /healthz, metrics: /metrics"
    return f"answering {'; '.join(parts)} ({checks}); Ctrl-C stops"
