"""helpdesk_notes: several notes per ticket, one per topic

The billing note becomes topic `billing`; traces of actions taken from the agent panel
(`reply:<id>`, `decided:<approval id>`) are further topics on the same ticket, each
recorded and posted once. A trace is written when it is recorded, so its body is kept
until it is posted.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The naming convention (bot/store/tables.py) names a unique constraint after its first
# column, so the key keeps its name while it gains `topic`.
UNIQUE = "uq_helpdesk_notes_helpdesk"


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a constraint in place, so the table is copied.
    with op.batch_alter_table("helpdesk_notes") as batch:
        # Every row so far is a billing note; the default fills them in and then goes.
        batch.add_column(
            sa.Column("topic", sa.String(length=120), nullable=False, server_default="billing")
        )
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.drop_constraint(UNIQUE, type_="unique")
        batch.create_unique_constraint(UNIQUE, ["helpdesk", "ticket_id", "topic"])
    with op.batch_alter_table("helpdesk_notes") as batch:
        batch.alter_column("topic", existing_type=sa.String(length=120), server_default=None)


def downgrade() -> None:
    # Only the billing notes fit the old key; the traces' records go.
    op.execute(sa.text("DELETE FROM helpdesk_notes WHERE topic <> 'billing'"))
    with op.batch_alter_table("helpdesk_notes") as batch:
        batch.drop_constraint(UNIQUE, type_="unique")
        batch.create_unique_constraint(UNIQUE, ["helpdesk", "ticket_id"])
        batch.drop_column("body")
        batch.drop_column("topic")
