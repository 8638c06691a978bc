"""HubSpot's side of copying playbook tasks: the task create request, and finding a task.

`HubSpotTasks.create` sends one `POST /crm/v3/objects/tasks` (subject, steps as an HTML
list in the body, due date at noon UTC, owner, associated to the company with HubSpot's
task-to-company association type 192) and tells apart a task HubSpot certainly did not
create (`TaskNotCreatedError`: connection refused, 429, a 4xx rejection) from an unknown
outcome (any other error). `find` searches tasks by subject and creation time and picks the
one whose body carries a given reference. `hubspot_client` makes one attempt per request,
so a create is never resent by the HTTP layer. The exactly-once protocol around them is
`connectors/task_writeback.py`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time

import httpx

from connectors.base import Json, Request
from connectors.errors import FatalError, RetriableError, SyncError
from connectors.http import BearerAuth, ClientOptions, HttpClient, HttpSource, RetryPolicy
from connectors.hubspot import QUOTAS, SEARCH_BUDGETS
from settings import Settings

__all__ = [
    "HUBSPOT",
    "TASK_TO_COMPANY",
    "HubSpotTasks",
    "TaskInfo",
    "TaskNotCreatedError",
    "hubspot_client",
]

HUBSPOT = "hubspot"
TASKS_PATH = "/crm/v3/objects/tasks"
TASK_TO_COMPANY = 192
"""HubSpot-defined association type of a task to a company."""
DUE_TIME = time(12, 0)
"""A due date becomes noon UTC: the same calendar day from UTC-11 to UTC+11."""


@dataclass(frozen=True)
class TaskInfo:
    """What a CRM task is made of."""

    task_id: int
    title: str
    steps: list[str]
    due_on: date | None
    playbook: str
    company_id: str
    owner_id: str | None


class TaskNotCreatedError(Exception):
    """The CRM certainly created nothing: the claim can be given back.

    `later` is True when the CRM was rate limiting or unreachable: nothing else will get
    through in this run either.
    """

    def __init__(self, message: str, *, later: bool = False) -> None:
        super().__init__(message)
        self.later = later


class _RejectedError(FatalError):
    """The CRM refused the request (a 4xx other than 401, 403 and 429)."""


def _rejected(request: Request, response: httpx.Response) -> SyncError | None:
    status = response.status_code
    if 400 <= status < 500 and status not in (401, 403, 429):
        try:
            message = str(response.json().get("message", ""))
        except (ValueError, AttributeError):
            message = ""
        return _RejectedError(
            f"HTTP {status} on {request.method} {request.path}: {message}".strip()
        )
    return None


def _never_sent(exc: BaseException) -> bool:
    """True when the request provably never reached the CRM (no connection was made)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _body(info: TaskInfo, ref: str) -> str:
    steps = "".join(f"<li>{html.escape(step)}</li>" for step in info.steps)
    note = (
        f"<p>From the customer health agent, playbook {html.escape(info.playbook)} (ref {ref})</p>"
    )
    return (f"<ol>{steps}</ol>" if steps else "") + note


class HubSpotTasks:
    """Creates and finds tasks through HubSpot's CRM v3 objects API."""

    source = HUBSPOT

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def payload(self, info: TaskInfo, ref: str, today: date) -> Json:
        due = datetime.combine(info.due_on or today, DUE_TIME, UTC)
        properties = {
            "hs_task_subject": info.title,
            "hs_task_body": _body(info, ref),
            "hs_timestamp": _ms(due),
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
        }
        if info.owner_id:
            properties["hubspot_owner_id"] = info.owner_id
        association = {
            "to": {"id": info.company_id},
            "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}
            ],
        }
        return {"properties": properties, "associations": [association]}

    def create(self, info: TaskInfo, ref: str, today: date) -> str:
        """The new task's id; `TaskNotCreatedError` when the CRM certainly made none."""
        request = Request("POST", TASKS_PATH, json=self.payload(info, ref, today))
        try:
            body = self.client.fetch(request)
        except _RejectedError as exc:
            raise TaskNotCreatedError(f"HubSpot refused the task: {exc}") from None
        except RetriableError as exc:
            if exc.status == 429 or _never_sent(exc):
                raise TaskNotCreatedError(str(exc), later=True) from None
            raise
        task_id = body.get("id")
        if not isinstance(task_id, str | int) or not str(task_id):
            raise FatalError("HubSpot answered the task create without an id")
        return str(task_id)

    def find(self, info: TaskInfo, ref: str, since: datetime) -> str | None:
        """The id of the task written under `ref`, if HubSpot has it."""
        filters = [
            {"propertyName": "hs_task_subject", "operator": "EQ", "value": info.title},
            {"propertyName": "hs_createdate", "operator": "GTE", "value": _ms(since)},
        ]
        request = Request(
            "POST",
            f"{TASKS_PATH}/search",
            json={
                "filterGroups": [{"filters": filters}],
                "properties": ["hs_task_subject", "hs_task_body"],
                "sorts": [{"propertyName": "hs_createdate", "direction": "ASCENDING"}],
                "limit": 100,
            },
        )
        for result in self.client.fetch(request).get("results") or []:
            properties = result.get("properties") or {}
            if ref in str(properties.get("hs_task_body") or ""):
                return str(result["id"])
        return None


def hubspot_client(settings: Settings, options: ClientOptions | None = None) -> HttpClient:
    """A HubSpot client that makes one attempt per request: a create is never resent."""
    cfg = settings.hubspot
    assert cfg.token is not None
    source = HttpSource(
        source=HUBSPOT,
        base_url=cfg.base_url,
        auth=BearerAuth(cfg.token),
        credential="the token",
        settings_hint="HUBSPOT__TOKEN (tasks need the crm.objects.contacts.write scope)",
        secrets=(cfg.token,),
        quotas=QUOTAS,
        budgets=SEARCH_BUDGETS,
        errors=_rejected,
    )
    return HttpClient(source, replace(options or ClientOptions(), retry=RetryPolicy(attempts=1)))
