"""The gateway contract: capabilities, unified errors, and the base class.

A gateway is a class, not a bare protocol, so that every capability it lacks
fails the same way: `Unsupported`, naming the gateway and the capability.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from bot.errors import UserError
from bot.gateways.events import GatewayEvent
from bot.models import Charge, GatewayProfile, Invoice, Refund, Subscription, TaxId
from bot.money import Money
from bot.tax_ids import EU, normalize_tax_id, tax_id_type


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
    def __init__(self, gateway: str, capability: Capability) -> None:
        super().__init__(
            ErrorCode.unsupported,
            f"the {gateway} gateway does not support {capability.value.replace('_', ' ')}",
            gateway=gateway,
        )
        self.capability = capability


# Tax ID types python-stdnum checks (bot.tax_ids), each with the country it implies.
CHECKED_TAX_ID_TYPES: dict[str, str | None] = {
    "eu_vat": None,  # the number's prefix names the member state
    "gb_vat": "GB",
    "au_abn": "AU",
    "nz_gst": "NZ",
    "sg_uen": "SG",
}
_TAX_ID_LABELS = {
    "eu_vat": "EU VAT number",
    "gb_vat": "UK VAT number",
    "au_abn": "Australian Business Number (ABN)",
    "nz_gst": "New Zealand GST number",
    "sg_uen": "Singapore UEN",
}
_COUNTRY_TAX_ID_TYPES = {country: kind for kind, country in CHECKED_TAX_ID_TYPES.items() if country}
_EU_VAT_PREFIXES = EU - {"GR"} | {"EL", "XI"}
_TAX_ID_TYPE = re.compile(r"[a-z]{2}_[a-z_]+")


class InvalidTaxId(GatewayError):
    """A tax ID that fails its format or check digits: refused before the gateway is asked."""

    def __init__(self, gateway: str, number: str, *, kind: str | None, country: str | None) -> None:
        where = f" for {country}" if country else ""
        if kind in _TAX_ID_LABELS:
            message = f"{number} is not a valid {_TAX_ID_LABELS[kind]}{where}: check its digits"
        elif kind is not None:
            message = (
                f"cannot check {number} as {kind}: tax IDs are checked for the EU, the UK, "
                "Australia, New Zealand and Singapore only"
            )
        elif country is not None:
            message = (
                f"{number} is not a tax ID that can be checked{where}: write it with its "
                "country prefix (DE, FR, GB, ...) or as type:value (au_abn:51824753556)"
            )
        else:
            message = (
                f"cannot tell what kind of tax ID {number} is: write it with its country "
                "prefix (DE, FR, GB, ...) or as type:value (au_abn:51824753556)"
            )
        super().__init__(ErrorCode.invalid_tax_id, message, gateway=gateway)
        self.number = number
        self.kind = kind
        self.country = country


def checked_tax_id(
    text: str, *, country: str | None, gateway: str, unchecked_types: bool = False
) -> tuple[str, str]:
    """A tax ID as (Stripe's type, normalized number), checked with python-stdnum.

    Takes `eu_vat:DE123456789`, `de 123 456 789`, `GB980780684`, `ABN 51 824 753
    556`, or a bare number read with the customer's `country` (an ABN for AU, a
    VAT number without its prefix for an EU country). With `unchecked_types`, an
    explicit type python-stdnum cannot check (`ch_vat:...`) passes as typed, for
    a gateway that checks it itself. Raises InvalidTaxId naming number and country.
    """
    raw = text.strip()
    kind: str | None = None
    head, colon, rest = raw.partition(":")
    if colon and _TAX_ID_TYPE.fullmatch(head.strip().lower()):
        kind, raw = head.strip().lower(), rest.strip()
    if kind is not None and kind not in CHECKED_TAX_ID_TYPES:
        if unchecked_types and raw:
            return kind, raw
        raise InvalidTaxId(gateway, raw or text.strip(), kind=kind, country=country)
    number = normalize_tax_id(raw)
    if not number:
        raise GatewayError(ErrorCode.invalid_tax_id, "no tax ID was given", gateway=gateway)
    hint = CHECKED_TAX_ID_TYPES.get(kind or "") or country
    if number.startswith(("ABN", "AU")) and kind in (None, "au_abn"):
        digits = number.removeprefix("ABN").removeprefix("AU")
        if digits.isdigit() and len(digits) == 11:
            number, hint = digits, "AU"
    if number.startswith("GR") and kind in (None, "eu_vat"):
        number = "EL" + number[2:]  # Greek VAT numbers carry EL, not their ISO code
    if kind in (None, "eu_vat") and hint in EU and number[:2] not in _EU_VAT_PREFIXES:
        prefixed = ("EL" if hint == "GR" else hint) + number
        if tax_id_type(prefixed) == "eu_vat":
            number = prefixed  # typed without its prefix by a customer of that country
    found = tax_id_type(number, hint)
    if found is None or (kind is not None and found != kind):
        claimed = kind or _claimed_type(number, hint)
        named = tax_id_country(claimed, number) or country
        raise InvalidTaxId(gateway, number or raw, kind=claimed, country=named)
    if found == "gb_vat" and not number.startswith("GB"):
        number = "GB" + number  # Stripe's form: GB123456789
    return found, number


def tax_id_country(kind: str | None, number: str) -> str | None:
    """The country a tax ID belongs to, as Stripe reports it (GR for an EL... VAT number)."""
    if kind == "eu_vat":
        prefix = number[:2]
        if prefix not in _EU_VAT_PREFIXES or prefix == "XI":  # XI: Northern Ireland, no ISO code
            return None
        return "GR" if prefix == "EL" else prefix
    return CHECKED_TAX_ID_TYPES.get(kind or "")


def _claimed_type(number: str, country: str | None) -> str | None:
    """The type a number claims by its prefix (DE..., GB...) or the customer's country."""
    if number[:2] in _EU_VAT_PREFIXES:
        return "eu_vat"
    if number.startswith("GB"):
        return "gb_vat"
    if country in EU:
        return "eu_vat"
    return _COUNTRY_TAX_ID_TYPES.get(country or "")


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
