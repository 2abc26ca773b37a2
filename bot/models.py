"""Billing domain, the same for every gateway.

Gateways translate their own objects into these; commands, cards and the
approval workflow only ever see these.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from bot.money import Money, zero


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Domain(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChargeStatus(StrEnum):
    succeeded = "succeeded"
    authorized = "authorized"
    partially_refunded = "partially_refunded"
    refunded = "refunded"
    disputed = "disputed"
    failed = "failed"
    voided = "voided"


class SubscriptionStatus(StrEnum):
    trialing = "trialing"
    active = "active"
    past_due = "past_due"
    unpaid = "unpaid"
    canceled = "canceled"
    incomplete = "incomplete"


class InvoiceStatus(StrEnum):
    draft = "draft"
    open = "open"
    paid = "paid"
    void = "void"
    uncollectible = "uncollectible"


class DisputeStatus(StrEnum):
    needs_response = "needs_response"
    under_review = "under_review"
    won = "won"
    lost = "lost"


class Address(_Domain):
    """A postal address; `country` is ISO 3166-1 alpha-2 (DE, FR, AU, ...)."""

    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None

    def lines(self) -> list[str]:
        """The address as printed on a document, country last."""
        city = " ".join(p for p in (self.postal_code, self.city) if p)
        parts = [self.line1, self.line2, ", ".join(p for p in (city, self.state) if p)]
        return [p for p in parts if p]


class Customer(_Domain):
    gateway: str
    id: str
    email: str | None = None
    name: str | None = None
    created: datetime | None = None
    address: Address | None = None
    # BCP 47 or Babel locale the customer prefers for documents and pages (de, pl-PL, ja_JP).
    locale: str | None = None
    tax_exempt: bool = False

    @property
    def country(self) -> str | None:
        return self.address.country if self.address else None


class TaxId(_Domain):
    gateway: str
    id: str
    type: str  # eu_vat, gb_vat, au_abn, ... (Stripe's names)
    value: str
    country: str | None = None
    verified: bool | None = None


class Refund(_Domain):
    gateway: str
    id: str
    charge_id: str
    amount: Money
    status: str = "succeeded"
    reason: str | None = None
    created: datetime | None = None


class Charge(_Domain):
    gateway: str
    id: str
    customer_id: str | None
    amount: Money
    amount_captured: int = 0
    amount_refunded: int = 0
    status: ChargeStatus
    description: str | None = None
    invoice_id: str | None = None
    payment_intent_id: str | None = None
    created: datetime | None = None
    failure_message: str | None = None

    @property
    def refundable(self) -> Money:
        """What may still be refunded: captured minus refunded, nothing once disputed."""
        if self.status not in (ChargeStatus.succeeded, ChargeStatus.partially_refunded):
            return zero(self.amount.currency)
        return Money(
            minor=self.amount_captured - self.amount_refunded, currency=self.amount.currency
        )

    @property
    def refunded(self) -> Money:
        return Money(minor=self.amount_refunded, currency=self.amount.currency)


class PayLinkStatus(StrEnum):
    open = "open"  # can be paid
    paid = "paid"
    expired = "expired"  # timed out or cancelled at the gateway: a new link is needed


class PayLink(_Domain):
    """A gateway-hosted page where a customer pays: `url` is a bearer secret (agents and the
    customer's email only; never logged, never in the audit log)."""

    gateway: str
    id: str  # cs_… (Stripe Checkout Session), a PayPal order ID
    status: PayLinkStatus
    url: str | None = None  # None once it can no longer be paid
    expires_at: datetime | None = None
    charge_id: str | None = None  # what paid it, once paid

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        return [(k, "…" if k == "url" and v else v) for k, v in super().__repr_args__()]


class Subscription(_Domain):
    gateway: str
    id: str
    customer_id: str
    plan: str
    status: SubscriptionStatus
    amount: Money
    interval: str = "month"
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    # Payments stopped until resumed (Stripe pause_collection, PayPal SUSPENDED, ...).
    paused: bool = False
    quantity: int = 1
    trial_end: datetime | None = None
    # A plan change waiting for the renewal (a Stripe subscription schedule's next phase).
    next_plan: str | None = None
    next_plan_from: datetime | None = None


class PlanPrice(_Domain):
    """A price (or plan) a subscription can be on: `amount` per `interval`, per seat."""

    gateway: str
    id: str
    name: str
    amount: Money
    interval: str = "month"


class PlanChange(_Domain):
    """A previewed plan change: `due_now` is charged today (negative: credited), then
    `recurring` each `interval`. `at` (epoch seconds) is when the proration was computed;
    the change is prorated as of the same instant, so it charges what the preview said."""

    gateway: str
    subscription_id: str
    price: str
    plan: str
    now: bool
    prorate: bool
    at: int
    due_now: Money
    recurring: Money
    interval: str = "month"
    quantity: int = 1
    # A change at renewal: when the new price starts (the current period's end).
    starts_at: datetime | None = None


class InvoiceLine(_Domain):
    """One line of a gateway invoice: `amount` is the line total as charged."""

    description: str
    quantity: int = 1
    amount: Money


class Invoice(_Domain):
    gateway: str
    id: str
    customer_id: str
    number: str | None = None
    status: InvoiceStatus
    amount_due: Money
    amount_paid: Money
    due_date: datetime | None = None
    created: datetime | None = None
    charge_id: str | None = None
    pdf_url: str | None = None
    hosted_url: str | None = None
    lines: tuple[InvoiceLine, ...] = ()
    paid_at: datetime | None = None

    def is_overdue(self, now: datetime | None = None) -> bool:
        return (
            self.status == InvoiceStatus.open
            and self.due_date is not None
            and self.due_date < (now or utcnow())
        )


class Dispute(_Domain):
    gateway: str
    id: str
    charge_id: str
    amount: Money
    reason: str
    status: DisputeStatus
    evidence_due_by: datetime | None = None


class Coupon(_Domain):
    """A coupon or promotion code as the gateway holds it: what it takes off, for how long."""

    gateway: str
    code: str  # as it is applied: the promotion code, or the coupon's ID
    name: str | None = None
    percent_off: Decimal | None = None  # exact: 12.5 is Decimal("12.5"), never a float
    amount_off: Money | None = None
    duration: str = "once"  # once | repeating | forever
    duration_in_months: int | None = None

    def describe(self) -> str:
        """`WELCOME10: 10% off for 3 months`, `SPRING (Spring sale): €5.00 off once`."""
        label = self.code if self.name in (None, "", self.code) else f"{self.code} ({self.name})"
        if self.percent_off is not None:
            off = f"{self.percent_off.normalize():f}% off"
        elif self.amount_off is not None:
            off = f"{self.amount_off.format()} off"
        else:
            off = "a discount"
        if self.duration == "repeating" and self.duration_in_months:
            months = self.duration_in_months
            return f"{label}: {off} for {months} month{'s' if months != 1 else ''}"
        return f"{label}: {off} {'forever' if self.duration == 'forever' else 'once'}"


class GatewayProfile(_Domain):
    """One customer as one gateway knows them."""

    gateway: str
    customer: Customer
    charges: tuple[Charge, ...] = ()
    refunds: tuple[Refund, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    disputes: tuple[Dispute, ...] = ()
    tax_ids: tuple[TaxId, ...] = ()
    discounts: tuple[str, ...] = ()  # human descriptions: "WELCOME10: 10% off, forever"
    # What the gateway can do (Capability values), set by the lookup: the card offers only
    # those buttons. None: not known, every button is offered and the command decides.
    capabilities: frozenset[str] | None = None


class GatewayFailure(_Domain):
    """A gateway that could not answer a lookup: its part of the card says so."""

    gateway: str
    code: str
    message: str


class BillingProfile(_Domain):
    """One customer merged across every gateway that knows them."""

    query: str
    profiles: tuple[GatewayProfile, ...] = ()
    failures: tuple[GatewayFailure, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.profiles)

    @property
    def email(self) -> str | None:
        return next((p.customer.email for p in self.profiles if p.customer.email), None)

    @property
    def name(self) -> str | None:
        return next((p.customer.name for p in self.profiles if p.customer.name), None)

    def charges(self) -> list[Charge]:
        return _newest_first(c for p in self.profiles for c in p.charges)

    def subscriptions(self) -> list[Subscription]:
        return [s for p in self.profiles for s in p.subscriptions]

    def invoices(self) -> list[Invoice]:
        return _newest_first(i for p in self.profiles for i in p.invoices)

    def disputes(self) -> list[Dispute]:
        return [d for p in self.profiles for d in p.disputes]

    def lifetime_value(self) -> list[Money]:
        """Net paid per currency: captured minus refunded over all charges."""
        totals: dict[str, int] = {}
        for charge in self.charges():
            net = charge.amount_captured - charge.amount_refunded
            totals[charge.amount.currency] = totals.get(charge.amount.currency, 0) + net
        return [Money(minor=v, currency=c) for c, v in sorted(totals.items())]


_EPOCH = datetime.min.replace(tzinfo=UTC)


_T = TypeVar("_T", Charge, Invoice)


def _newest_first(items: Iterable[_T]) -> list[_T]:
    return sorted(items, key=lambda i: getattr(i, "created", None) or _EPOCH, reverse=True)
