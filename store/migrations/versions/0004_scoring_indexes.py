"""scoring indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:10:00

Covering indexes for the measures that scan the two largest tables: the ticket measures
(volume and urgent open tickets) and the usage measures (seat utilisation and usage trend)
aggregate per account from the index alone, in account order, without visiting the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_account_created",
            [
                "account_id",
                "created_at",
                "deleted_at",
                "priority",
                "status",
                "solved_at",
                "updated_at",
            ],
            unique=False,
        )
    with op.batch_alter_table("usage_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_snapshots_account_week",
            ["account_id", "period_start", "recorded_at", "active_users", "licensed_seats"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_snapshots_account_week")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_account_created")
