"""documents and emails

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "document_series",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "kind", name=op.f("pk_document_series")),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("source_gateway", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("customer_email", sa.String(length=320), nullable=True),
        sa.Column("related_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("treatment", sa.String(length=24), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("entity", "kind", "seq", name=op.f("uq_documents_entity")),
        sa.UniqueConstraint("kind", "source_gateway", "source_id", name=op.f("uq_documents_kind")),
        sa.UniqueConstraint("number", name=op.f("uq_documents_number")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_customer_email"), ["customer_email"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_documents_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_issued_at"), ["issued_at"], unique=False)

    op.create_table(
        "emails",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("document_id", sa.String(length=40), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emails")),
        sa.UniqueConstraint("purpose", name=op.f("uq_emails_purpose")),
    )
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_emails_document_id"), ["document_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_emails_state"), ["state"], unique=False)

    with op.batch_alter_table("ledger_customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("locale", sa.String(length=35), nullable=True))
        batch_op.add_column(
            sa.Column("tax_exempt", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("tax_id_type", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("tax_id_value", sa.String(length=64), nullable=True))

    with op.batch_alter_table("ledger_invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lines", sa.JSON(), nullable=True))

    op.create_table(
        "document_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("gateway", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("document_id", sa.String(length=40), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_requests")),
        sa.UniqueConstraint("kind", "gateway", "source_id", name=op.f("uq_document_requests_kind")),
    )
    with op.batch_alter_table("document_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_requests_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_requests_state"))

    op.drop_table("document_requests")
    with op.batch_alter_table("ledger_invoices", schema=None) as batch_op:
        batch_op.drop_column("lines")

    with op.batch_alter_table("ledger_customers", schema=None) as batch_op:
        batch_op.drop_column("tax_id_value")
        batch_op.drop_column("tax_id_type")
        batch_op.drop_column("tax_exempt")
        batch_op.drop_column("locale")
        batch_op.drop_column("address")

    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_emails_state"))
        batch_op.drop_index(batch_op.f("ix_emails_document_id"))

    op.drop_table("emails")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_issued_at"))
        batch_op.drop_index(batch_op.f("ix_documents_customer_id"))
        batch_op.drop_index(batch_op.f("ix_documents_customer_email"))

    op.drop_table("documents")
    op.drop_table("document_series")
