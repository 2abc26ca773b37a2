"""Our domain objects as rows of the billing index (pure: no I/O).

Every gateway already maps its answers to `bot.models`; the index stores those, so a
row means the same whichever gateway it came from. Amounts keep their minor units and the
ISO 4217 digits they were written with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.gateways.readings import folded
from bot.models import Charge, Customer, Dispute, GatewayProfile, Invoice, Refund, Subscription
from bot.money import Money, exponent

KINDS = ("customer", "charge", "refund", "invoice", "subscription", "dispute")
Indexable = Customer | Charge | Refund | Invoice | Subscription | Dispute
Row = dict[str, Any]


def name_key(name: str | None) -> str | None:
    """A name as search compares it: Unicode-normalised, case-folded, spaces collapsed."""
    if not name:
        return None
    return folded(name)[:200] or None


def _money(amount: Money | None) -> Row:
    if amount is None:
        return {"amount": None, "currency": None, "exponent": None}
    return {
        "amount": amount.minor,
        "currency": amount.currency,
        "exponent": exponent(amount.currency),
    }


def kind_of(obj: Indexable) -> str:
    return {
        Customer: "customer", Charge: "charge", Refund: "refund", Invoice: "invoice",
        Subscription: "subscription", Dispute: "dispute",
    }[type(obj)]  # fmt: skip


def row(obj: Indexable, *, synced_at: datetime, customer: Customer | None = None) -> Row:
    """The index row of one object; `customer` lends its email and name to the others."""
    who = obj if isinstance(obj, Customer) else customer
    out: Row = {
        "gateway": obj.gateway, "kind": kind_of(obj), "object_id": obj.id,
        "customer_id": getattr(obj, "customer_id", None) or (who.id if who else None),
        "email": who.email.lower() if who and who.email else None,
        "name": who.name[:200] if who and who.name else None,
        "name_key": name_key(who.name) if who else None,
        "number": None, "related_id": None, "amount_settled": None, "status": None,
        "created": getattr(obj, "created", None), "due": None, "paid_at": None,
        "synced_at": synced_at, **_money(None),
    }  # fmt: skip
    if isinstance(obj, Customer):
        out["customer_id"] = obj.id
    elif isinstance(obj, Charge):
        # What the charge took: the captured part of an authorization, else the whole.
        taken = Money(minor=obj.amount_captured or obj.amount.minor, currency=obj.amount.currency)
        out |= _money(taken) | {
            "amount_settled": obj.amount_refunded, "status": obj.status.value,
            "related_id": obj.invoice_id,
        }  # fmt: skip
    elif isinstance(obj, Refund):
        out |= _money(obj.amount) | {"status": obj.status, "related_id": obj.charge_id}
    elif isinstance(obj, Invoice):
        out |= _money(obj.amount_due) | {
            "amount_settled": obj.amount_paid.minor, "status": obj.status.value,
            "number": obj.number, "due": obj.due_date, "paid_at": obj.paid_at,
            "related_id": obj.charge_id,
        }  # fmt: skip
    elif isinstance(obj, Subscription):
        out |= _money(obj.amount) | {"status": obj.status.value, "due": obj.current_period_end}
    elif isinstance(obj, Dispute):
        out |= _money(obj.amount) | {
            "status": obj.status.value, "related_id": obj.charge_id, "due": obj.evidence_due_by,
        }  # fmt: skip
    return out


def profile_rows(profile: GatewayProfile, *, synced_at: datetime) -> list[Row]:
    """Every object a lookup brought back, each as a row."""
    who = profile.customer
    objects: list[Indexable] = [who, *profile.charges, *profile.refunds, *profile.invoices,
                                *profile.subscriptions, *profile.disputes]  # fmt: skip
    return [row(obj, synced_at=synced_at, customer=who) for obj in objects]
