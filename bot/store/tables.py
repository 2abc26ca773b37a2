"""SQL tables: the system of record. Alembic migrations in migrations/ create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from bot.gateways.readings import folded


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- ledger gateway: the business's own billing data -------------------------------------


class LedgerCustomer(Base):
    __tablename__ = "ledger_customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # The name as search compares it (folded: NFKC, case-folded, spaces collapsed), kept with
    # `name` on every write, so a name search is one SQL query (neither database folds Unicode).
    name_key: Mapped[str | None] = mapped_column(String(200), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    # Billing details printed on documents: {"line1", "line2", "postal_code", "city", "state", "country"}.
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    locale: Mapped[str | None] = mapped_column(String(35))
    tax_exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    tax_id_type: Mapped[str | None] = mapped_column(String(16))
    tax_id_value: Mapped[str | None] = mapped_column(String(64))

    @validates("name")
    def _fold_name(self, _key: str, name: str | None) -> str | None:
        self.name_key = folded(name)[:200] if name else None
        return name


class LedgerCharge(Base):
    __tablename__ = "ledger_charges"
    # A customer's newest charges, read by every lookup: the index walks only the first
    # `lookup.max_charges` of them, however many the customer has.
    __table_args__ = (Index("ix_ledger_charges_customer_created", "customer_id", "created"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_customers.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_captured: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(24))
    description: Mapped[str | None] = mapped_column(String(500))
    invoice_id: Mapped[str | None] = mapped_column(String(64), index=True)
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    # The subscription this charge paid for, if any (imported, or a pay link's request):
    # `cancel <sub> now and-refund` refunds its newest paid one.
    subscription_id: Mapped[str | None] = mapped_column(String(64), index=True)


class LedgerPayLink(Base):
    """A ledger payment request's page on our billing pages: open → paid | cancelled, or past
    `expires_at`. Its URL is signed from the row and the deployment's key, never stored."""

    __tablename__ = "ledger_pay_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("ledger_customers.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(500))
    reference: Mapped[str] = mapped_column(String(64), index=True)  # our payment request's ID
    status: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    charge_id: Mapped[str | None] = mapped_column(String(64))


class LedgerRefund(Base):
    __tablename__ = "ledger_refunds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("ledger_charges.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(500))
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class LedgerSubscription(Base):
    __tablename__ = "ledger_subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("ledger_customers.id"), index=True)
    plan: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(16), default="month")
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    price_id: Mapped[str | None] = mapped_column(String(64))  # a ledger_prices row, if any
    quantity: Mapped[int] = mapped_column(Integer, default=1)  # `amount` is per seat
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)


class LedgerPrice(Base):
    """A plan the business sells through the ledger: `amount` per seat per `interval`."""

    __tablename__ = "ledger_prices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(16), default="month")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LedgerInvoice(Base):
    __tablename__ = "ledger_invoices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("ledger_customers.id"), index=True)
    number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    amount_due: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    due_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    charge_id: Mapped[str | None] = mapped_column(String(64))
    # [{"description", "quantity", "amount"}]: line totals in minor units of `currency`.
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class LedgerDispute(Base):
    __tablename__ = "ledger_disputes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("ledger_charges.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    evidence_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What we answered with (bot/disputes/evidence.py `stored`), and when it was submitted.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evidence_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerCoupon(Base):
    """A coupon the business offers: a percentage (in basis points) or an amount off."""

    __tablename__ = "ledger_coupons"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the code applied: WELCOME10
    name: Mapped[str | None] = mapped_column(String(200))
    percent_off_bp: Mapped[int | None] = mapped_column(Integer)  # 1250 = 12.5 % off
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    duration: Mapped[str] = mapped_column(String(16))  # once | repeating | forever
    duration_in_months: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LedgerDiscount(Base):
    """A coupon applied to a customer or a subscription: one per target (unique)."""

    __tablename__ = "ledger_discounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    coupon_id: Mapped[str] = mapped_column(ForeignKey("ledger_coupons.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("ledger_customers.id"), index=True)
    target_id: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class LedgerOperation(Base):
    """One money-moving action per idempotency key: a retry returns what the first did."""

    __tablename__ = "ledger_operations"

    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[str] = mapped_column(String(64))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime)


