"""panel_sessions: the agent panel's own sessions, one per signed entry

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The unique entry key is what makes a replayed entry open nothing.
    op.create_table(
        "panel_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("helpdesk", sa.String(length=20), nullable=False),
        sa.Column("agent_email", sa.String(length=320), nullable=False),
        sa.Column("agent_name", sa.String(length=200), nullable=True),
        sa.Column("ticket", sa.String(length=64), nullable=True),
        sa.Column("requester", sa.String(length=320), nullable=True),
        sa.Column("vouched", sa.Boolean(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_why", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_sessions")),
        sa.UniqueConstraint("entry_key", name=op.f("uq_panel_sessions_entry_key")),
    )
    op.create_index(
        op.f("ix_panel_sessions_agent_email"), "panel_sessions", ["agent_email"], unique=False
    )


def downgrade() -> None:
    op.drop_table("panel_sessions")
