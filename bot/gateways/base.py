"""The gateway contract: capabilities, unified errors, and the base class.

A gateway is a class, not a bare protocol, so that every capability it lacks
fails the same way: `Unsupported`, naming the gateway and the capability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

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
    def __init__(self, gateway: str, capability: Capability) -> None:
        super().__init__(
            ErrorCode.unsupported,
            f"the {gateway} gateway does not support {capability.value.replace('_', ' ')}",
            gateway=gateway,
        )
        self.capability = capability


@dataclass(frozen=True)
class LookupQuery:
    """What an agent typed after `lookup`: an email or an object ID of any kind."""

    kind: Literal["email", "id"]
    value: str

    @classmethod
    def parse(cls, text: str) -> LookupQuery:
        text = text.strip()
        if "@" in text:
            return cls("email", text.lower())
        return cls("id", text)


class Gateway:
    """Base for every gateway. Override what the gateway can do; the rest is Unsupported."""

    name: str = "gateway"
    capabilities: frozenset[Capability] = frozenset()

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

    async def add_tax_id(self, customer_id: str, tax_id: str, *, idempotency_key: str) -> TaxId:
        """Add a tax ID (`DE123456789`, `eu_vat:DE123456789`) to a customer."""
        raise Unsupported(self.name, Capability.tax_id)

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """Finalize (if draft) and send an invoice to the customer."""
        raise Unsupported(self.name, Capability.send_invoice)

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        """Verify a webhook delivery and translate it; raise WebhookRejected if it is not genuine."""
        raise Unsupported(self.name, Capability.webhooks)

    async def close(self) -> None:
        """Release connections; called once at shutdown."""

    def require(self, capability: Capability) -> None:
        if capability not in self.capabilities:
            raise Unsupported(self.name, capability)
