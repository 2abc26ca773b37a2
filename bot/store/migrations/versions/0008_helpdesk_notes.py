"""helpdesk_notes: one billing note per new helpdesk ticket

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per (helpdesk, ticket): the unique key is what makes a redelivery do nothing.
    op.create_table(
        "helpdesk_notes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("helpdesk", sa.String(length=20), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("marker", sa.String(length=80), nullable=False),
        sa.Column("requester_email", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("delivery_id", sa.String(length=128), nullable=True),
        sa.Column("matched", sa.String(length=20), nullable=True),
        sa.Column("note_id", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_helpdesk_notes")),
        sa.UniqueConstraint("helpdesk", "ticket_id", name=op.f("uq_helpdesk_notes_helpdesk")),
    )
    op.create_index(op.f("ix_helpdesk_notes_state"), "helpdesk_notes", ["state"], unique=False)


def downgrade() -> None:
    op.drop_table("helpdesk_notes")
