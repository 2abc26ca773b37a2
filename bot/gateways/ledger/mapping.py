"""Ledger rows as our models: pure conversion, no I/O.

The ledger's tables hold amounts in ISO 4217 minor units already, so a row's
integer becomes Money as it is; nothing here opens a session.
"""

from __future__ import annotations

from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Customer,
    Dispute,
    DisputeStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
    TaxId,
)
from bot.money import Money
from bot.store.tables import (
    LedgerCharge,
    LedgerCustomer,
    LedgerDispute,
    LedgerInvoice,
    LedgerRefund,
    LedgerSubscription,
)
from bot.tax_ids import tax_id_country

NAME = "ledger"


def customer_of(row: LedgerCustomer) -> Customer:
    """A ledger customer row as ours."""
    return Customer(
        gateway=NAME,
        id=row.id,
        email=row.email,
        name=row.name,
        created=row.created,
        address=Address(**row.address) if row.address else None,
        locale=row.locale,
        tax_exempt=row.tax_exempt,
    )


def country_of(row: LedgerCustomer) -> str | None:
    """The customer's country from their address, upper-case; None without one."""
    country = row.address.get("country") if row.address else None
    return country.upper() if isinstance(country, str) and country else None


def tax_id_id(customer_id: str) -> str:
    """The ID of a customer's one tax ID."""
    return f"{customer_id}:tax_id"


def tax_ids_of(row: LedgerCustomer) -> tuple[TaxId, ...]:
    """The customer's tax ID, if they have one."""
    if not row.tax_id_value:
        return ()
    return (
        TaxId(
            gateway=NAME,
            id=tax_id_id(row.id),
            type=row.tax_id_type or "unknown",
            value=row.tax_id_value,
            country=tax_id_country(row.tax_id_type, row.tax_id_value) or country_of(row),
        ),
    )


def charge_of(row: LedgerCharge) -> Charge:
    """A ledger charge row as ours."""
    return Charge(
        gateway=NAME,
        id=row.id,
        customer_id=row.customer_id,
        amount=Money(minor=row.amount, currency=row.currency),
        amount_captured=row.amount_captured,
        amount_refunded=row.amount_refunded,
        status=ChargeStatus(row.status),
        description=row.description,
        invoice_id=row.invoice_id,
        created=row.created,
        failure_message=row.failure_message,
    )


def refund_of(row: LedgerRefund) -> Refund:
    """A ledger refund row as ours."""
    return Refund(
        gateway=NAME,
        id=row.id,
        charge_id=row.charge_id,
        amount=Money(minor=row.amount, currency=row.currency),
        reason=row.reason,
        created=row.created,
    )


def subscription_of(row: LedgerSubscription) -> Subscription:
    """A ledger subscription row as ours."""
    return Subscription(
        gateway=NAME,
        id=row.id,
        customer_id=row.customer_id,
        plan=row.plan,
        status=SubscriptionStatus(row.status),
        amount=Money(minor=row.amount * (row.quantity or 1), currency=row.currency),
        interval=row.interval,
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        canceled_at=row.canceled_at,
        paused=bool(row.paused),
        quantity=row.quantity or 1,
        trial_end=row.trial_end,
    )


def invoice_of(row: LedgerInvoice) -> Invoice:
    """A ledger invoice row as ours."""
    return Invoice(
        gateway=NAME,
        id=row.id,
        customer_id=row.customer_id,
        number=row.number,
        status=InvoiceStatus(row.status),
        amount_due=Money(minor=row.amount_due, currency=row.currency),
        amount_paid=Money(minor=row.amount_paid, currency=row.currency),
        due_date=row.due_date,
        created=row.created,
        charge_id=row.charge_id,
        lines=tuple(
            InvoiceLine(
                description=line["description"],
                quantity=line.get("quantity", 1),
                amount=Money(minor=line["amount"], currency=row.currency),
            )
            for line in row.lines or ()
        ),
    )


def dispute_of(row: LedgerDispute) -> Dispute:
    """A ledger dispute row as ours."""
    return Dispute(
        gateway=NAME,
        id=row.id,
        charge_id=row.charge_id,
        amount=Money(minor=row.amount, currency=row.currency),
        reason=row.reason,
        status=DisputeStatus(row.status),
        evidence_due_by=row.evidence_due_by,
    )
