"""The one HTTP client every vendor connector uses: auth, quotas, retries, error mapping.

`HttpClient` wraps an `httpx.Client` per source (base URL, timeout, User-Agent, an
`httpx.Auth`). Retries are set up here once, from tenacity parts: 429, 5xx and transport
errors are retried, waiting `Retry-After` when the vendor sends it (seconds or an HTTP date)
and exponential backoff with jitter otherwise, within a cap on attempts and on total time.
A `RateLimiter` reads the vendor's remaining-quota headers (declared as data per source)
and slows down before the vendor has to answer 429; a limit the vendor enforces without
reporting it in headers (HubSpot's search: 5 requests per second) is declared as a
`RequestBudget` and kept by spacing the requests it covers. An `Allocation` over a long window
(a rolling day) cannot be waited out: the client stops before it is spent, keeping a reserve
for the vendor account's other integrations, and raises `AllocationExhaustedError`. A vendor
whose error answers need more than their status to be understood maps them with
`HttpSource.errors`. The sleep function is injected through `ClientOptions`, so tests wait for
nothing yet can assert every wait that was asked for.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from connectors.base import Json, Request
from connectors.errors import AuthError, FatalError, RetriableError, SyncError, scrub

__all__ = [
    "USER_AGENT",
    "Allocation",
    "AllocationExhaustedError",
    "BasicAuth",
    "BearerAuth",
    "ClientOptions",
    "HttpClient",
    "HttpSource",
    "QuotaHeaders",
    "RateLimiter",
    "RequestBudget",
    "RetryPolicy",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

USER_AGENT = "customer-health-agent/0.1 (+python-httpx)"
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry: attempts and total time are both capped."""

    attempts: int = 5
    max_seconds: float = 300.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 1.0
    max_retry_after: float = 600.0
    """A Retry-After longer than this is a failure to report, not a wait."""


@dataclass(frozen=True)
class ClientOptions:
    """How clients are built; tests and emulators inject a transport and a sleep here."""

    transport: httpx.BaseTransport | None = None
    sleep: Sleep = time.sleep
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    user_agent: str = USER_AGENT
    clock: Callable[[], float] = time.time
    """Unix time now, for quota headers that give the reset as a Unix time."""
    monotonic: Callable[[], float] = time.monotonic
    """Seconds that never go back, for spacing requests under a `RequestBudget`."""


@dataclass(frozen=True)
class QuotaHeaders:
    """Where a vendor reports its remaining quota, and when to start slowing down."""

    remaining: str
    window_ms: str | None = None
    """Header with the length of the quota window in milliseconds."""
    reset_seconds: str | None = None
    """Header with the seconds left until the quota resets."""
    reset_at: str | None = None
    """Header with the Unix time at which the quota resets; a 429 without Retry-After waits
    until then."""
    window_seconds: float = 10.0
    """Window length when no header says it."""
    low_water: int = 5
    """Slow down once this many requests or fewer remain."""


@dataclass(frozen=True)
class RequestBudget:
    """A limit the vendor enforces but does not report in headers.

    At most `limit` requests whose path ends with `path_suffix` in any `window_seconds`;
    the client spaces them so that the vendor never has to answer 429.
    """

    path_suffix: str
    limit: int
    window_seconds: float
    margin: float = 0.02
    """Share of the window added to it, for a request that takes longer to arrive than
    the one it follows."""


class AllocationExhaustedError(FatalError):
    """The vendor's long-window allocation is spent, or down to the reserve kept for others:
    retrying cannot help until usage falls, so the source stops sending."""


@dataclass(frozen=True)
class Allocation:
    """A request allocation over a long window that the vendor reports as used and limit.

    Pacing cannot stretch a rolling day, so once no more than `reserve` (a share of the limit)
    is left, the client sends nothing more and raises `AllocationExhaustedError`: the rest is
    left to the other integrations of the vendor account, and the next sync resumes from the
    last committed cursor.
    """

    header: str
    """The header that reports usage, for messages and `quota_remaining`."""
    usage: Callable[[httpx.Headers], tuple[float, float] | None]
    """(used, limit) as a response's headers report them; None when they do not."""
    reserve: float = 0.1
    window: str = "24 h"
    advice: str = "lower the schedule"
    """What an admin can do about it, for messages."""

    def stop(self, source: str, used: float, limit: float) -> AllocationExhaustedError:
        """The error of stopping at the reserve, before the vendor has to refuse."""
        return AllocationExhaustedError(
            f"{source} stopped at {used:g}/{limit:g} API requests in {self.window}, keeping "
            f"{self.reserve:.0%} for other integrations: sync resumes from the last committed "
            f"cursor once usage falls; {self.advice}"
        )


