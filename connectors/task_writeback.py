"""Copying playbook tasks to the CRM as CRM tasks, exactly once (HubSpot).

CRMs take no idempotency key on create, so "once" is built from a claim in the store and a
reference in the task:

1. **Claim.** `crm_task_id` goes from NULL to `pending:<unix time>:<ref>` in a committed
   update `WHERE crm_task_id IS NULL`: one run, on one instance, owns the write.
2. **Create, never retried blindly.** One `POST /crm/v3/objects/tasks` (subject, steps as
   the body, due date, owner, associated to the company), the `ref` written into the body.
   The HTTP client makes one attempt. What happens next depends on what is known:
   - the CRM answered with the task: its id replaces the claim (`crm_task_id = <id>`);
   - nothing can have been created (connection refused, 429, the CRM rejected the task with
     a 4xx): the claim is given back and the next run tries again;
   - the outcome is unknown (timeout after sending, 5xx, a crash before the id was stored):
     the claim stays. Until it is older than `PLAYBOOKS__CRM_CLAIM_TIMEOUT_MINUTES`, no run
     touches it, so it is never written twice (at most once).
3. **Recover.** A claim older than the timeout is taken over (the same conditional update)
   and the CRM is searched for a task with that subject whose body carries the claim's ref:
   found, its id is adopted; not found, the task is written again under a new claim. Search
   indexes new tasks within seconds, far inside the timeout, so recovery never doubles a
   task. The one case it could: a process that stalls for longer than the timeout between
   claiming and posting; storing the id then finds its claim gone and reports it.

So each task is written at most once while its outcome is unknown, and at least once in
the end: exactly once, given a CRM search that catches up within the timeout.

Only accounts synced from HubSpot are written (the task is associated to the company and
given to the assignee's HubSpot owner, or the account's owner); the requests themselves are
`connectors/hubspot_tasks.py`. Salesforce is left out: its
client is reusable, but recovery would need a SOQL lookup of Tasks and an org to test it on.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from connectors.errors import AuthError
from connectors.http import ClientOptions
from connectors.hubspot_tasks import (
    HUBSPOT,
    HubSpotTasks,
    TaskInfo,
    TaskNotCreatedError,
    hubspot_client,
)
from settings import Settings
from store.db import session_for
from store.models import Account, Csm, PlaybookTask

__all__ = ["CrmSummary", "write_to_crm"]

log = logging.getLogger(__name__)
PENDING = "pending:"


@dataclass
class CrmSummary:
    """What one `write_to_crm` run did."""

    enabled: bool = True
    written: int = 0
    recovered: int = 0
    """Interrupted writes found in the CRM and adopted."""
    rewritten: int = 0
    """Interrupted writes the CRM did not have, written again."""
    released: int = 0
    """Writes that created nothing; tried again on the next run."""
    uncertain: int = 0
    """Writes whose outcome is unknown; looked up once their claim times out."""
    waiting: int = 0
    """Claims of another run, or of an interrupted one that has not timed out yet."""
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.enabled:
            return "CRM tasks: off (PLAYBOOKS__CRM_WRITE_BACK)"
        text = f"CRM tasks written: {self.written}"
        for name in ("recovered", "rewritten", "released", "uncertain", "waiting"):
            if value := getattr(self, name):
                text += f", {name} {value}"
        return text


class _StopError(Exception):
    """HubSpot is rate limiting or unreachable: the rest waits for the next run."""


@dataclass(frozen=True)
class _Claim:
    token: str
    at: datetime
    ref: str

    @classmethod
    def new(cls, now: datetime) -> _Claim:
        at = now.astimezone(UTC).replace(microsecond=0)
        ref = uuid.uuid4().hex
        return cls(f"{PENDING}{int(at.timestamp())}:{ref}", at, ref)

    @classmethod
    def parse(cls, token: str) -> _Claim | None:
        seconds, _, ref = token.removeprefix(PENDING).partition(":")
        if not token.startswith(PENDING) or not seconds.isdigit() or not ref:
            return None
        return cls(token, datetime.fromtimestamp(int(seconds), UTC), ref)


def _owners(session: Session) -> dict[str, str]:
    """Email (lower case) -> HubSpot owner id."""
    stmt = select(func.lower(col(Csm.email)), col(Csm.external_id)).where(
        col(Csm.source) == HUBSPOT, col(Csm.deleted_at).is_(None)
    )
    return dict(session.exec(stmt).all())


def _infos(session: Session, *conditions: Any) -> list[tuple[TaskInfo, str | None]]:
    """The tasks of HubSpot accounts that meet `conditions`, with their `crm_task_id`."""
    stmt = (
        select(PlaybookTask, Account)
        .join(Account, col(Account.id) == col(PlaybookTask.account_id))
        .where(col(Account.source) == HUBSPOT, *conditions)
        .order_by(col(PlaybookTask.id))
    )
    owners = _owners(session)
    found = []
    for task, account in session.exec(stmt):
        assert task.id is not None
        assignee = (task.assignee_email or "").lower()
        info = TaskInfo(
            task_id=task.id,
            title=task.title,
            steps=list(task.steps),
            due_on=task.due_on,
            playbook=task.playbook,
            company_id=account.external_id,
            owner_id=owners.get(assignee) or account.owner_external_id,
        )
        found.append((info, task.crm_task_id))
    return found


def _swap(session: Session, task_id: int, old: str | None, new: str | None) -> bool:
    """Set `crm_task_id` from `old` to `new`, committed; False when it was not `old`."""
    current = col(PlaybookTask.crm_task_id)
    result = session.exec(
        update(PlaybookTask)
        .where(
            col(PlaybookTask.id) == task_id, current.is_(None) if old is None else current == old
        )
        .values(crm_task_id=new, crm_source=None if new is None else HUBSPOT)
    )
    session.commit()
    return result.rowcount == 1


def _store(
    session: Session, info: TaskInfo, claim: _Claim, crm_id: str, summary: CrmSummary
) -> None:
    """Replace the claim with the CRM's id."""
    if not _swap(session, info.task_id, claim.token, crm_id):
        summary.problems.append(
            f"task {info.task_id}: written to HubSpot as task {crm_id} after another run took "
            "over its claim; check HubSpot for a second copy"
        )


