"""The gateway contract: capabilities, unified errors, and the base class.

A gateway is a class, not a bare protocol, so that every capability it lacks
fails the same way: `Unsupported`, naming the gateway and the capability.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bot.disputes.evidence import Evidence
from bot.errors import UserError
from bot.gateways.events import GatewayEvent
from bot.gateways.readings import BROAD_KINDS, readings
from bot.models import (
    Address,
    Charge,
    Coupon,
    Customer,
    Dispute,
    GatewayProfile,
    Invoice,
    PayLink,
    PlanChange,
    PlanPrice,
    Refund,
    Subscription,
    TaxId,
)
from bot.money import Money

if TYPE_CHECKING:
    from bot.gateways.termination import PaidPeriod, PlannedRefund


class Capability(StrEnum):
    lookup = "lookup"
    refund = "refund"
    partial_refund = "partial_refund"
    manual_refund = "manual_refund"
    capture = "capture"
    void = "void"
    cancel_subscription = "cancel_subscription"
    cancel_with_refund = "cancel_with_refund"
    create_subscription = "create_subscription"
    coupon = "coupon"
    tax_id = "tax_id"
    customer_details = "customer_details"
    invoices = "invoices"
    send_invoice = "send_invoice"
    disputes = "disputes"
    webhooks = "webhooks"
    hosted_card_update = "hosted_card_update"
    sync = "sync"
    accept_dispute = "accept_dispute"
    dispute_evidence = "dispute_evidence"
    change_plan = "change_plan"
    pause_subscription = "pause_subscription"
    charge_saved_card = "charge_saved_card"
    payment_link = "payment_link"

    @property
    def label(self) -> str:
        """A short human name, as the capability matrix (`python -m bot.gateways.matrix`) shows it."""
        return _CAPABILITY_LABELS[self]


_CAPABILITY_LABELS: dict[Capability, str] = {
    Capability.lookup: "Look up customers and payments",
    Capability.refund: "Refund in full",
    Capability.partial_refund: "Refund part of a payment",
    Capability.manual_refund: "Record a refund paid back by hand",
    Capability.capture: "Capture an authorization",
    Capability.void: "Void an authorization",
    Capability.cancel_subscription: "Cancel a subscription",
    Capability.cancel_with_refund: "Cancel now and refund the last payment (or its unused part)",
    Capability.create_subscription: "Start a subscription",
    Capability.coupon: "Apply or remove a coupon",
    Capability.tax_id: "Add or remove a tax ID",
    Capability.customer_details: "Edit a customer's billing name and address",
    Capability.invoices: "Show invoices",
    Capability.send_invoice: "Send an invoice",
    Capability.disputes: "Show disputes",
    Capability.webhooks: "Receive webhooks",
    Capability.hosted_card_update: "Card update page (hosted by the gateway)",
    Capability.sync: "Mirror into the billing index",
    Capability.accept_dispute: "Accept a dispute",
    Capability.dispute_evidence: "Answer a dispute with evidence",
    Capability.change_plan: "Change a subscription's plan (with a proration preview)",
    Capability.pause_subscription: "Pause and resume a subscription",
    Capability.charge_saved_card: "Charge the customer's saved payment method",
    Capability.payment_link: "Payment request with a pay link (hosted by the gateway)",
}


class ErrorCode(StrEnum):
    not_found = "not_found"
    ambiguous = "ambiguous"
    already_refunded = "already_refunded"
    amount_too_large = "amount_too_large"
    currency_mismatch = "currency_mismatch"
    charge_disputed = "charge_disputed"
    invalid_state = "invalid_state"
    not_settled = "not_settled"
    card_declined = "card_declined"
    # The bank wants the cardholder present (3-D Secure): an off-session charge cannot pass.
    authentication_required = "authentication_required"
    rate_limited = "rate_limited"
    unavailable = "unavailable"
    timeout = "timeout"
    rejected = "rejected"
    unsupported = "unsupported"
    invalid_tax_id = "invalid_tax_id"
    # The gateway account lacks a setting the call needs (Stripe's Billing Portal).
    not_configured = "not_configured"


class GatewayError(UserError):
    """A gateway refused or failed, in our words, with its own words kept beside."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        gateway: str,
        raw_code: str | None = None,
        raw_message: str | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.gateway = gateway
        self.raw_code = raw_code
        self.raw_message = raw_message