@dataclass(frozen=True)
class HttpSource:
    """Everything source-specific about talking to one vendor."""

    source: str
    base_url: str
    auth: httpx.Auth
    credential: str
    """What was rejected, for messages: "the token", "the API key"."""
    settings_hint: str
    """The variables to check, for messages: "HUBSPOT__TOKEN"."""
    secrets: tuple[SecretStr, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    quotas: tuple[QuotaHeaders, ...] = ()
    budgets: tuple[RequestBudget, ...] = ()
    """Limits without headers, kept by spacing requests."""
    no_retry_header: tuple[str, str] | None = None
    """A header and value with which the vendor says a failure must not be retried."""
    list_envelope: Callable[[list[Any], httpx.Response], Json] | None = None
    """Turns a bare JSON array answer into an object (e.g. items + the Link header's next)."""
    errors: Callable[[Request, httpx.Response], SyncError | None] | None = None
    """Maps an error answer the status alone does not explain (a code in the body) to the
    error to raise; None leaves it to the status rules."""
    allocation: Allocation | None = None
    """A long-window allocation the vendor reports on each response; see `Allocation`."""


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>`."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def _basic(username: str, password: str) -> str:
    """The value of an `Authorization: Basic` header."""
    return f"Basic {base64.b64encode(f'{username}:{password}'.encode()).decode()}"


class BasicAuth(httpx.Auth):
    """HTTP Basic with a secret password (e.g. `{email}/token` and an API token)."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self._username = username
        self._password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = _basic(self._username, self._password.get_secret_value())
        yield request

    def __repr__(self) -> str:
        return f"BasicAuth({self._username!r}, ***)"


class ApiKeyAuth(httpx.Auth):
    """HTTP Basic with a secret API key as the user name and a fixed, public password
    (Freshdesk: "X", Chargebee: empty). Its repr never shows the key."""

    def __init__(self, api_key: SecretStr, password: str = "") -> None:
        self._api_key = api_key
        self._password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = _basic(self._api_key.get_secret_value(), self._password)
        yield request

    def __repr__(self) -> str:
        return "ApiKeyAuth(***)"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait: a number of seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


class RateLimiter:
    """Spreads the remaining quota over what is left of the window once it runs low.

    Requests under a `RequestBudget` are spaced too: the one `limit` places after a request
    sent at `t` waits until `t` plus the window. Send times are the ones scheduled, not what
    the clock says after a sleep, so the spacing holds whatever the sleep really does.
    """

    def __init__(
        self,
        quotas: tuple[QuotaHeaders, ...],
        sleep: Sleep,
        clock: Callable[[], float] = time.time,
        budgets: tuple[RequestBudget, ...] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quotas = quotas
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._pause = 0.0
        self._sent = {b: deque[float](maxlen=b.limit) for b in budgets if b.limit > 0}
        self.remaining: dict[str, float] = {}
        """The last quota left that the vendor reported, by header name."""

    def wait(self, request: Request | None = None) -> None:
        """Called before each request."""
        if self._pause > 0:
            log.debug("quota running low: pausing %.2fs", self._pause)
            self._sleep(self._pause)
            self._pause = 0.0
        if request is None:
            return
        for budget, sent in self._sent.items():
            if not request.path.endswith(budget.path_suffix):
                continue
            now = self._monotonic()
            at = now
            if len(sent) == budget.limit:
                at = max(now, sent[0] + budget.window_seconds * (1 + budget.margin))
            if at > now:
                log.debug("%s budget: pausing %.3fs", budget.path_suffix, at - now)
                self._sleep(at - now)
            sent.append(at)

    def observe(self, headers: httpx.Headers) -> None:
        """Called after each response."""
        pause = 0.0
        for quota in self._quotas:
            remaining = _number(headers.get(quota.remaining))
            if remaining is not None:
                self.remaining[quota.remaining] = remaining
            if remaining is None or remaining > quota.low_water:
                continue
            window = quota.window_seconds
            if quota.window_ms and (ms := _number(headers.get(quota.window_ms))) is not None:
                window = ms / 1000
            elif quota.reset_seconds and (s := _number(headers.get(quota.reset_seconds))):
                window = s
            elif quota.reset_at and (at := _number(headers.get(quota.reset_at))) is not None:
                window = max(at - self._clock(), 0.0)
            pause = max(pause, window / (max(remaining, 0) + 1))
        self._pause = pause

    def until_reset(self, headers: httpx.Headers) -> float | None:
        """Seconds until the quota resets by the vendor's reset-time headers, if it sends any.

        The retry that waits for the reset replaces the pause `observe` planned.
        """
        resets = [
            at
            for quota in self._quotas
            if quota.reset_at and (at := _number(headers.get(quota.reset_at))) is not None
        ]
        if not resets:
            return None
        self._pause = 0.0
        return max(max(resets) - self._clock(), 0.0)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _vendor_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    for candidate in (
        body.get("message"),
        error.get("message") if isinstance(error, dict) else None,
        body.get("description"),
        error if isinstance(error, str) else None,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return ""


class HttpClient:
    """Fetches JSON from one vendor with auth, quota pacing and retries; a `Fetcher`."""

    def __init__(self, source: HttpSource, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        self.source = source
        self._client = httpx.Client(
            base_url=source.base_url,
            auth=source.auth,
            timeout=options.timeout,
            headers={"User-Agent": options.user_agent, **source.headers},
            transport=options.transport,
        )
        self._limiter = RateLimiter(
            source.quotas, options.sleep, options.clock, source.budgets, options.monotonic
        )
        self._policy = options.retry
        self._usage: tuple[float, float] | None = None
        self._spent: AllocationExhaustedError | None = None
        self._backoff = wait_exponential_jitter(
            initial=options.retry.backoff_initial,
            max=options.retry.backoff_max,
            jitter=options.retry.jitter,
        )
        self._retrying = Retrying(
            sleep=options.sleep,
            retry=retry_if_exception(self._should_retry),
            wait=self._wait,
            stop=stop_after_attempt(options.retry.attempts)
            | stop_before_delay(options.retry.max_seconds),
            reraise=True,
        )

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, RetriableError):
            return False
        return exc.retry_after is None or exc.retry_after <= self._policy.max_retry_after

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def fetch(self, request: Request) -> Json:
        """The decoded JSON object answering `request`, after any retries."""
        try:
            response: httpx.Response = self._retrying(self._send_once, request)
        except RetriableError as exc:
            attempts = self._retrying.statistics.get("attempt_number", 1)
            raise RetriableError(
                f"{exc} (gave up after {attempts} attempts)", status=exc.status
            ) from exc
        try:
            body: Any = response.json()
        except ValueError as exc:
            raise FatalError(
                f"{self.source.source}: {request.method} {request.path} did not answer JSON"
            ) from exc
        if isinstance(body, list) and self.source.list_envelope is not None:
            body = self.source.list_envelope(body, response)
        if not isinstance(body, dict):
            raise FatalError(
                f"{self.source.source}: {request.method} {request.path} did not answer an object"
            )
        return body

    def _send_once(self, request: Request) -> httpx.Response:
        self._check_allocation()
        self._limiter.wait(request)
        try:
            response = self._client.request(
                request.method,
                request.path,
                params=dict(request.params) or None,
                json=request.json,
            )
        except httpx.TransportError as exc:
            message = scrub(str(exc), self._secrets())
            raise RetriableError(
                f"{self.source.source}: {request.method} {request.path} failed: "
                f"{type(exc).__name__} {message}"
            ) from exc
        self._limiter.observe(response.headers)
        if self.source.allocation is not None:
            self._usage = self.source.allocation.usage(response.headers) or self._usage
        self._check(request, response)
        return response

    def _check_allocation(self) -> None:
        """Refuse to send once the allocation is spent or down to its reserve."""
        allocation = self.source.allocation
        if self._spent is None and allocation is not None and self._usage is not None:
            used, limit = self._usage
            if used >= limit * (1 - allocation.reserve):
                self._spent = allocation.stop(self.source.source, used, limit)
        if self._spent is not None:
            raise AllocationExhaustedError(str(self._spent))

    def _secrets(self, sent: httpx.Request | None = None) -> list[str]:
        """The source's secrets, and the credentials `sent` carried: an encoded Basic pair or
        a session token is no setting's value, yet a vendor's error text may repeat it."""
        values = [s.get_secret_value() for s in self.source.secrets]
        credential = sent.headers.get("Authorization", "") if sent is not None else ""
        return [*values, credential, credential.partition(" ")[2]] if credential else values

    def _check(self, request: Request, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        src = self.source
        mapped = src.errors(request, response) if src.errors is not None else None
        if mapped is not None:
            secrets = self._secrets(response.request)
            if any(secret in str(mapped) for secret in secrets if secret):  # a repeated credential
                mapped.args = (scrub(str(mapped), secrets),)
            if isinstance(mapped, AllocationExhaustedError):
                self._spent = mapped
            raise mapped
        if status == 401:
            raise AuthError(
                f"{src.source} rejected {src.credential} (HTTP 401): "
                f"check {src.settings_hint} in .env"
            )
        if status == 403:
            raise AuthError(
                f"{src.source} refused {request.method} {request.path} (HTTP 403): "
                f"{src.credential} lacks a scope or permission for it; grant it, "
                f"or check {src.settings_hint} in .env"
            )
        where = f"{src.source}: HTTP {status} on {request.method} {request.path}"
        veto = src.no_retry_header
        vetoed = veto is not None and response.headers.get(veto[0], "").lower() == veto[1]
        if (status == 429 or status >= 500) and not vetoed:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is None and status == 429:
                wait = self._limiter.until_reset(response.headers)
            raise RetriableError(where, status=status, retry_after=wait)
        detail = scrub(_vendor_message(response), self._secrets(response.request))
        raise FatalError(f"{where}: {detail}" if detail else where)

    def quota_remaining(self) -> dict[str, float]:
        """What the vendor last said is left of its quotas, by header name."""
        remaining = dict(self._limiter.remaining)
        if self.source.allocation is not None and self._usage is not None:
            used, limit = self._usage
            remaining[self.source.allocation.header] = max(limit - used, 0.0)
        return remaining

    def close(self) -> None:
        self._client.close()
