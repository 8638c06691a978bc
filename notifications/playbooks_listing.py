"""What the playbooks are and which tasks they gave, as plain rows for the CLI and scripts."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from notifications.playbooks_config import PlaybookConfig
from store.db import session_for
from store.models import Account, PlaybookTask

__all__ = ["playbook_rows", "task_rows"]


def playbook_rows(config: PlaybookConfig) -> list[dict[str, Any]]:
    """One row per playbook: its trigger, whether it starts itself, and its task templates."""
    return [
        {
            "name": playbook.name,
            "description": playbook.description,
            "auto": playbook.auto,
            "trigger": playbook.trigger.describe(),
            "tasks": [
                {
                    "title": task.title,
                    "assignee": task.assignee,
                    "due_in_business_days": task.due_in_business_days,
                    "steps": list(task.steps),
                }
                for task in playbook.tasks
            ],
        }
        for playbook in config.playbooks
    ]


def _crm(task: PlaybookTask) -> str | None:
    if task.crm_task_id is None:
        return None
    if task.crm_task_id.startswith("pending:"):
        return f"{task.crm_source}: writing"
    return f"{task.crm_source}: {task.crm_task_id}"


def task_rows(
    db: Engine | Session, *, today: date, open_only: bool = False, overdue_only: bool = False
) -> list[dict[str, Any]]:
    """Tasks, earliest due first: account, assignee, due date, status, Slack and CRM state.

    Overdue means open and due before `today`.
    """
    stmt = (
        select(PlaybookTask, Account.name)
        .outerjoin(Account, col(Account.id) == col(PlaybookTask.account_id))
        .order_by(
            col(PlaybookTask.due_on).is_(None), col(PlaybookTask.due_on), col(PlaybookTask.id)
        )
    )
    if open_only or overdue_only:
        stmt = stmt.where(col(PlaybookTask.status) == "open")
    if overdue_only:
        stmt = stmt.where(col(PlaybookTask.due_on) < today)
    with session_for(db) as session:
        return [
            {
                "id": task.id,
                "account": name,
                "account_id": task.account_id,
                "playbook": task.playbook,
                "title": task.title,
                "assignee": task.assignee_email,
                "due_on": task.due_on.isoformat() if task.due_on else None,
                "status": task.status,
                "overdue": task.status == "open"
                and task.due_on is not None
                and task.due_on < today,
                "completed_at": task.completed_at.isoformat() if task.completed_at else None,
                "posted_at": task.posted_at.isoformat() if task.posted_at else None,
                "crm": _crm(task),
                "alert_id": task.alert_id,
            }
            for task, name in session.exec(stmt)
        ]
