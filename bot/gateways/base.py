"""The gateway contract: capabilities, unified errors, and the base class.

A gateway is a class, not a bare protocol, so that every capability it lacks
fails the same way: `Unsupported`, naming the gateway and the capability.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, Literal

from bot.errors import UserError
from bot.gateways.events import GatewayEvent
from bot.models import Charge, GatewayProfile, Invoice, Refund, Subscription, TaxId
from bot.money import Money


class Capability(StrEnum):
    lookup = "lookup"
    refund = "refund"
    partial_refund = "partial_refund"
    capture = "capture"
    void = "void"
    cancel_subscription = "cancel_subscription"
    create_subscription = "create_subscription"
    coupon = "coupon"
    tax_id = "tax_id"
    invoices = "invoices"
    send_invoice = "send_invoice"
    disputes = "disputes"
    webhooks = "webhooks"
    hosted_card_update = "hosted_card_update"

    @property
    def label(self) -> str:
        """A short human name, as the capability matrix (`python -m bot.gateways.matrix`) shows it."""
        return _CAPABILITY_LABELS[self]


_CAPABILITY_LABELS: dict[Capability, str] = {
    Capability.lookup: "Look up customers and payments",
    Capability.refund: "Refund in full",
    Capability.partial_refund: "Refund part of a payment",
    Capability.capture: "Capture an authorization",
    Capability.void: "Void an authorization",
    Capability.cancel_subscription: "Cancel a subscription",
    Capability.create_subscription: "Start a subscription",
    Capability.coupon: "Apply a coupon",
    Capability.tax_id: "Add a tax ID",
    Capability.invoices: "Show invoices",
    Capability.send_invoice: "Send an invoice",
    Capability.disputes: "Show disputes",
    Capability.webhooks: "Receive webhooks",
    Capability.hosted_card_update: "Card update page (hosted by the gateway)",
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


@dataclass(frozen=True)
class LookupQuery:
    """What an agent typed after `lookup`: an email or an object ID of any kind."""

    kind: Literal["email", "id"]
    value: str

    @classmethod
    def parse(cls, text: str) -> LookupQuery:
        """An email, an order number (`order #1234`, `#1234` -> `1234`), or any other ID as typed."""
        text = text.strip()
        if "@" in text:
            return cls("email", text.lower())
        number = _ORDER_NUMBER.fullmatch(text)
        if number:
            return cls("id", number.group(1))
        return cls("id", text)


class Gateway:
    """Base for every gateway. Override what the gateway can do; the rest is Unsupported."""

    name: str = "gateway"
    capabilities: frozenset[Capability] = frozenset()
    # What a gateway does only in part, in a few words for the capability matrix:
    # {Capability.cancel_subscription: "now only: no cancel at period end"}.
    limits: ClassVar[Mapping[Capability, str]] = MappingProxyType({})

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

    async def create_subscription(
        self, customer_id: str, price: str, *, idempotency_key: str
    ) -> Subscription:
        """Start a subscription to `price` (a price or plan ID) for a customer."""
        raise Unsupported(self.name, Capability.create_subscription)

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        """Apply a coupon or promotion code to a customer or subscription; returns what was applied."""
        raise Unsupported(self.name, Capability.coupon)

    async def add_tax_id(
        self, customer_id: str, tax_id: str, *, idempotency_key: str, replace: bool = False
    ) -> TaxId:
        """Add a tax ID (`DE123456789`, `eu_vat:DE123456789`) to a customer.

        Checked before the gateway is asked (InvalidTaxId). With `replace`, the
        customer's other tax IDs are removed once the new one exists. The same key
        twice, or a number the customer already has, adds nothing.
        """
        raise Unsupported(self.name, Capability.tax_id)

    async def card_update_url(self, customer_id: str, *, return_url: str) -> str:
        """A page of the gateway's own where the customer updates their card (we never see it).

        The link is short-lived and opens the customer's account: make it when the
        customer asks, send them straight there, and never log or store it.
        """
        raise Unsupported(self.name, Capability.hosted_card_update)

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """Finalize (if draft) and send an invoice to the customer."""
        raise Unsupported(self.name, Capability.send_invoice)

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
            raise Unsupported(self.name, capability)