# --- approvals --------------------------------------------------------------------------


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), index=True)
    gateway: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    # What was refundable when the request was made; a different value at
    # approval time means someone else moved money: the request goes stale.
    refundable_at_request: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason_code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    requester_key: Mapped[str] = mapped_column(String(200), index=True)
    requester_name: Mapped[str] = mapped_column(String(200))
    approvals_required: Mapped[int] = mapped_column(Integer)
    approver_role: Mapped[str] = mapped_column(String(16))
    auto_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_note: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result_id: Mapped[str | None] = mapped_column(String(64))
    gateway_request_id: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The day (YYYY-MM-DD, UTC) whose auto-approve budget paid for this request; cleared by the
    # one conditional UPDATE that gives it back, so a failed or stale run refunds it exactly once.
    budget_day: Mapped[str | None] = mapped_column(String(10))


class ApprovalVote(Base):
    __tablename__ = "approval_votes"

    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"), primary_key=True)
    approver_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    approver_name: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- audit log --------------------------------------------------------------------------


class AuditEntry(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_platform: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    gateway: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)
    approval_id: Mapped[str | None] = mapped_column(String(40), index=True)
    approvers: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(32))
    gateway_request_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_audit_log_actor", AuditEntry.actor_platform, AuditEntry.actor_id)


class AuditHead(Base):
    """The chain's head in one row: locking it serializes appends on every backend."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


# --- gateway events and notifications ---------------------------------------------------


class ProcessedEvent(Base):
    """Every webhook event handled once: a redelivery finds its row and does nothing."""

    __tablename__ = "processed_events"

    gateway: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    raw_type: Mapped[str] = mapped_column(String(80))
    object_id: Mapped[str] = mapped_column(String(128))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(32))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GatewayObjectState(Base):
    """The newest state we heard of per gateway object; an older event never overwrites it."""

    __tablename__ = "gateway_object_state"

    gateway: Mapped[str] = mapped_column(String(40), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(128))
    event_created: Mapped[datetime] = mapped_column(UTCDateTime)


# --- billing index (bot/index): every gateway's objects, mirrored for search and reports ---


class IndexedObject(Base):
    """One gateway object as last synced or heard of: a customer, charge, refund, invoice,
    subscription or dispute. Amounts are minor units with the digits they were written in."""

    __tablename__ = "billing_index"
    __table_args__ = (
        # Reports read kind, time, currency, status and amount only: the index answers alone.
        Index("ix_billing_index_report", "kind", "created", "currency", "status", "amount"),
        Index("ix_billing_index_customer", "gateway", "customer_id"),
        # Lookup by name or part of an email reads customers from this index alone.
        Index("ix_billing_index_people", "kind", "name_key", "email", "gateway", "customer_id"),
    )

    gateway: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(320), index=True)  # lower case
    name: Mapped[str | None] = mapped_column(String(200))
    name_key: Mapped[str | None] = mapped_column(String(200), index=True)  # folded for search
    number: Mapped[str | None] = mapped_column(String(64), index=True)  # invoice or order number
    related_id: Mapped[str | None] = mapped_column(String(128))  # a refund's or dispute's charge
    amount: Mapped[int | None] = mapped_column(BigInteger)
    amount_settled: Mapped[int | None] = mapped_column(BigInteger)  # refunded, or paid
    currency: Mapped[str | None] = mapped_column(String(3))
    exponent: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(32))
    created: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due: Mapped[datetime | None] = mapped_column(UTCDateTime)  # invoice due, evidence due
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncCursor(Base):
    """How far a gateway's backfill of one kind of object got: where the next page starts."""

    __tablename__ = "sync_cursors"

    gateway: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(500))
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)


