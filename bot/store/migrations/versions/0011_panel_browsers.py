"""panel_browsers: browsers remembered after an agent confirmed their email in the panel

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "panel_browsers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("helpdesk", sa.String(length=20), nullable=False),
        sa.Column("agent_email", sa.String(length=320), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_browsers")),
    )
    op.create_index(
        op.f("ix_panel_browsers_agent_email"), "panel_browsers", ["agent_email"], unique=False
    )
    # Which remembered browser confirmed a session: forgetting it ends those sessions.
    op.add_column(
        "panel_sessions", sa.Column("trusted_browser", sa.String(length=40), nullable=True)
    )
    op.create_index(
        op.f("ix_panel_sessions_trusted_browser"),
        "panel_sessions",
        ["trusted_browser"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_panel_sessions_trusted_browser"), table_name="panel_sessions")
    with op.batch_alter_table("panel_sessions") as batch:
        batch.drop_column("trusted_browser")
    op.drop_table("panel_browsers")