class WebhookRejected(GatewayError):
    """A delivery whose signature is missing, forged or too old: answer 400, change nothing."""

    def __init__(self, gateway: str, message: str) -> None:
        super().__init__(ErrorCode.rejected, message, gateway=gateway)


class Unsupported(GatewayError):
    """A capability the gateway lacks; `reason` says why, where it depends on the account."""

    def __init__(self, gateway: str, capability: Capability, reason: str | None = None) -> None:
        message = f"the {gateway} gateway does not support {capability.value.replace('_', ' ')}"
        super().__init__(
            ErrorCode.unsupported, f"{message}: {reason}" if reason else message, gateway=gateway
        )
        self.capability = capability
        self.reason = reason


# What people call an order: `order #1234`, `Order no. 1234`, `order#1234`, `#1234`. Typed
# after `lookup` it is an order number (bot/references.py leaves a bare `#1234` in free text
# alone: helpdesks number their tickets that way).
_ORDER_NUMBER = re.compile(
    r"(?:order\s*(?:no\.?|number|num\.?)?\s*[:#]?\s*#?|#)\s*(\d{1,20})", re.IGNORECASE
)


LookupKind = Literal["email", "partial_email", "name", "id", "invoice_number"]


@dataclass(frozen=True)
class LookupQuery:
    """What an agent typed after `lookup`: an email or an object ID of any kind."""

    kind: LookupKind
    value: str

    @classmethod
    def parse(cls, text: str) -> LookupQuery:
        """The most precise reading of `text` (see `readings`)."""
        return cls.readings(text)[0]

    @classmethod
    def readings(cls, text: str) -> tuple[LookupQuery, ...]:
        """Every kind `text` might be, most precise first, without a network call: an email,
        part of one, an order number (`order #1234`, `#1234` -> `1234`), an ID as typed, an
        invoice number (`JANE-0003`), a name (bot/gateways/readings.py)."""
        text = " ".join(text.split())
        number = _ORDER_NUMBER.fullmatch(text)
        if number:
            return (cls("id", number.group(1)),)
        return tuple(cls(kind, value) for kind, value in readings(text))  # type: ignore[arg-type]

    @classmethod
    def exact(cls, text: str) -> tuple[LookupQuery, ...]:
        """The readings that find one customer; a name or part of an email is asked as
        before broad kinds existed (an ID, an email), so it finds nobody by accident."""
        found = tuple(q for q in cls.readings(text) if q.kind not in BROAD_KINDS)
        if found:
            return found
        text = " ".join(text.split())
        return (cls("email", text.lower()) if "@" in text else cls("id", text),)


@dataclass(frozen=True)
class SyncPage:
    """A page of objects for the billing index. `cursor` is where the gateway stands after
    them (kept, so the next sync starts there); `more` says whether another page follows."""

    objects: list[Any]
    cursor: str | None
    more: bool


