"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("gateway", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("refundable_at_request", sa.BigInteger(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requester_key", sa.String(length=200), nullable=False),
        sa.Column("requester_name", sa.String(length=200), nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("approver_role", sa.String(length=16), nullable=False),
        sa.Column("auto_approved", sa.Boolean(), nullable=False),
        sa.Column("policy_note", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_request_id", sa.String(length=200), nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_approvals_requester_key"), ["requester_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_approvals_state"), ["state"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_platform", sa.String(length=40), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=40), nullable=True),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("approval_id", sa.String(length=40), nullable=True),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("gateway_request_id", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index("ix_audit_log_actor", ["actor_platform", "actor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_approval_id"), ["approval_id"], unique=False)

    op.create_table(
        "ledger_customers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_customers")),
    )
    with op.batch_alter_table("ledger_customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_customers_email"), ["email"], unique=False)

    op.create_table(
        "ledger_operations",
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("result_id", sa.String(length=64), nullable=False),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_ledger_operations")),
    )
    op.create_table(
        "approval_votes",
        sa.Column("approval_id", sa.String(length=40), nullable=False),
        sa.Column("approver_key", sa.String(length=200), nullable=False),
        sa.Column("approver_name", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["approval_id"], ["approvals.id"], name=op.f("fk_approval_votes_approval_id_approvals")
        ),
        sa.PrimaryKeyConstraint("approval_id", "approver_key", name=op.f("pk_approval_votes")),
    )
    op.create_table(
        "ledger_charges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_captured", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["ledger_customers.id"],
            name=op.f("fk_ledger_charges_customer_id_ledger_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_charges")),
    )
    with op.batch_alter_table("ledger_charges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_charges_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_charges_invoice_id"), ["invoice_id"], unique=False
        )

    op.create_table(
        "ledger_invoices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["ledger_customers.id"],
            name=op.f("fk_ledger_invoices_customer_id_ledger_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_invoices")),
    )
    with op.batch_alter_table("ledger_invoices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_invoices_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "ledger_subscriptions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["ledger_customers.id"],
            name=op.f("fk_ledger_subscriptions_customer_id_ledger_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_subscriptions")),
    )
    with op.batch_alter_table("ledger_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_subscriptions_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "ledger_disputes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["charge_id"],
            ["ledger_charges.id"],
            name=op.f("fk_ledger_disputes_charge_id_ledger_charges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_disputes")),
    )
    with op.batch_alter_table("ledger_disputes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_disputes_charge_id"), ["charge_id"], unique=False
        )

    op.create_table(
        "ledger_refunds",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["charge_id"],
            ["ledger_charges.id"],
            name=op.f("fk_ledger_refunds_charge_id_ledger_charges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_refunds")),
    )
    with op.batch_alter_table("ledger_refunds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_refunds_charge_id"), ["charge_id"], unique=False
        )
    # The chain head exists from the start, so the first append locks a row like every other.
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.BigInteger),
            sa.column("hash", sa.String),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )


def downgrade() -> None:

    with op.batch_alter_table("ledger_refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_refunds_charge_id"))

    op.drop_table("ledger_refunds")
    with op.batch_alter_table("ledger_disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_disputes_charge_id"))

    op.drop_table("ledger_disputes")
    with op.batch_alter_table("ledger_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_subscriptions_customer_id"))

    op.drop_table("ledger_subscriptions")
    with op.batch_alter_table("ledger_invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_invoices_customer_id"))

    op.drop_table("ledger_invoices")
    with op.batch_alter_table("ledger_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_charges_invoice_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_charges_customer_id"))

    op.drop_table("ledger_charges")
    op.drop_table("approval_votes")
    op.drop_table("ledger_operations")
    with op.batch_alter_table("ledger_customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_customers_email"))

    op.drop_table("ledger_customers")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_approval_id"))
        batch_op.drop_index("ix_audit_log_actor")
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
    op.drop_table("audit_head")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_state"))
        batch_op.drop_index(batch_op.f("ix_approvals_requester_key"))

    op.drop_table("approvals")