class Notification(Base):
    """An alert card waiting for (or delivered to) a chat channel: durable, so none is lost."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    channel: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DisputeReminder(Base):
    """A reminder posted for a dispute whose evidence is due within `days`: one per threshold."""

    __tablename__ = "dispute_reminders"

    gateway: Mapped[str] = mapped_column(String(40), primary_key=True)
    dispute_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    days: Mapped[int] = mapped_column(Integer, primary_key=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChatMessage(Base):
    """Where a chat platform shows an approval request, so every decision updates it in place."""

    __tablename__ = "chat_messages"

    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(20), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime)


# --- documents: invoices, receipts and credit notes we issue --------------------------------


class DocumentSeries(Base):
    """The last number issued per legal entity and document type: numbering is gapless."""

    __tablename__ = "document_series"

    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger)


class DocumentRow(Base):
    """An issued document: never updated. Its PDF is kept as issued."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("entity", "kind", "seq"),
        # One receipt per charge, one invoice per gateway invoice, one credit note per refund.
        UniqueConstraint("kind", "source_gateway", "source_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    source_gateway: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_email: Mapped[str | None] = mapped_column(String(320), index=True)
    related_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    gross: Mapped[int] = mapped_column(BigInteger)
    treatment: Mapped[str] = mapped_column(String(24))
    country: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


class EmailRow(Base):
    """An email to send: the whole message is built before it is queued, so a retry sends the same bytes."""

    __tablename__ = "emails"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # What the email is for ("receipt:doc_..."): the same purpose never queues a second email.
    purpose: Mapped[str] = mapped_column(String(200), unique=True)
    document_id: Mapped[str | None] = mapped_column(String(40), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(12), index=True)  # pending, sending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DocumentRequest(Base):
    """A receipt or credit note that is due: written with its cause, done by a job."""

    __tablename__ = "document_requests"
    __table_args__ = (UniqueConstraint("kind", "gateway", "source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    gateway: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(
        String(64)
    )  # the charge (receipt) or refund (credit note)
    charge_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12), index=True)  # pending, done, skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    document_id: Mapped[str | None] = mapped_column(String(40))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)


# --- customers: verified identities and billing-page links --------------------------------


class CustomerLink(Base):
    """A chat user who proved they read the mailbox of a billing email: they see that customer."""

    __tablename__ = "customer_links"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    actor_key: Mapped[str] = mapped_column(String(200), index=True)  # slack:U123
    actor_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))


class VerificationCode(Base):
    """A one-time code sent to an email: single use, expiring, a few tries."""

    __tablename__ = "verification_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Who asked: a chat user (slack:U123) or a browser (portal:<session id>).
    subject: Mapped[str] = mapped_column(String(200), index=True)
    email: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PortalGrant(Base):
    """What a billing-page link opens: the link carries only this row's ID, signed, never the email."""

    __tablename__ = "portal_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- money: what the stored integers mean --------------------------------------------------


class CurrencyDigits(Base):
    """The minor-unit digits every stored amount of a currency was written with.

    Amounts are bare integers; this row is what gives them their meaning. A
    start whose ISO 4217 table disagrees for a currency present in the store is
    refused (bot/currency_digits.py).
    """

    __tablename__ = "currency_digits"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    digits: Mapped[int] = mapped_column(Integer)
    # Which table gave the digits: "ISO 4217 2026-01-01", "Babel 2.18.0 (migration 0006)", ...
    source: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- deliveries (engineer B): each chat delivery acts once ---------------------------------


class Delivery(Base):
    """One chat delivery that ran (a signed Slack request, a Discord interaction): a replay
    finds its row and runs nothing, even after Redis lost its key (bot/deliveries.py)."""

    __tablename__ = "deliveries"

    platform: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# --- billing-page sessions (engineer C): each one can be ended from the server -------------