class Gateway:
    """Base for every gateway. Override what the gateway can do; the rest is Unsupported."""

    name: str = "gateway"
    capabilities: frozenset[Capability] = frozenset()
    # What a gateway does only in part, in a few words for the capability matrix:
    # {Capability.cancel_subscription: "now only: no cancel at period end"}.
    limits: ClassVar[Mapping[Capability, str]] = MappingProxyType({})
    # Why a capability it lacks is missing, where a person can do something about it:
    # {Capability.pause_subscription: "Braintree has no pause: cancel, then subscribe again"}.
    missing: ClassVar[Mapping[Capability, str]] = MappingProxyType({})
    # The LookupQuery kinds `lookup` answers; the registry asks no others and says so
    # ("cannot search by name") on the card.
    lookup_kinds: ClassVar[frozenset[str]] = frozenset({"email", "id"})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        """Every customer matching the query, each with their billing profile."""
        raise Unsupported(self.name, Capability.lookup)

    async def get_charge(self, charge_id: str) -> Charge:
        raise Unsupported(self.name, Capability.lookup)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        raise Unsupported(self.name, Capability.lookup)

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        """Refund `amount` of a charge. The same key twice gives the same refund."""
        raise Unsupported(self.name, Capability.refund)

    async def precheck_refund(self, charge: Charge, amount: Money) -> None:
        """Refuse now, before anyone is asked to approve it, a refund this gateway would refuse
        whatever a manager decides (a rule only this gateway has: the shared ones are in
        `bot/gateways/checks.py`). Raise GatewayError; the default has no rule of its own."""

    async def record_manual_refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        """Record `amount` of a charge as refunded by hand (cash, a bank transfer): the gateway
        marks it refunded and moves no money. The same key twice records one refund."""
        raise self.lacking(Capability.manual_refund)

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        raise Unsupported(self.name, Capability.capture)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        raise Unsupported(self.name, Capability.void)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        raise Unsupported(self.name, Capability.cancel_subscription)

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """Read-only: the subscription's last paid charge and the period it paid for, which
        `cancel <sub> now and-refund` refunds from (bot/gateways/termination.py)."""
        raise self.lacking(Capability.cancel_with_refund)

    async def cancel_and_refund(
        self, subscription_id: str, refund: PlannedRefund, *, reason: str, idempotency_key: str
    ) -> Refund:
        """End the subscription now, then make the refund planned before approval: two steps,
        each with its own key derived from `idempotency_key`, so a retry after a crash between
        them finds the cancellation done and refunds exactly once."""
        await self.cancel_subscription(
            subscription_id, at_period_end=False, reason=reason,
            idempotency_key=f"{idempotency_key}:cancel",
        )  # fmt: skip
        try:
            return await self.refund(
                refund.charge_id, refund.amount, reason=reason,
                idempotency_key=f"{idempotency_key}:refund",
            )  # fmt: skip
        except GatewayError as exc:
            if exc.code in (ErrorCode.timeout, ErrorCode.unavailable, ErrorCode.rate_limited):
                raise  # the refund may have landed: the retry with the same key finds it
            raise GatewayError(
                exc.code,
                f"{subscription_id} is canceled, but the refund of {refund.charge_id} failed: "
                f"{exc.message}",
                gateway=self.name, raw_code=exc.raw_code, raw_message=exc.raw_message,
            ) from exc  # fmt: skip

    async def create_subscription(
        self,
        customer_id: str,
        price: str,
        *,
        idempotency_key: str,
        quantity: int = 1,
        trial_days: int | None = None,
        coupon: str | None = None,
    ) -> Subscription:
        """Start a subscription to `price` (a price or plan ID) for a customer, `quantity`
        seats, free for `trial_days`, with a coupon. The same key twice starts one."""
        raise Unsupported(self.name, Capability.create_subscription)

    async def get_price(self, price: str) -> PlanPrice:
        """A price or plan a subscription can be on: what it costs, how often."""
        raise Unsupported(self.name, Capability.create_subscription)

    async def precheck_subscription(
        self,
        customer_id: str,
        price: str,
        *,
        quantity: int,
        trial_days: int | None,
        coupon: str | None,
    ) -> None:
        """Refuse now, before anyone approves it, a subscription this gateway would refuse
        whatever a manager decides (seats it cannot bill, a plan it lacks). Raise
        GatewayError; the default has no rule of its own."""

    async def preview_plan_change(
        self, subscription_id: str, price: str, *, now: bool, prorate: bool, at: int | None = None
    ) -> PlanChange:
        """What moving a subscription to `price` would charge today and then each period,
        changing `now` (else at renewal), prorated or not, computed as of `at` (epoch seconds,
        default now). `change_plan` with the preview charges what it said or refuses."""
        raise Unsupported(self.name, Capability.change_plan)

    async def change_plan(self, change: PlanChange, *, idempotency_key: str) -> Subscription:
        """Carry out a previewed plan change (prorated as of `change.at`); once per key."""
        raise Unsupported(self.name, Capability.change_plan)

    async def set_paused(
        self, subscription_id: str, paused: bool, *, idempotency_key: str
    ) -> Subscription:
        """Stop collecting payments until resumed (`paused`), or collect them again (`pause`
        and `resume`). A subscription already so is the same result: nothing changes."""
        raise self.lacking(Capability.pause_subscription)

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        """Apply a coupon or promotion code to a customer or subscription; returns what was applied."""
        raise Unsupported(self.name, Capability.coupon, self.missing.get(Capability.coupon))

    async def coupon(self, code: str, *, currency: str | None = None) -> Coupon:
        """The coupon (or promotion code) `code`: what it takes off and for how long, read
        before anyone approves applying it; an amount off in `currency` (what it goes on is
        billed in) where the gateway's coupon has several or none of its own. GatewayError
        not_found for a code it lacks."""
        raise Unsupported(self.name, Capability.coupon, self.missing.get(Capability.coupon))

    async def precheck_coupon(self, target_id: str, *, subscription: bool, remove: bool) -> None:
        """Refuse now, before anyone approves it, applying (or with `remove`, removing) a
        coupon on this customer or `subscription` that this gateway would refuse whatever a
        manager decides. The default has no rule of its own."""

    async def precheck_dispute(self, dispute: Dispute, *, accept: bool) -> None:
        """Refuse now, before anyone approves it, answering `dispute` (with evidence, or
        `accept`ing it) where this gateway would refuse it whatever a manager decides. The
        default has no rule of its own."""

    async def remove_discount(self, target_id: str, *, idempotency_key: str) -> str:
        """Remove the discount from a customer or subscription; returns what was removed.
        Removing one that is gone already (a retry) changes nothing."""
        raise Unsupported(self.name, Capability.coupon, self.missing.get(Capability.coupon))

    async def add_tax_id(
        self, customer_id: str, tax_id: str, *, idempotency_key: str, replace: bool = False
    ) -> TaxId:
        """Add a tax ID (`DE123456789`, `eu_vat:DE123456789`) to a customer.

        Checked before the gateway is asked (InvalidTaxId). With `replace`, the
        customer's other tax IDs are removed once the new one exists. The same key
        twice, or a number the customer already has, adds nothing.
        """
        raise Unsupported(self.name, Capability.tax_id)

    async def remove_tax_id(self, customer_id: str, tax_id: str, *, idempotency_key: str) -> str:
        """Remove a tax ID (its number or its gateway ID) from a customer; returns the number
        removed. Removing one the customer no longer has (a retry) changes nothing."""
        raise self.lacking(Capability.tax_id)

    async def precheck_customer_details(self, customer_id: str) -> None:
        """Refuse now, before anyone approves it, a name or address change of this customer
        that this gateway would refuse whatever a manager decides (GatewayError). The
        default has no rule of its own."""

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        address: Address | None = None,
        idempotency_key: str,
    ) -> Customer:
        """Set a customer's billing name and/or address (None leaves it as it is); the same
        values twice change nothing."""
        raise self.lacking(Capability.customer_details)

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        """One page of the gateway's objects of `kind` (customer, charge, refund, invoice,
        subscription, dispute) as our models, for the billing index. `cursor` is the
        previous page's; `since` bounds a first backfill by creation time."""
        raise Unsupported(self.name, Capability.sync)

    async def card_update_url(self, customer_id: str, *, return_url: str) -> str:
        """A page of the gateway's own where the customer updates their card (we never see it).

        The link is short-lived and opens the customer's account: make it when the
        customer asks, send them straight there, and never log or store it.
        """
        raise Unsupported(self.name, Capability.hosted_card_update)

    async def charge_saved_card(
        self, customer_id: str, amount: Money, *, description: str, idempotency_key: str
    ) -> Charge:
        """Charge the customer's saved payment method now, without them (off session). The
        same key twice charges once. A decline is GatewayError card_declined (the gateway's
        decline code as raw_code); a bank asking for 3-D Secure, authentication_required."""
        raise self.lacking(Capability.charge_saved_card)

    async def create_pay_link(
        self, customer_id: str, amount: Money, *, description: str, reference: str,
        idempotency_key: str,
    ) -> PayLink:  # fmt: skip
        """A page of the gateway's own where the customer pays `amount` (`reference`: our
        payment request's ID, kept on the gateway's object). The URL is a bearer secret."""
        raise self.lacking(Capability.payment_link)

    async def get_pay_link(self, link_id: str) -> PayLink:
        """Where a pay link stands now, with its URL while it can still be paid."""
        raise self.lacking(Capability.payment_link)

    async def cancel_pay_link(self, link_id: str) -> PayLink:
        """Make the link unpayable (expire, void); one paid already is left as it is."""
        raise self.lacking(Capability.payment_link)

    async def pay_own_page_link(self, link_id: str) -> PayLink:
        """The customer pressed Pay on a link whose page is our own billing page (the ledger's,
        which has no page of its own): record the payment once however often this is called,
        and return the link, paid. A gateway whose links lead to its own page never gets here."""
        raise self.lacking(Capability.payment_link)

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """Finalize (if draft) and send an invoice to the customer."""
        raise Unsupported(self.name, Capability.send_invoice)

    async def get_dispute(self, dispute_id: str) -> Dispute:
        raise Unsupported(self.name, Capability.disputes)

    async def open_disputes(self) -> list[Dispute]:
        """Disputes still waiting for our answer (`needs_response`), for due-date reminders."""
        raise Unsupported(self.name, Capability.disputes)

    async def accept_dispute(self, dispute_id: str, *, idempotency_key: str) -> Dispute:
        """Accept a dispute: the money stays with the customer. The same key twice accepts once."""
        raise Unsupported(self.name, Capability.accept_dispute)

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: Evidence, *, idempotency_key: str
    ) -> Dispute:
        """Send the evidence and submit it; a dispute already answered is not answered again."""
        raise Unsupported(self.name, Capability.dispute_evidence)

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        """Verify a webhook delivery and translate it; raise WebhookRejected if it is not genuine."""
        raise Unsupported(self.name, Capability.webhooks)

    def dashboard_url(self, object_id: str) -> str | None:
        """Where a person with an account sees the object in the gateway's own dashboard.

        None where the gateway has no dashboard page for it. Links go on agent cards only.
        """
        return None

    async def close(self) -> None:
        """Release connections; called once at shutdown."""

    def require(self, capability: Capability) -> None:
        if capability not in self.capabilities:
            raise self.lacking(capability)

    def lacking(self, capability: Capability) -> Unsupported:
        """The refusal of a capability this gateway lacks, saying why where that is known."""
        why = self.missing.get(capability, _MISSING_EVERYWHERE.get(capability))
        return Unsupported(self.name, capability, why)


def split_name(name: str) -> tuple[str, str]:
    """`Jane Q. Doe` -> (`Jane Q.`, `Doe`), `Acme` -> (`Acme`, ``): for a gateway that keeps a
    first and a last name, whose documents print them joined again."""
    first, _, last = name.strip().rpartition(" ")
    return (first, last) if first else (last, "")


# Why a capability is missing, for every gateway whose own `missing` says nothing more.
_MISSING_EVERYWHERE: Mapping[Capability, str] = MappingProxyType({
    Capability.manual_refund: "refunds go back through the gateway: use refund without manual",
    Capability.cancel_with_refund: "cancel it, then refund the payment",
})  # fmt: skip
