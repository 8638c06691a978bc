"""account merges and CRM sentiment

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:30:00

Accounts learn which account they were merged into (HubSpot `hs_merged_object_ids`), and
the CSM sentiment an admin keeps in a CRM field, from which sentiment entries are derived.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts", sa.Column("merged_into", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.add_column(
        "accounts", sa.Column("crm_sentiment", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.add_column(
        "accounts",
        sa.Column("crm_sentiment_note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    op.add_column(
        "accounts", sa.Column("crm_sentiment_at", store.types.UTCDateTime(), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("crm_sentiment_at")
        batch.drop_column("crm_sentiment_note")
        batch.drop_column("crm_sentiment")
        batch.drop_column("merged_into")