def _attempt(
    session: Session,
    writer: HubSpotTasks,
    info: TaskInfo,
    claim: _Claim,
    now: datetime,
    summary: CrmSummary,
) -> bool:
    """POST the task under `claim`; True when it was written."""
    try:
        crm_id = writer.create(info, claim.ref, now.date())
    except TaskNotCreatedError as exc:
        _swap(session, info.task_id, claim.token, None)
        summary.released += 1
        summary.problems.append(f"task {info.task_id}: not written, will try again: {exc}")
        if exc.later:
            raise _StopError from None
        return False
    except AuthError:
        _swap(session, info.task_id, claim.token, None)
        raise
    except Exception as exc:  # the CRM may have the task: keep the claim, look it up later
        summary.uncertain += 1
        summary.problems.append(
            f"task {info.task_id}: outcome unknown ({exc}); looked up in HubSpot once the "
            "claim times out"
        )
        return False
    _store(session, info, claim, crm_id, summary)
    log.info("task %s written to HubSpot as %s", info.task_id, crm_id)
    return True


def _recover(
    session: Session,
    writer: HubSpotTasks,
    info: TaskInfo,
    old: _Claim,
    now: datetime,
    summary: CrmSummary,
) -> None:
    """Take over a timed-out claim: adopt the CRM's task, or write it again."""
    claim = _Claim.new(now)
    if not _swap(session, info.task_id, old.token, claim.token):
        return  # another run took it over first
    try:
        found = writer.find(info, old.ref, old.at - timedelta(hours=1))
    except AuthError:
        _swap(session, info.task_id, claim.token, old.token)
        raise
    except Exception as exc:  # unknown still: keep the old claim for the next run
        _swap(session, info.task_id, claim.token, old.token)
        summary.problems.append(f"task {info.task_id}: cannot look it up in HubSpot: {exc}")
        return
    if found is not None:
        _store(session, info, claim, found, summary)
        summary.recovered += 1
    elif _attempt(session, writer, info, claim, now, summary):
        summary.rewritten += 1


def write_to_crm(
    db: Engine | Session,
    settings: Settings,
    now: datetime,
    *,
    options: ClientOptions | None = None,
) -> CrmSummary:
    """Copy every open task of a HubSpot account to HubSpot once; resolve interrupted copies.

    Does nothing unless `PLAYBOOKS__CRM_WRITE_BACK` is on and HubSpot is configured. With a
    session, it commits as it goes (each claim must be committed before its POST).
    """
    summary = CrmSummary(enabled=settings.playbooks.crm_write_back)
    if not summary.enabled or not settings.hubspot.enabled():
        return summary
    timeout = timedelta(minutes=settings.playbooks.crm_claim_timeout_minutes)
    writer = HubSpotTasks(hubspot_client(settings, options))
    try:
        with session_for(db) as session:
            _resolve_claims(session, writer, now, timeout, summary)
            _write_new(session, writer, now, summary)
    except _StopError:
        summary.problems.append("stopped: the remaining tasks wait for the next run")
    finally:
        writer.client.close()
    return summary


def _write_new(session: Session, writer: HubSpotTasks, now: datetime, summary: CrmSummary) -> None:
    new = _infos(
        session,
        col(PlaybookTask.crm_task_id).is_(None),
        col(PlaybookTask.status) == "open",
        col(Account.deleted_at).is_(None),
    )
    for info, _ in new:
        claim = _Claim.new(now)
        if _swap(session, info.task_id, None, claim.token):
            summary.written += _attempt(session, writer, info, claim, now, summary)


def _resolve_claims(
    session: Session,
    writer: HubSpotTasks,
    now: datetime,
    timeout: timedelta,
    summary: CrmSummary,
) -> None:
    pending = _infos(session, col(PlaybookTask.crm_task_id).startswith(PENDING))
    for info, token in pending:
        old = _Claim.parse(token or "")
        if old is None:
            summary.problems.append(f"task {info.task_id}: unreadable CRM claim {token!r}")
        elif now - old.at < timeout:
            summary.waiting += 1
        else:
            _recover(session, writer, info, old, now, summary)