class PortalSession(Base):
    """One signed-in browser on the billing pages: the cookie holds only this row's ID, signed.

    Sign-out, an expiry, or revoking the email or the link (grant) that opened it ends the
    row, and a cookie whose row has ended opens nothing, even if it was copied before.
    """

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    via: Mapped[str] = mapped_column(String(20))  # link or email_code
    grant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_why: Mapped[str | None] = mapped_column(String(40))  # signed_out, revoked, replaced


# --- helpdesk notes: one billing note per new ticket ---------------------------------------


class HelpdeskNote(Base):
    """One internal note on a ticket: recorded once per (helpdesk, ticket, topic), posted once.

    Topic `billing` is the billing note of a new ticket; others (`reply:<id>`,
    `decided:<approval id>`) are traces of actions taken from the agent panel.
    pending → posting → posted | failed, and posting → pending after an attempt that failed.
    A row found in `posting` past its lease had an outcome nobody knows (a crash, a timeout):
    its recovery looks for `marker` on the ticket before it posts (bot/helpdesk/ticket_notes.py).
    """

    __tablename__ = "helpdesk_notes"
    __table_args__ = (UniqueConstraint("helpdesk", "ticket_id", "topic"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # cdn_...
    helpdesk: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(12), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    marker: Mapped[str] = mapped_column(String(80))
    # What the delivery said (billing), or the note as written (a trace), kept until the
    # note is out; then the text and the body are dropped.
    requester_email: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    delivery_id: Mapped[str | None] = mapped_column(String(128))
    matched: Mapped[str | None] = mapped_column(String(20))  # email, reference, document, none
    note_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- agent panel sessions: one per signed entry from a helpdesk -------------------------------


class PanelSessionRow(Base):
    """One agent panel opened from a helpdesk (bot/panel/session.py): the cookie only names it.

    `entry_key` (a digest of the signed entry's token ID) is unique, so a replayed entry
    opens nothing. Roles are not stored: they come from the configuration on every request.
    """

    __tablename__ = "panel_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # pn_...
    entry_key: Mapped[str] = mapped_column(String(64), unique=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    agent_email: Mapped[str] = mapped_column(String(320), index=True)
    agent_name: Mapped[str | None] = mapped_column(String(200))
    ticket: Mapped[str | None] = mapped_column(String(64))
    requester: Mapped[str | None] = mapped_column(String(320))
    vouched: Mapped[bool] = mapped_column(Boolean)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    language: Mapped[str | None] = mapped_column(String(8))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_why: Mapped[str | None] = mapped_column(String(40))
    # The remembered browser that confirmed this session's email, if one did: forgetting
    # that browser ends the sessions it confirmed.
    trusted_browser: Mapped[str | None] = mapped_column(String(40), index=True)


class PanelBrowserRow(Base):
    """A browser that confirmed an agent's email in an unvouched panel (bot/panel/browsers.py).

    Its cookie holds the row ID signed with the deployment's key, never the email: a later
    Front or Freshdesk entry for the same helpdesk and email, in that browser, opens confirmed
    until `expires_at`, unless `revoked_at` is set (forgotten at sign-out, or replaced).
    """

    __tablename__ = "panel_browsers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # pb_...
    helpdesk: Mapped[str] = mapped_column(String(20))
    agent_email: Mapped[str] = mapped_column(String(320), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentRequestRow(Base):
    """A customer asked to pay on a gateway's page (bot/payment_requests): open → paid |
    cancelled | expired. The pay link's URL is never stored: it is asked of the gateway
    when an email goes out (bot/mail/placeholders.py)."""

    __tablename__ = "payment_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    email: Mapped[str] = mapped_column(String(320))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    link_id: Mapped[str] = mapped_column(String(255), index=True)  # the current one
    link_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    next_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_with: Mapped[str | None] = mapped_column(String(255))  # the gateway's payment ID
    # The customer's locale when asked (as documents choose it): the emails' words and amounts.
    locale: Mapped[str | None] = mapped_column(String(35))
