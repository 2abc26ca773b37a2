"""customer links, codes and portal grants

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_links",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("actor_key", sa.String(length=200), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_links")),
    )
    with op.batch_alter_table("customer_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_links_actor_key"), ["actor_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_customer_links_email"), ["email"], unique=False)

    op.create_table(
        "portal_grants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_grants")),
    )
    with op.batch_alter_table("portal_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_grants_email"), ["email"], unique=False)

    op.create_table(
        "verification_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_codes_subject"), ["subject"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_codes_subject"))

    op.drop_table("verification_codes")
    with op.batch_alter_table("portal_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_grants_email"))

    op.drop_table("portal_grants")
    with op.batch_alter_table("customer_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_links_email"))
        batch_op.drop_index(batch_op.f("ix_customer_links_actor_key"))

    op.drop_table("customer_links")
