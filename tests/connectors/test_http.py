"""The HTTP layer: auth headers, retries and their waits, quota pacing, error mapping."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from connectors.base import Request
from connectors.errors import AuthError, FatalError, RetriableError
from connectors.http import (
    USER_AGENT,
    BasicAuth,
    BearerAuth,
    ClientOptions,
    HttpClient,
    HttpSource,
    QuotaHeaders,
    RateLimiter,
    RequestBudget,
    RetryPolicy,
    retry_after_seconds,
)

SECRET = "sk-secret-123456789"
Handler = Callable[[httpx.Request], httpx.Response]


def _client(
    handler: Handler,
    sleeps: list[float],
    *,
    quotas: tuple[QuotaHeaders, ...] = (),
    retry: RetryPolicy | None = None,
    auth: httpx.Auth | None = None,
    no_retry_header: tuple[str, str] | None = None,
) -> HttpClient:
    source = HttpSource(
        source="acme",
        base_url="https://api.acme.test",
        auth=auth or BearerAuth(SecretStr(SECRET)),
        credential="the token",
        settings_hint="ACME__TOKEN",
        secrets=(SecretStr(SECRET),),
        quotas=quotas,
        no_retry_header=no_retry_header,
    )
    options = ClientOptions(
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        retry=retry or RetryPolicy(attempts=4),
    )
    return HttpClient(source, options)


def _sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


GET = Request("GET", "/v1/things", {"limit": 2})


def test_bearer_auth_and_user_agent() -> None:
    handler, seen = _sequence(httpx.Response(200, json={"ok": True}))
    assert _client(handler, []).fetch(GET) == {"ok": True}
    assert seen[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert seen[0].url.params["limit"] == "2"


def test_basic_auth_uses_email_token_form() -> None:
    handler, seen = _sequence(httpx.Response(200, json={}))
    auth = BasicAuth("agent@example.com/token", SecretStr("zd-token"))
    _client(handler, [], auth=auth).fetch(GET)
    expected = base64.b64encode(b"agent@example.com/token:zd-token").decode()
    assert seen[0].headers["Authorization"] == f"Basic {expected}"
    assert "zd-token" not in repr(auth)


def test_post_sends_json_body() -> None:
    handler, seen = _sequence(httpx.Response(200, json={}))
    _client(handler, []).fetch(Request("POST", "/search", json={"limit": 5}))
    assert seen[0].method == "POST"
    assert seen[0].content == b'{"limit":5}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 10 Jun 2025 12:00:30 GMT", 30.0),
        ("Wed, 10 Jun 2025 11:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    now = datetime(2025, 6, 10, 12, tzinfo=UTC)
    assert retry_after_seconds(value, now) == expected


def test_429_waits_exactly_retry_after_and_retries() -> None:
    handler, seen = _sequence(
        httpx.Response(429, headers={"Retry-After": "12"}, json={}),
        httpx.Response(200, json={"ok": 1}),
    )
    sleeps: list[float] = []
    assert _client(handler, sleeps).fetch(GET) == {"ok": 1}
    assert sleeps == [12.0]
    assert len(seen) == 2


def test_5xx_and_transport_errors_back_off_exponentially() -> None:
    handler, _ = _sequence(
        httpx.Response(503, json={}),
        httpx.ConnectError("connection refused"),
        httpx.Response(502, json={}),
        httpx.Response(200, json={"ok": 1}),
    )
    sleeps: list[float] = []
    retry = RetryPolicy(attempts=4, backoff_initial=1, backoff_max=60, jitter=0.5)
    assert _client(handler, sleeps, retry=retry).fetch(GET) == {"ok": 1}
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps):
        assert 2**attempt <= wait <= 2**attempt + 0.5


def test_attempts_are_capped() -> None:
    handler, seen = _sequence(*[httpx.Response(500, json={}) for _ in range(3)])
    sleeps: list[float] = []
    with pytest.raises(RetriableError, match="gave up after 3 attempts"):
        _client(handler, sleeps, retry=RetryPolicy(attempts=3, jitter=0)).fetch(GET)
    assert len(seen) == 3
    assert len(sleeps) == 2


def test_total_time_is_capped_before_a_long_wait() -> None:
    handler, seen = _sequence(
        httpx.Response(429, headers={"Retry-After": "50"}, json={}),
        httpx.Response(200, json={}),
    )
    sleeps: list[float] = []
    with pytest.raises(RetriableError):
        _client(handler, sleeps, retry=RetryPolicy(max_seconds=30)).fetch(GET)
    assert sleeps == []
    assert len(seen) == 1


def test_a_retry_after_beyond_the_limit_is_not_waited() -> None:
    handler, _ = _sequence(httpx.Response(429, headers={"Retry-After": "3600"}, json={}))
    sleeps: list[float] = []
    with pytest.raises(RetriableError):
        _client(handler, sleeps, retry=RetryPolicy(max_retry_after=600)).fetch(GET)
    assert sleeps == []


def test_vendor_veto_header_stops_retries() -> None:
    handler, seen = _sequence(httpx.Response(500, headers={"X-Should-Retry": "false"}, json={}))
    with pytest.raises(FatalError):
        _client(handler, [], no_retry_header=("X-Should-Retry", "false")).fetch(GET)
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "acme rejected the token (HTTP 401): check ACME__TOKEN in .env"),
        (
            403,
            "acme refused GET /v1/things (HTTP 403): the token lacks a scope or permission "
            "for it; grant it, or check ACME__TOKEN in .env",
        ),
    ],
)
def test_rejected_credentials_raise_a_one_line_auth_error_without_the_secret(
    status: int, expected: str
) -> None:
    body = {"message": f"Invalid token {SECRET}", "headers": {"Authorization": f"Bearer {SECRET}"}}
    handler, seen = _sequence(httpx.Response(status, json=body))
    with pytest.raises(AuthError) as caught:
        _client(handler, []).fetch(GET)
    message = str(caught.value)
    assert message == expected
    assert SECRET not in message
    assert len(seen) == 1


def test_other_client_errors_are_fatal_and_scrubbed() -> None:
    handler, _ = _sequence(httpx.Response(400, json={"message": f"bad request for key {SECRET}"}))
    with pytest.raises(FatalError) as caught:
        _client(handler, []).fetch(GET)
    assert str(caught.value) == "acme: HTTP 400 on GET /v1/things: bad request for key ***"


def test_non_json_and_non_object_bodies_are_fatal() -> None:
    handler, _ = _sequence(httpx.Response(200, text="<html>"), httpx.Response(200, json=[1, 2]))
    client = _client(handler, [])
    with pytest.raises(FatalError, match="did not answer JSON"):
        client.fetch(GET)
    with pytest.raises(FatalError, match="did not answer an object"):
        client.fetch(GET)


QUOTA = QuotaHeaders("X-Remaining", window_ms="X-Window-Ms", window_seconds=10, low_water=5)


def test_rate_limiter_slows_down_before_the_quota_runs_out() -> None:
    handler, _ = _sequence(
        httpx.Response(200, headers={"X-Remaining": "50", "X-Window-Ms": "10000"}, json={}),
        httpx.Response(200, headers={"X-Remaining": "3", "X-Window-Ms": "10000"}, json={}),
        httpx.Response(200, headers={"X-Remaining": "0"}, json={}),
        httpx.Response(200, json={}),
    )
    sleeps: list[float] = []
    client = _client(handler, sleeps, quotas=(QUOTA,))
    client.fetch(GET)
    client.fetch(GET)
    assert sleeps == []  # plenty left after the first response
    client.fetch(GET)
    assert sleeps == [2.5]  # 3 left of a 10 s window: spread over the window
    client.fetch(GET)
    assert sleeps == [2.5, 10.0]  # none left and no window header: wait the default window


def test_rate_limiter_reads_reset_seconds() -> None:
    quota = QuotaHeaders("X-Left", reset_seconds="X-Reset", low_water=10)
    handler, _ = _sequence(
        httpx.Response(200, headers={"X-Left": "1", "X-Reset": "30"}, json={}),
        httpx.Response(200, json={}),
    )
    sleeps: list[float] = []
    client = _client(handler, sleeps, quotas=(quota,))
    client.fetch(GET)
    client.fetch(GET)
    assert sleeps == [15.0]


def test_a_request_budget_spaces_requests_so_the_vendor_never_says_429() -> None:
    sleeps: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    budget = RequestBudget("/search", limit=5, window_seconds=1.0, margin=0.0)
    limiter = RateLimiter((), sleep, budgets=(budget,), monotonic=lambda: now[0])
    search = Request("POST", "/crm/v3/objects/companies/search")
    for _ in range(12):  # instantaneous requests: 5 go at once, then one per window slot
        limiter.wait(search)
    assert sleeps == [1.0, 1.0]  # the 6th waits for the 1st to leave the window, the 11th too
    limiter.wait(Request("GET", "/crm/v3/owners"))  # other paths are not in the budget
    assert sleeps == [1.0, 1.0]
