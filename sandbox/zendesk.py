"""An emulator of the Zendesk Support API over the book, as a Starlette app.

Serves the cursor-based incremental ticket export, the time-based incremental
organization export and the cursor-paginated satisfaction ratings list, with Basic auth
`{ZENDESK_EMAIL}/token:{ZENDESK_API_TOKEN}`. Every response carries `X-Rate-Limit` and
`X-Rate-Limit-Remaining`; incremental exports also count against their own budget
(10 per minute) and answer 429 with `Retry-After` (seconds) when it is spent.

Ticket export cursors are positions `(updated_at, id)` in the export's order; a page
holds the tickets strictly after the position, leaving out tickets updated in the last
60 seconds. When caught up the page is empty, `end_of_stream` is true and
`after_cursor` still marks the position, so the next sync fetches only newer changes.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Callable
from itertools import islice
from typing import Any, Final
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.emulator import Gate, SandboxClock, base_url, iso_z, json_response, parse_int, unix
from sandbox.ratelimit import Decision, Fault, Limits, RateLimiter, retry_after_header
from sandbox.records import Book, Organization, SatisfactionRating, Ticket

__all__ = ["ZENDESK_API_TOKEN", "ZENDESK_EMAIL", "ZENDESK_SUBDOMAIN", "zendesk_app"]

ZENDESK_EMAIL: Final = "sandbox-agent@example-cs.test"
ZENDESK_API_TOKEN: Final = "sandbox-zendesk-token"  # noqa: S105  # the sandbox's published token
ZENDESK_SUBDOMAIN: Final = "sandbox"
_TICKETS = "/api/v2/incremental/tickets/cursor.json"
_ORGS = "/api/v2/incremental/organizations.json"
_RATINGS = "/api/v2/satisfaction_ratings.json"


def _error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response({"error": error, "description": description}, status, headers)


def _encode(*parts: int) -> str:
    raw = f"{parts[0]}.0||{parts[1]}|" if len(parts) == 2 else f"r{parts[0]}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    """`(updated_at, id)` of a ticket cursor or `(id, 0)` of a rating cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("r"):
            return int(raw[1:]), 0
        stamp, _, rest = raw.partition("||")
        return int(float(stamp)), int(rest.rstrip("|"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc


class _Policy:
    def __init__(self, email: str, api_token: str) -> None:
        credentials = base64.b64encode(f"{email}/token:{api_token}".encode()).decode()
        self.expected = f"Basic {credentials}"

    def authenticate(self, headers: Headers) -> Response | None:
        if headers.get("authorization", "") == self.expected:
            return None
        return json_response({"error": "Couldn't authenticate you"}, 401)

    def budgets(self, method: str, path: str) -> tuple[str, ...]:
        if path.startswith("/api/v2/incremental/"):
            return ("default", "incremental")
        return ("default",)

    def rate_headers(self, decision: Decision) -> dict[str, str]:
        if decision.budget != "default" or decision.limit is None:
            return {}
        return {
            "X-Rate-Limit": str(decision.limit),
            "X-Rate-Limit-Remaining": str(decision.remaining),
        }

    def too_many(self, decision: Decision) -> Response:
        which = (
            "incremental export API requests"
            if decision.budget == "incremental"
            else "API requests"
        )
        headers = {"Retry-After": retry_after_header(decision.retry_after_s)}
        if decision.budget == "default" and decision.limit is not None:
            headers.update({"X-Rate-Limit": str(decision.limit), "X-Rate-Limit-Remaining": "0"})
        return _error(
            429, "APIRateLimitExceeded", f"Number of allowed {which} per minute exceeded", headers
        )

    def failure(self, fault: Fault) -> Response:
        if fault.status == 429:
            return self.too_many(Decision(False, "incremental", retry_after_s=fault.retry_after_s))
        return _error(fault.status, "InternalError", "Something went wrong, please try again")

    def extra_headers(self) -> dict[str, str]:
        return {}


def _ticket(t: Ticket, base: str, comment: str | None) -> dict[str, Any]:
    rating: dict[str, Any] = {"score": t.satisfaction_score}
    if t.satisfaction_id is not None:
        rating = {"id": t.satisfaction_id, "score": t.satisfaction_score, "comment": comment or ""}
    return {
        "url": f"{base}/api/v2/tickets/{t.id}.json", "id": t.id, "external_id": None,
        "via": {"channel": t.channel, "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso_z(t.created_at), "updated_at": iso_z(t.updated_at),
        "generated_timestamp": unix(t.updated_at),
        "type": "incident" if t.priority == "urgent" else "question", "subject": t.subject,
        "raw_subject": t.subject, "description": f"{t.subject}\n\nSent from the sandbox.",
        "priority": t.priority, "status": t.status, "recipient": None,
        "requester_id": t.requester_id, "submitter_id": t.requester_id,
        "assignee_id": t.assignee_id, "organization_id": t.organization_id, "group_id": t.group_id,
        "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [], "forum_topic_id": None,
        "problem_id": None, "has_incidents": False, "is_public": True, "due_at": None,
        "tags": list(t.tags), "custom_fields": [], "fields": [], "satisfaction_rating": rating,
        "sharing_agreement_ids": [], "followup_ids": [], "ticket_form_id": 360_000_100_001,
        "brand_id": 360_000_200_001, "allow_channelback": False, "allow_attachments": True,
        "from_messaging_channel": False,
    }  # fmt: skip


def _organization(o: Organization, base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/api/v2/organizations/{o.id}.json", "id": o.id, "name": o.name,
        "shared_tickets": False, "shared_comments": False, "external_id": o.external_id,
        "created_at": iso_z(o.created_at), "updated_at": iso_z(o.updated_at),
        "domain_names": list(o.domain_names), "details": "", "notes": "", "group_id": None,
        "tags": [], "organization_fields": {}, "deleted_at": None,
    }  # fmt: skip


def _rating(s: SatisfactionRating, base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/api/v2/satisfaction_ratings/{s.id}.json", "id": s.id,
        "assignee_id": s.assignee_id, "group_id": s.group_id, "requester_id": s.requester_id,
        "ticket_id": s.ticket_id, "score": s.score, "created_at": iso_z(s.created_at),
        "updated_at": iso_z(s.updated_at), "comment": s.comment or None,
        "reason": "No reason provided" if s.score == "bad" else None, "reason_code": 0,
    }  # fmt: skip


_BREAK: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "tickets": lambda b: {k: v for k, v in b.items() if k != "created_at"},
    "organizations": lambda b: {**{k: v for k, v in b.items() if k != "name"},
                                "domain_names": ",".join(b["domain_names"])},
    "satisfaction_ratings": lambda b: {**{k: v for k, v in b.items() if k != "ticket_id"},
                                       "score": 5},
}  # fmt: skip


class _Zendesk:
    def __init__(self, book: Book, limits: Limits, clock: Callable[[], float]) -> None:
        self.faults, self.clock = limits.faults, clock
        self.tickets = sorted(book.tickets, key=lambda t: (unix(t.updated_at), t.id))
        self.ticket_keys = [(unix(t.updated_at), t.id) for t in self.tickets]
        self.orgs = sorted(book.organizations, key=lambda o: (unix(o.updated_at), o.id))
        self.org_keys = [unix(o.updated_at) for o in self.orgs]
        self.ratings = sorted(book.satisfaction_ratings, key=lambda s: s.id)
        self.rating_ids = [s.id for s in self.ratings]
        self.comments = {s.id: s.comment for s in book.satisfaction_ratings}

    def _break(
        self, stream: str, rows: list[dict[str, Any]], first: object
    ) -> list[dict[str, Any]]:
        target = self.faults.malformed(stream, str(first))
        return [_BREAK[stream](r) if str(r["id"]) == target else r for r in rows]

    async def tickets_export(self, request: Request) -> Response:
        params, base = request.query_params, base_url(request)
        try:
            per_page = min(parse_int(params.get("per_page"), 1000) or 1000, 1000)
            if cursor := params.get("cursor"):
                position = _decode(cursor)
            elif (start := parse_int(params.get("start_time"))) is not None:
                position = (start, -1)
            else:
                return _error(400, "InvalidValue", "start_time or cursor is required")
        except ValueError as exc:
            return _error(400, "InvalidPaginationParameter", f"Invalid parameter: {exc}")
        settled = bisect_right(self.ticket_keys, (int(self.clock()) - 60, 2**62))
        begin = bisect_right(self.ticket_keys, position)
        rows = self.tickets[begin:settled]
        if params.get("exclude_deleted") == "true":
            rows = [t for t in rows if t.status != "deleted"]
        page, more = rows[:per_page], len(rows) > per_page
        after = _encode(unix(page[-1].updated_at), page[-1].id) if page else _encode(*position)
        before = _encode(unix(page[0].updated_at), page[0].id) if page else None
        suffix = f"&per_page={per_page}" if params.get("per_page") else ""
        rendered = [_ticket(t, base, self.comments.get(t.satisfaction_id or 0)) for t in page]
        return json_response({
            "tickets": self._break("tickets", rendered, self.tickets[0].id if self.tickets else ""),
            "after_url": f"{base}{_TICKETS}?cursor={after}{suffix}",
            "before_url": f"{base}{_TICKETS}?cursor={before}{suffix}" if before else None,
            "after_cursor": after, "before_cursor": before, "end_of_stream": not more,
        })  # fmt: skip

    async def organizations_export(self, request: Request) -> Response:
        params, base = request.query_params, base_url(request)
        try:
            start = parse_int(params.get("start_time"))
            per_page = min(parse_int(params.get("per_page"), 1000) or 1000, 1000)
        except ValueError:
            return _error(400, "InvalidValue", "start_time must be a Unix epoch time")
        if start is None:
            return _error(400, "InvalidValue", "start_time is required")
        if start > self.clock() - 60:
            return _error(
                400, "InvalidValue", "Too recent start_time. Use a start_time older than 1 minute."
            )
        begin = bisect_right(self.org_keys, start - 1)
        stop = begin + per_page
        while stop < len(self.orgs) and self.org_keys[stop] == self.org_keys[stop - 1]:
            stop += 1
        page = self.orgs[begin:stop]
        end_of_stream = stop >= len(self.orgs)
        end_time = unix(page[-1].updated_at) if page else start
        if not end_of_stream and end_time == start:
            end_time += 1
        suffix = f"&per_page={per_page}" if params.get("per_page") else ""
        rows = [_organization(o, base) for o in page]
        return json_response({
            "organizations": self._break("organizations", rows, self.orgs[0].id),
            "next_page": f"{base}{_ORGS}?start_time={end_time}{suffix}",
            "count": len(page), "end_of_stream": end_of_stream, "end_time": end_time,
        })  # fmt: skip

    async def ratings_list(self, request: Request) -> Response:
        params, base = request.query_params, base_url(request)
        try:
            size = parse_int(params.get("page[size]"), 100) or 100
            start, end = parse_int(params.get("start_time")), parse_int(params.get("end_time"))
            after_id = _decode(params["page[after]"])[0] if params.get("page[after]") else 0
        except ValueError as exc:
            return _error(400, "InvalidPaginationParameter", f"Invalid parameter: {exc}")
        if not 0 < size <= 100:
            return _error(400, "InvalidPaginationParameter", "page[size] must be between 1 and 100")
        score = params.get("score")
        rows: list[SatisfactionRating] = []
        for s in islice(self.ratings, bisect_right(self.rating_ids, after_id), None):
            if (
                (start is None or unix(s.created_at) >= start)
                and (end is None or unix(s.created_at) <= end)
                and score in (None, "received", s.score)
            ):
                rows.append(s)
                if len(rows) > size:  # one past the page says whether there are more
                    break
        page, more = rows[:size], len(rows) > size
        after = _encode(page[-1].id) if page else None
        before = _encode(page[0].id) if page else None
        query = urlencode([(k, v) for k, v in params.multi_items() if not k.startswith("page[")])
        query = f"{query}&page[size]={size}".lstrip("&")
        rendered = [_rating(s, base) for s in page]
        return json_response({
            "satisfaction_ratings": self._break("satisfaction_ratings", rendered,
                                                self.ratings[0].id if self.ratings else ""),
            "meta": {"has_more": more, "after_cursor": after, "before_cursor": before},
            "links": {
                "next": f"{base}{_RATINGS}?{query}&page[after]={after}" if more else None,
                "prev": f"{base}{_RATINGS}?{query}&page[before]={before}" if before else None,
            },
        })  # fmt: skip


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "InvalidEndpoint", "Not found")


def zendesk_app(
    book: Book,
    *,
    email: str = ZENDESK_EMAIL,
    api_token: str = ZENDESK_API_TOKEN,
    limits: Limits | None = None,
    clock: Callable[[], float] | None = None,
) -> Starlette:
    """The Zendesk emulator for `book`; `limits` defaults to Zendesk's real budgets.

    `clock` (Unix seconds) decides what "the last minute" is; it defaults to
    `SandboxClock.for_book(book)`.
    """
    limits = limits or Limits.vendor("zendesk")
    state = _Zendesk(book, limits, clock or SandboxClock.for_book(book))
    app = Starlette(
        routes=[
            Route(_TICKETS, state.tickets_export, methods=["GET"]),
            Route(_ORGS, state.organizations_export, methods=["GET"]),
            Route(_RATINGS, state.ratings_list, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                Gate,
                policy=_Policy(email, api_token),
                limiter=RateLimiter(limits),
                faults=limits.faults,
            )
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.limits = limits
    return app
