"""The Stripe gateway: the official SDK (async, over httpx), against Stripe or a local emulator.

A lookup fans out: customers by search and by list at once, then each
customer's charges, subscriptions, invoices and tax IDs at once, paging up to a
cap. Every write carries the approval's idempotency key, which Stripe honours
for 24 hours; the key is also written into the object's metadata, so a recovery
after that window finds the first result instead of moving money twice.
Amounts cross the boundary only through `to_stripe_amount` and
`from_stripe_amount`, because Stripe's minor units differ from ISO 4217's for a
few currencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import stripe

from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    InvalidTaxId,
    LookupQuery,
    WebhookRejected,
    checked_tax_id,
)
from bot.gateways.checks import check_capture, check_refund, require_status
from bot.gateways.events import EventKind, GatewayEvent
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Customer,
    Dispute,
    DisputeStatus,
    GatewayProfile,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
    TaxId,
)
from bot.money import Money, MoneyError, exponent, normalize_currency
from bot.settings import StripeSettings

NAME = "stripe"
T = TypeVar("T")

# The API version every request names (Stripe-Version), so the account's default version in
# the dashboard cannot change what the gateway reads. It is the one the locked stripe release
# speaks (`stripe.api_version`); a test fails when an SDK upgrade changes it.
STRIPE_API_VERSION = "2026-10-28.endive"

KEY_META = "chargedesk_idempotency_key"
REASON_META = "chargedesk_reason"
METADATA_VALUE_MAX = 500  # Stripe refuses longer metadata values
STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

# docs.stripe.com/currencies: amounts are whole units for these...
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
# ...and three-decimal for these, with the last digit always 0 on payments.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_DASHBOARD_SECTIONS = {
    "cus": "customers",
    "ch": "payments",
    "py": "payments",
    "pi": "payments",
    "re": "refunds",
    "sub": "subscriptions",
    "in": "invoices",
    "dp": "disputes",
    "du": "disputes",
    "evt": "events",
}

_ERROR_CODES: dict[str, ErrorCode] = {
    "resource_missing": ErrorCode.not_found,
    "charge_already_refunded": ErrorCode.already_refunded,
    "amount_too_large": ErrorCode.amount_too_large,
    "charge_disputed": ErrorCode.charge_disputed,
    "charge_already_captured": ErrorCode.invalid_state,
    "charge_expired_for_capture": ErrorCode.invalid_state,
    "payment_intent_unexpected_state": ErrorCode.invalid_state,
    "invoice_not_editable": ErrorCode.invalid_state,
    "rate_limit": ErrorCode.rate_limited,
    "lock_timeout": ErrorCode.unavailable,
    "idempotency_key_in_use": ErrorCode.unavailable,
}

_SUBSCRIPTION_STATUSES = {
    "trialing": SubscriptionStatus.trialing,
    "active": SubscriptionStatus.active,
    "past_due": SubscriptionStatus.past_due,
    "unpaid": SubscriptionStatus.unpaid,
    "canceled": SubscriptionStatus.canceled,
    "incomplete": SubscriptionStatus.incomplete,
    "incomplete_expired": SubscriptionStatus.canceled,
    # A paused subscription (trial over, no payment method) bills nothing, like unpaid.
    "paused": SubscriptionStatus.unpaid,
}

_DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.needs_response,
    "needs_response": DisputeStatus.needs_response,
    "warning_under_review": DisputeStatus.under_review,
    "under_review": DisputeStatus.under_review,
    "warning_closed": DisputeStatus.won,
    "won": DisputeStatus.won,
    "prevented": DisputeStatus.won,
    "lost": DisputeStatus.lost,
}

_EVENT_KINDS = {
    "charge.refunded": EventKind.refund,
    "charge.refund.updated": EventKind.refund,
    "refund.created": EventKind.refund,
    "refund.updated": EventKind.refund,
    "charge.captured": EventKind.capture,
    "charge.dispute.created": EventKind.dispute_created,
    "charge.failed": EventKind.payment_failed,
    "payment_intent.payment_failed": EventKind.payment_failed,
    "invoice.payment_failed": EventKind.payment_failed,
    "charge.succeeded": EventKind.payment_succeeded,
    "payment_intent.succeeded": EventKind.payment_succeeded,
    "invoice.paid": EventKind.invoice_paid,
    "customer.subscription.deleted": EventKind.subscription_canceled,
    "customer.subscription.updated": EventKind.subscription_updated,
}


# --- money -------------------------------------------------------------------------------


def stripe_exponent(currency: str) -> int:
    """Minor-unit digits Stripe uses for a currency (JPY 0, EUR 2, ISK 2, KWD 3)."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    # All else is two-decimal, ISK and UGX included: they became zero-decimal, but
    # Stripe keeps two digits "where the decimal amount is always 00" (5 ISK is 500).
    return 2


def from_stripe_amount(value: int, currency: str) -> Money:
    """A Stripe `amount` as exact Money in ISO minor units (ISK 500 from Stripe is 5 ISK)."""
    code = normalize_currency(currency)
    shift = stripe_exponent(code) - exponent(code)
    if shift < 0:
        return Money(minor=value * 10**-shift, currency=code)
    minor, rest = divmod(value, 10**shift)
    if rest:
        # Only pre-2023 fractional ISK charges can do this; refuse rather than round money.
        raise GatewayError(
            ErrorCode.invalid_state,
            f"Stripe amount {value} in {code} has a fraction {code} cannot hold",
            gateway=NAME,
        )
    return Money(minor=minor, currency=code)


def to_stripe_amount(amount: Money) -> int:
    """Money as the integer Stripe expects in `amount` fields."""
    shift = stripe_exponent(amount.currency) - exponent(amount.currency)
    if shift >= 0:
        value = amount.minor * 10**shift
    else:
        value, rest = divmod(amount.minor, 10**-shift)
        if rest:
            raise GatewayError(
                ErrorCode.rejected,
                f"Stripe cannot move {amount.plain()}: too many decimals for {amount.currency}",
                gateway=NAME,
            )
    if amount.currency in THREE_DECIMAL and value % 10:
        raise GatewayError(
            ErrorCode.rejected,
            f"Stripe only moves {amount.currency} in steps of 0.010: {amount.plain()} is not one",
            gateway=NAME,
        )
    return value


# --- small helpers -----------------------------------------------------------------------


def _id(value: Any) -> str | None:
    """An expandable field's ID, whether Stripe sent the ID or the whole object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def _metadata(raw: Mapping[str, Any]) -> dict[str, Any]:
    found = raw.get("metadata")
    return found if isinstance(found, dict) else {}


def _clip(text: str) -> str:
    return text[:METADATA_VALUE_MAX]


def _stripe_reason(reason: str) -> str | None:
    """Stripe's refund `reason` takes three words; ours is free text that may start with one."""
    words = re.split(r"[\s:,.;]+", reason.strip().lower(), maxsplit=1)
    return words[0] if words and words[0] in STRIPE_REFUND_REASONS else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _number(value: float) -> str:
    return f"{value:g}"


def _portal_unconfigured(message: str | None) -> bool:
    """Stripe's refusal of a portal session before the portal settings are saved.

    "You can't create a portal session in test mode until you save your customer
    portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
    It comes as a bare invalid_request_error, so only its words tell it apart.
    """
    text = (message or "").lower()
    return "portal settings" in text or "settings/billing/portal" in text


def describe_discount(coupon: Mapping[str, Any], code: str | None = None) -> str:
    """`WELCOME10: 10% off, forever`, `SPRING: €5.00 off, for 3 months`."""
    label = code or coupon.get("name") or coupon.get("id") or "coupon"
    if coupon.get("percent_off") is not None:
        off = f"{_number(float(coupon['percent_off']))}% off"
    elif coupon.get("amount_off") is not None and coupon.get("currency"):
        off = f"{from_stripe_amount(coupon['amount_off'], coupon['currency']).format()} off"
    else:
        off = "discount"
    duration = coupon.get("duration")
    if duration == "repeating":
        months = coupon.get("duration_in_months") or 0
        when = f"for {months} month{'s' if months != 1 else ''}"
    else:
        when = duration or "once"
    return f"{label}: {off}, {when}"


# --- the gateway -------------------------------------------------------------------------


class StripeGateway(Gateway):
    name = NAME
    capabilities = frozenset(Capability)

    # First wait after a 429, doubling per retry; the SDK retries 5xx and network errors.
    retry_delay = 0.5
    max_listed = 100  # subscriptions, invoices and tax IDs shown per customer
    fanout = 8  # requests at once for one profile's per-charge details

    def __init__(self, settings: StripeSettings, *, max_charges: int = 1000) -> None:
        if settings.api_key is None:
            raise ValueError("StripeGateway needs stripe.api_key")
        self.settings = settings
        self.max_charges = max_charges
        self._api_key = settings.api_key.get_secret_value()
        self._http = stripe.HTTPXClient(timeout=settings.timeout)
        base: dict[str, str] | None = (
            {"api": str(settings.base_url).rstrip("/")} if settings.base_url else None
        )
        self._client = stripe.StripeClient(
            self._api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=settings.max_retries,
            http_client=self._http,
            stripe_version=STRIPE_API_VERSION,
        )
        self._v1 = self._client.v1

    async def close(self) -> None:
        await self._http.close_async()

    def dashboard_url(self, object_id: str) -> str | None:
        """Where a person sees the object in Stripe's dashboard (test mode included)."""
        section = _DASHBOARD_SECTIONS.get(object_id.split("_", 1)[0])
        if section is None:
            return None
        test = "/test" if self._api_key.startswith(("sk_test_", "rk_test_")) else ""
        return f"{self.settings.dashboard_url.rstrip('/')}{test}/{section}/{object_id}"

    # --- calls and errors ------------------------------------------------------------------

    async def _attempt(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        retries = 0
        while True:
            try:
                return await call()
            except stripe.RateLimitError as exc:
                # The SDK does not retry a 429. Stripe ran nothing, so the same
                # request (same idempotency key) is safe to send again.
                if retries >= self.settings.max_retries:
                    raise self._error(exc, what) from None
                retries += 1
                delay = min(self.retry_delay * 2 ** (retries - 1), 8.0)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            except stripe.StripeError as exc:
                raise self._error(exc, what) from None

    async def _each(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """Await calls a few at a time: a large profile must not trip Stripe's rate limit."""
        gate = asyncio.Semaphore(self.fanout)

        async def one(call: Awaitable[T]) -> T:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def _get(self, call: Callable[[], Awaitable[Any]], what: str) -> dict[str, Any]:
        return (await self._attempt(call, what)).to_dict()

    async def _find(self, call: Callable[[], Awaitable[Any]], what: str) -> dict[str, Any] | None:
        try:
            return await self._get(call, what)
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:
                return None
            raise

    async def _list(
        self,
        fetch: Callable[[dict[str, Any]], Awaitable[Any]],
        params: dict[str, Any],
        what: str,
        cap: int,
        *,
        page_size: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, newest pages first, up to `cap`."""
        items: list[dict[str, Any]] = []
        page = dict(params)
        if page_size is not None:
            page["limit"] = min(page_size, cap)
        while True:
            result = await self._get(lambda sent=dict(page): fetch(sent), what)
            data = result.get("data") or []
            items.extend(data)
            if not result.get("has_more") or not data or len(items) >= cap:
                return items[:cap]
            page["starting_after"] = data[-1]["id"]

    def _error(self, exc: stripe.StripeError, what: str) -> GatewayError:
        raw_message = exc.user_message or str(exc)
        raw_code = exc.code
        if raw_code is None and exc.error is not None:
            raw_code = getattr(exc.error, "code", None) or getattr(exc.error, "type", None)

        def error(code: ErrorCode, message: str) -> GatewayError:
            return GatewayError(
                code, message, gateway=NAME, raw_code=raw_code, raw_message=raw_message
            )

        if isinstance(exc, stripe.CardError):
            return error(ErrorCode.card_declined, f"the card was declined: {raw_message}")
        if isinstance(exc, stripe.RateLimitError):
            return error(ErrorCode.rate_limited, "Stripe is rate-limiting us: try again shortly")
        if isinstance(exc, stripe.IdempotencyError):
            return error(
                ErrorCode.rejected,
                f"Stripe refused {what}: its idempotency key was already used for a "
                f"different request ({raw_message})",
            )
        if isinstance(exc, stripe.APIConnectionError):
            if isinstance(exc.__cause__, httpx.TimeoutException):
                return error(
                    ErrorCode.timeout,
                    f"Stripe did not answer about {what} within {self.settings.timeout:g} s",
                )
            return error(ErrorCode.unavailable, f"Stripe could not be reached about {what}")
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return error(
                ErrorCode.rejected, f"Stripe refused our API key for {what}: {raw_message}"
            )
        if isinstance(exc, stripe.InvalidRequestError):
            code = _ERROR_CODES.get(raw_code or "")
            # An over-refund comes back as a bare invalid_request_error on `amount`.
            over = exc.param in ("amount", "amount_to_capture") and "greater than" in raw_message
            if code is None and over:
                code = ErrorCode.amount_too_large
            if code == ErrorCode.not_found or (code is None and exc.http_status == 404):
                return error(ErrorCode.not_found, f"Stripe has no {what}")
            if code == ErrorCode.already_refunded:
                return error(code, f"Stripe says {what} is already fully refunded")
            if code == ErrorCode.charge_disputed:
                return error(
                    code, f"{what} is disputed at Stripe: answer the dispute instead of refunding"
                )
            if code is not None:
                return error(code, f"Stripe refused {what}: {raw_message}")
            return error(ErrorCode.rejected, f"Stripe refused {what}: {raw_message}")
        status = exc.http_status
        if raw_code is None and status is not None:
            raw_code = str(status)
        return error(
            ErrorCode.unavailable,
            f"Stripe failed on {what}" + (f" (HTTP {status})" if status else ""),
        )

    # --- reads -----------------------------------------------------------------------------

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        if query.kind == "email":
            customers = await self._customers_by_email(query.value)
        else:
            customer_id = await self._customer_of(query.value)
            found = (
                await self._find(
                    lambda: self._v1.customers.retrieve_async(customer_id),
                    f"customer {customer_id}",
                )
                if customer_id
                else None
            )
            customers = [found] if found and not found.get("deleted") else []
        return list(await asyncio.gather(*(self._profile(c) for c in customers)))

    async def get_charge(self, charge_id: str) -> Charge:
        raw, intent_status = await self._charge_raw(charge_id)
        return _charge(raw, intent_status)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return _subscription(await self._subscription_raw(subscription_id))

    async def _customers_by_email(self, email: str) -> list[dict[str, Any]]:
        quoted = email.replace("\\", "\\\\").replace("'", "\\'")

        async def search() -> list[dict[str, Any]]:
            try:
                found = await self._get(
                    lambda: self._v1.customers.search_async(
                        {"query": f"email:'{quoted}'", "limit": 100}
                    ),
                    f"customers with email {email}",
                )
            except GatewayError as exc:
                # Search is missing on some accounts (and in emulators): the list still answers.
                if exc.code in (ErrorCode.not_found, ErrorCode.rejected):
                    return []
                raise
            return list(found.get("data") or [])

        # Search is case-insensitive but lags writes by up to a minute; list is exact
        # and immediate. Together they find every customer with the address.
        searched, listed = await asyncio.gather(
            search(),
            self._list(
                lambda p: self._v1.customers.list_async(p),
                {"email": email},
                f"customers with email {email}",
                self.max_listed,
            ),
        )
        unique: dict[str, dict[str, Any]] = {}
        for customer in (*searched, *listed):
            if not customer.get("deleted"):
                unique.setdefault(customer["id"], customer)
        return sorted(unique.values(), key=lambda c: c.get("created") or 0, reverse=True)

    async def _customer_of(self, object_id: str) -> str | None:
        """The customer owning any Stripe object we can name; None when there is none."""
        prefix = object_id.split("_", 1)[0]
        v1 = self._v1
        if prefix == "cus":
            return object_id
        fetchers: dict[str, Callable[[], Awaitable[Any]]] = {
            "ch": lambda: v1.charges.retrieve_async(object_id),
            "py": lambda: v1.charges.retrieve_async(object_id),
            "pi": lambda: v1.payment_intents.retrieve_async(object_id),
            "in": lambda: v1.invoices.retrieve_async(object_id),
            "sub": lambda: v1.subscriptions.retrieve_async(object_id),
            "dp": lambda: v1.disputes.retrieve_async(object_id),
            "du": lambda: v1.disputes.retrieve_async(object_id),
            "re": lambda: v1.refunds.retrieve_async(object_id),
        }
        fetch = fetchers.get(prefix)
        if fetch is None:
            return None
        found = await self._find(fetch, object_id)
        if found is None:
            return None
        if prefix in ("dp", "du", "re"):
            charge_id = _id(found.get("charge"))
            if charge_id is None:
                return None
            charge = await self._find(
                lambda: v1.charges.retrieve_async(charge_id), f"charge {charge_id}"
            )
            return _id(charge.get("customer")) if charge else None
        return _id(found.get("customer"))

    async def _charge_raw(self, charge_id: str) -> tuple[dict[str, Any], str | None]:
        """A charge (or a payment intent's latest charge) read now, with its intent's status."""
        v1 = self._v1
        if charge_id.startswith("pi_"):
            intent = await self._get(
                lambda: v1.payment_intents.retrieve_async(charge_id), f"payment {charge_id}"
            )
            latest = _id(intent.get("latest_charge"))
            if latest is None:
                raise GatewayError(
                    ErrorCode.not_found,
                    f"payment {charge_id} has no charge yet (it is {intent.get('status')})",
                    gateway=NAME,
                )
            charge_id = latest
        if not charge_id.startswith(("ch_", "py_")):
            raise GatewayError(
                ErrorCode.not_found, f"Stripe has no charge {charge_id}", gateway=NAME
            )
        raw = await self._get(lambda: v1.charges.retrieve_async(charge_id), f"charge {charge_id}")
        return raw, await self._intent_status(raw)

    async def _intent_status(self, charge: Mapping[str, Any]) -> str | None:
        """Only an uncaptured charge needs it: a canceled intent means the hold was voided."""
        intent = charge.get("payment_intent")
        if charge.get("captured", True) or charge.get("refunded") or intent is None:
            return None
        if isinstance(intent, dict):
            return intent.get("status")
        found = await self._find(
            lambda: self._v1.payment_intents.retrieve_async(intent), f"payment {intent}"
        )
        return found.get("status") if found else None

    async def _subscription_raw(
        self, subscription_id: str, *, expand: list[str] | None = None
    ) -> dict[str, Any]:
        if not subscription_id.startswith("sub_"):
            raise GatewayError(
                ErrorCode.not_found, f"Stripe has no subscription {subscription_id}", gateway=NAME
            )
        params = {"expand": expand} if expand else None
        return await self._get(
            lambda: self._v1.subscriptions.retrieve_async(subscription_id, params),
            f"subscription {subscription_id}",
        )

    async def _refunds_of(self, charge: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A charge's refunds: embedded when complete, listed when not."""
        if not charge.get("amount_refunded"):
            return []
        embedded = charge.get("refunds")
        if isinstance(embedded, dict) and not embedded.get("has_more"):
            return list(embedded.get("data") or [])
        charge_id = charge["id"]
        return await self._list(
            lambda p: self._v1.refunds.list_async(p),
            {"charge": charge_id},
            f"refunds of {charge_id}",
            self.max_charges,
        )

    async def _profile(self, customer: dict[str, Any]) -> GatewayProfile:
        customer_id = customer["id"]
        v1 = self._v1
        charges, subscriptions, invoices, tax_ids = await asyncio.gather(
            self._list(
                lambda p: v1.charges.list_async(p),
                # Refunds come embedded, instead of one more request per refunded charge.
                {"customer": customer_id, "expand": ["data.refunds"]},
                f"charges of {customer_id}",
                self.max_charges,
            ),
            self._list(
                lambda p: v1.subscriptions.list_async(p),
                {"customer": customer_id, "status": "all"},
                f"subscriptions of {customer_id}",
                self.max_listed,
            ),
            self._list(
                lambda p: v1.invoices.list_async(p),
                {"customer": customer_id},
                f"invoices of {customer_id}",
                self.max_listed,
            ),
            self._list(
                lambda p: v1.customers.tax_ids.list_async(customer_id, p),
                {},
                f"tax IDs of {customer_id}",
                self.max_listed,
                page_size=None,
            ),
        )
        statuses, refunds, disputes, discounts = await asyncio.gather(
            self._each(self._intent_status(c) for c in charges),
            self._each(self._refunds_of(c) for c in charges),
            self._each(
                self._list(
                    lambda p, cid=c["id"]: v1.disputes.list_async({**p, "charge": cid}),
                    {},
                    f"disputes of {c['id']}",
                    self.max_listed,
                )
                for c in charges
                if c.get("disputed")
            ),
            self._discounts(customer, subscriptions),
        )
        charges_out = sorted(
            (_charge(c, s) for c, s in zip(charges, statuses, strict=True)),
            key=lambda c: (c.created or datetime.min.replace(tzinfo=UTC), c.id),
            reverse=True,
        )
        return GatewayProfile(
            gateway=NAME,
            customer=_customer(customer_id, customer),
            charges=tuple(charges_out),
            refunds=tuple(_refund(r) for group in refunds for r in group),
            subscriptions=tuple(_subscription(s) for s in subscriptions),
            invoices=tuple(
                sorted(
                    (_invoice(i) for i in invoices),
                    key=lambda i: (i.created or datetime.min.replace(tzinfo=UTC), i.id),
                    reverse=True,
                )
            ),
            disputes=tuple(_dispute(d) for group in disputes for d in group),
            tax_ids=tuple(_tax_id(t) for t in tax_ids),
            discounts=tuple(discounts),
        )

    # --- discounts -------------------------------------------------------------------------

    async def _discounts(
        self, customer: Mapping[str, Any], subscriptions: list[dict[str, Any]]
    ) -> list[str]:
        """Human descriptions of the customer's discount and their live subscriptions' ones."""
        found: list[dict[str, Any]] = []
        if isinstance(customer.get("discount"), dict):
            found.append(customer["discount"])
        for sub in subscriptions:
            if sub.get("status") in ("canceled", "incomplete_expired"):
                continue
            if isinstance(sub.get("discount"), dict):  # API versions before 2025-03-31
                found.append(sub["discount"])
            listed = sub.get("discounts") or []
            if any(isinstance(d, str) for d in listed):
                sub = await self._subscription_raw(sub["id"], expand=["discounts"])
                listed = sub.get("discounts") or []
            found.extend(d for d in listed if isinstance(d, dict))
        described: list[str] = []
        seen: set[str] = set()
        for discount in found:
            key = discount.get("id") or json.dumps(discount, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            described.append(await self._describe(discount))
        return described

    async def _describe(self, discount: Mapping[str, Any]) -> str:
        coupon: Any = discount.get("coupon")  # before 2025-09-30 the coupon sat here
        source = discount.get("source")
        if coupon is None and isinstance(source, dict):
            coupon = source.get("coupon")
        if isinstance(coupon, str):
            coupon_id = coupon
            coupon = await self._get(
                lambda: self._v1.coupons.retrieve_async(coupon_id), f"coupon {coupon_id}"
            )
        if not isinstance(coupon, dict):
            return str(discount.get("id") or "discount")
        code = None
        promotion = discount.get("promotion_code")
        if isinstance(promotion, dict):
            code = promotion.get("code")
        elif isinstance(promotion, str):
            promo = await self._find(
                lambda: self._v1.promotion_codes.retrieve_async(promotion),
                f"promotion code {promotion}",
            )
            code = promo.get("code") if promo else None
        return describe_discount(coupon, code)

    async def _resolve_coupon(self, code: str) -> tuple[dict[str, str], dict[str, Any], str | None]:
        """`promo_...`, a customer-facing promotion code, or a coupon ID: what to apply, and the coupon."""
        v1 = self._v1
        promo: dict[str, Any] | None = None
        if code.startswith("promo_"):
            promo = await self._get(
                lambda: v1.promotion_codes.retrieve_async(code), f"promotion code {code}"
            )
        else:
            matches = await self._get(
                lambda: v1.promotion_codes.list_async({"code": code, "active": True, "limit": 1}),
                f"promotion code {code}",
            )
            promo = (matches.get("data") or [None])[0]
        if promo is not None:
            coupon: Any = promo.get("coupon")  # before 2025-09-30
            promotion = promo.get("promotion")
            if coupon is None and isinstance(promotion, dict):
                coupon = promotion.get("coupon")
            if isinstance(coupon, str):
                coupon_id = coupon
                coupon = await self._get(
                    lambda: v1.coupons.retrieve_async(coupon_id), f"coupon {coupon_id}"
                )
            return {"promotion_code": promo["id"]}, coupon or {}, promo.get("code")
        coupon = await self._get(lambda: v1.coupons.retrieve_async(code), f"coupon {code}")
        return {"coupon": coupon["id"]}, coupon, None

    # --- actions ---------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        raw, intent_status = await self._charge_raw(charge_id)
        earlier = await self._refund_with_key(raw, idempotency_key)
        if earlier is not None:
            return _refund(earlier)
        charge = _charge(raw, intent_status)
        check_refund(charge, amount)
        params: dict[str, Any] = {
            "charge": charge.id,
            "amount": to_stripe_amount(amount),
            "metadata": {KEY_META: idempotency_key, REASON_META: _clip(reason)},
        }
        stripe_reason = _stripe_reason(reason)
        if stripe_reason:
            params["reason"] = stripe_reason
        try:
            created = await self._get(
                lambda: self._v1.refunds.create_async(params, {"idempotency_key": idempotency_key}),
                f"the refund of {charge.id}",
            )
        except GatewayError as exc:
            if exc.code in (ErrorCode.amount_too_large, ErrorCode.already_refunded):
                # Money moved since our read (a dashboard refund): say how much is left.
                fresh_raw, fresh_status = await self._charge_raw(charge.id)
                try:
                    check_refund(_charge(fresh_raw, fresh_status), amount)
                except GatewayError as ours:
                    ours.raw_code, ours.raw_message = exc.raw_code, exc.raw_message
                    raise ours from None
            raise
        return _refund(created)

    async def _refund_with_key(
        self, charge: Mapping[str, Any], idempotency_key: str
    ) -> dict[str, Any] | None:
        for refund in await self._refunds_of(charge):
            if _metadata(refund).get(KEY_META) == idempotency_key:
                return refund
        return None

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        raw, intent_status = await self._charge_raw(charge_id)
        charge = _charge(raw, intent_status)
        options = {"idempotency_key": idempotency_key}
        intent_id = charge.payment_intent_id
        if intent_id:
            intent_params: dict[str, Any] = {}
            if amount is not None:
                intent_params["amount_to_capture"] = to_stripe_amount(amount)

            def send() -> Awaitable[Any]:
                return self._v1.payment_intents.capture_async(intent_id, intent_params, options)
        else:
            charge_params: dict[str, Any] = {}
            if amount is not None:
                charge_params["amount"] = to_stripe_amount(amount)

            def send() -> Awaitable[Any]:
                return self._v1.charges.capture_async(charge.id, charge_params, options)

        try:
            check_capture(charge, amount)
        except GatewayError:
            # Captured already: by this very request (same key) Stripe answers from its
            # cache and we report success; by another, Stripe refuses and so do we.
            if charge.status != ChargeStatus.authorized and await self._replayed(send):
                return await self.get_charge(charge.id)
            raise
        await self._attempt(send, f"the capture of {charge.id}")
        return await self.get_charge(charge.id)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        raw, intent_status = await self._charge_raw(charge_id)
        charge = _charge(raw, intent_status)
        options = {"idempotency_key": idempotency_key}
        intent_id = charge.payment_intent_id
        if intent_id:

            def send() -> Awaitable[Any]:
                return self._v1.payment_intents.cancel_async(intent_id, None, options)
        else:
            # A charge made without an intent releases its hold by being refunded in full.
            params = {"charge": charge.id, "metadata": {KEY_META: idempotency_key}}

            def send() -> Awaitable[Any]:
                return self._v1.refunds.create_async(params, options)

        try:
            require_status(charge, ChargeStatus.authorized, "voided")
        except GatewayError:
            # Voided already: a retry of ours is replayed by Stripe, anything else refused.
            if charge.status == ChargeStatus.voided and await self._replayed(send):
                return charge
            raise
        await self._attempt(send, f"the void of {charge.id}")
        return await self.get_charge(charge.id)

    async def _replayed(self, send: Callable[[], Awaitable[Any]]) -> bool:
        """Whether Stripe answers this very request from its idempotency cache (a retry of ours)."""
        try:
            result = await self._attempt(send, "a repeated request")
        except GatewayError:
            return False
        response = getattr(result, "last_response", None)
        headers = getattr(response, "headers", None) or {}
        return _header(headers, "Idempotent-Replayed") == "true"

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        sub = await self._subscription_raw(subscription_id)
        ours = _metadata(sub).get(KEY_META) == idempotency_key
        if sub.get("status") in ("canceled", "incomplete_expired"):
            if ours:
                return _subscription(sub)
            raise GatewayError(
                ErrorCode.invalid_state,
                f"subscription {subscription_id} is already canceled",
                gateway=NAME,
            )
        what = f"the cancellation of {subscription_id}"
        marker = {KEY_META: idempotency_key, REASON_META: _clip(reason)}
        if at_period_end:
            if sub.get("cancel_at_period_end"):
                if ours:
                    return _subscription(sub)
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {subscription_id} is already set to cancel at period end",
                    gateway=NAME,
                )
            updated = await self._get(
                lambda: self._v1.subscriptions.update_async(
                    subscription_id,
                    {"cancel_at_period_end": True, "metadata": marker},
                    {"idempotency_key": idempotency_key},
                ),
                what,
            )
            return _subscription(updated)
        if not ours:
            # DELETE takes no idempotency key at Stripe: mark the subscription first so a
            # retry can tell its own cancellation from someone else's.
            await self._get(
                lambda: self._v1.subscriptions.update_async(
                    subscription_id,
                    {"metadata": marker},
                    {"idempotency_key": f"{idempotency_key}:mark"},
                ),
                what,
            )
        canceled = await self._get(
            lambda: self._v1.subscriptions.cancel_async(
                subscription_id,
                {"cancellation_details": {"comment": reason[:5000]}},
                {"idempotency_key": idempotency_key},
            ),
            what,
        )
        return _subscription(canceled)

    async def create_subscription(
        self, customer_id: str, price: str, *, idempotency_key: str
    ) -> Subscription:
        existing = await self._list(
            lambda p: self._v1.subscriptions.list_async(p),
            {"customer": customer_id, "status": "all"},
            f"subscriptions of {customer_id}",
            self.max_listed,
        )
        for sub in existing:
            if _metadata(sub).get(KEY_META) == idempotency_key:
                return _subscription(sub)
        # Legacy plans are accepted as prices; plan_ IDs go where older accounts expect them.
        item = {"plan": price} if price.startswith("plan_") else {"price": price}
        created = await self._get(
            lambda: self._v1.subscriptions.create_async(
                {
                    "customer": customer_id,
                    "items": [item],
                    "metadata": {KEY_META: idempotency_key},
                },
                {"idempotency_key": idempotency_key},
            ),
            f"a subscription to {price} for {customer_id}",
        )
        return _subscription(created)

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        if target_id.startswith("sub_"):
            subs = [await self._subscription_raw(target_id, expand=["discounts"])]
        elif target_id.startswith("cus_"):
            listed = await self._list(
                lambda p: self._v1.subscriptions.list_async(p),
                {"customer": target_id, "expand": ["data.discounts"]},
                f"subscriptions of {target_id}",
                self.max_listed,
            )
            subs = [s for s in listed if s.get("status") not in ("canceled", "incomplete_expired")]
            if not subs:
                # Since API 2025-03-31 a coupon lives on subscriptions, not on the customer.
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"customer {target_id} has no live subscription to apply {code} to",
                    gateway=NAME,
                )
        else:
            raise GatewayError(
                ErrorCode.rejected,
                f"a Stripe coupon goes on a customer (cus_...) or a subscription (sub_...), not {target_id}",
                gateway=NAME,
            )
        wanted, coupon, promo_code = await self._resolve_coupon(code)
        for sub in subs:
            if sub.get("status") in ("canceled", "incomplete_expired"):
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {sub['id']} is canceled",
                    gateway=NAME,
                )
            current = [d for d in sub.get("discounts") or [] if isinstance(d, dict)]
            if any(_applies(d, wanted, coupon) for d in current):
                continue  # already there: applying twice is applying once
            # A populated `discounts` replaces the list, so the current ones go along.
            discounts = [{"discount": d["id"]} for d in current] + [wanted]
            sub_id = sub["id"]
            await self._get(
                lambda sid=sub_id, ds=discounts: self._v1.subscriptions.update_async(
                    sid, {"discounts": ds}, {"idempotency_key": f"{idempotency_key}:{sid}"}
                ),
                f"the coupon on {sub_id}",
            )
        return describe_discount(coupon, promo_code)

    async def add_tax_id(
        self, customer_id: str, tax_id: str, *, idempotency_key: str, replace: bool = False
    ) -> TaxId:
        kind, value = await self._checked_tax_id(customer_id, tax_id)
        v1 = self._v1
        existing = await self._list(
            lambda p: v1.customers.tax_ids.list_async(customer_id, p),
            {},
            f"tax IDs of {customer_id}",
            self.max_listed,
            page_size=None,
        )
        # Already there (a retry of ours, or the customer had it): nothing to add.
        kept = next(
            (t for t in existing if t.get("type") == kind and t.get("value") == value), None
        )
        if kept is None:
            kept = await self._get(
                lambda: v1.customers.tax_ids.create_async(
                    customer_id,
                    {"type": kind, "value": value},
                    {"idempotency_key": idempotency_key},
                ),
                f"tax ID {value} for {customer_id}",
            )
        if replace:
            # Only once the new ID exists: a failure above leaves the old ones in place.
            for old in existing:
                if old["id"] != kept["id"]:
                    await self._delete_tax_id(customer_id, old["id"])
        return _tax_id(kept)

    async def _checked_tax_id(self, customer_id: str, tax_id: str) -> tuple[str, str]:
        """Type and number, checked before Stripe is asked.

        Only a number that names no type (no prefix) costs a read: the customer's
        country then says what it should be (an ABN in AU, a VAT number in FR).
        """
        try:
            return checked_tax_id(tax_id, country=None, gateway=NAME, unchecked_types=True)
        except InvalidTaxId as exc:
            if exc.kind is not None:
                raise  # its type is known and it fails it: no country changes that
        customer = await self._get(
            lambda: self._v1.customers.retrieve_async(customer_id), f"customer {customer_id}"
        )
        country = (customer.get("address") or {}).get("country")
        return checked_tax_id(tax_id, country=country, gateway=NAME, unchecked_types=True)

    async def _delete_tax_id(self, customer_id: str, tax_id_id: str) -> None:
        try:
            await self._get(
                lambda: self._v1.customers.tax_ids.delete_async(customer_id, tax_id_id),
                f"tax ID {tax_id_id} of {customer_id}",
            )
        except GatewayError as exc:
            if exc.code != ErrorCode.not_found:  # gone already: what we wanted
                raise

    async def card_update_url(self, customer_id: str, *, return_url: str) -> str:
        """A Billing Portal session: Stripe's own page, where the customer changes their card."""
        what = f"customer {customer_id}"
        if not customer_id.startswith("cus_"):
            raise GatewayError(ErrorCode.not_found, f"Stripe has no {what}", gateway=NAME)
        try:
            session = await self._get(
                lambda: self._v1.billing_portal.sessions.create_async(
                    {"customer": customer_id, "return_url": return_url}
                ),
                f"a Billing Portal session for {what}",
            )
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:  # the only object the call names
                raise GatewayError(
                    ErrorCode.not_found,
                    f"Stripe has no {what}",
                    gateway=NAME,
                    raw_code=exc.raw_code,
                    raw_message=exc.raw_message,
                ) from None
            if exc.code == ErrorCode.rejected and _portal_unconfigured(exc.raw_message):
                raise GatewayError(
                    ErrorCode.not_configured,
                    "Stripe's Billing Portal is not configured: save the customer portal "
                    "settings in the Stripe dashboard (Settings → Billing → Customer portal; "
                    "test mode has its own), with payment method updates turned on",
                    gateway=NAME,
                    raw_code=exc.raw_code,
                    raw_message=exc.raw_message,
                ) from None
            raise
        url = session.get("url")
        if not isinstance(url, str) or not url:
            raise GatewayError(
                ErrorCode.unavailable,
                f"Stripe answered the Billing Portal session for {what} without a URL",
                gateway=NAME,
            )
        return url

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        if not invoice_id.startswith("in_"):
            raise GatewayError(
                ErrorCode.not_found, f"Stripe has no invoice {invoice_id}", gateway=NAME
            )
        v1 = self._v1
        what = f"invoice {invoice_id}"
        raw = await self._get(lambda: v1.invoices.retrieve_async(invoice_id), what)
        if raw.get("collection_method") != "send_invoice":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"invoice {invoice_id} is charged automatically: Stripe only emails invoices "
                "whose collection method is send_invoice",
                gateway=NAME,
            )
        if raw.get("status") == "draft":
            # auto_advance off: Stripe would otherwise email it too, on its own schedule.
            raw = await self._get(
                lambda: v1.invoices.finalize_invoice_async(
                    invoice_id,
                    {"auto_advance": False},
                    {"idempotency_key": f"{idempotency_key}:finalize"},
                ),
                what,
            )
        if raw.get("status") != "open":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"invoice {invoice_id} is {raw.get('status')}: only open invoices are sent",
                gateway=NAME,
            )
        sent = await self._get(
            lambda: v1.invoices.send_invoice_async(
                invoice_id, None, {"idempotency_key": f"{idempotency_key}:send"}
            ),
            what,
        )
        return _invoice(sent)

    # --- webhooks --------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        secret = self.settings.webhook_secret
        if secret is None:
            raise WebhookRejected(NAME, "no Stripe webhook secret is configured")
        try:
            stripe.Webhook.construct_event(
                body,
                _header(headers, "Stripe-Signature"),
                secret.get_secret_value(),
                tolerance=self.settings.webhook_tolerance,
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(NAME, f"Stripe signature rejected: {exc.user_message}") from None
        except ValueError:
            raise WebhookRejected(NAME, "the Stripe delivery is not a JSON event") from None
        event = json.loads(body)
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            raise WebhookRejected(NAME, "the Stripe delivery is not an event")
        return [_event(event)]


# --- Stripe objects to domain ------------------------------------------------------------


def _charge(raw: Mapping[str, Any], intent_status: str | None = None) -> Charge:
    currency = raw["currency"]
    amount = raw["amount"]
    captured = raw.get("captured", True)
    amount_captured = raw.get("amount_captured")
    if amount_captured is None:  # API versions before 2020 (and localstripe) lack it
        amount_captured = amount if captured else 0
    # Stripe counts an uncaptured remainder (a partial capture, a released hold) as
    # refunded; we count only money that went back after being taken.
    released = amount - amount_captured
    refunded = max(0, (raw.get("amount_refunded") or 0) - released)
    if raw.get("status") == "failed":
        status = ChargeStatus.failed
    elif raw.get("disputed"):
        status = ChargeStatus.disputed
    elif not captured:
        voided = raw.get("refunded") or intent_status == "canceled"
        status = ChargeStatus.voided if voided else ChargeStatus.authorized
    elif amount_captured and refunded >= amount_captured:
        status = ChargeStatus.refunded
    elif refunded:
        status = ChargeStatus.partially_refunded
    else:
        status = ChargeStatus.succeeded
    return Charge(
        gateway=NAME,
        id=raw["id"],
        customer_id=_id(raw.get("customer")),
        amount=from_stripe_amount(amount, currency),
        amount_captured=from_stripe_amount(amount_captured, currency).minor,
        amount_refunded=from_stripe_amount(refunded, currency).minor,
        status=status,
        description=raw.get("description"),
        invoice_id=_id(raw.get("invoice")),
        payment_intent_id=_id(raw.get("payment_intent")),
        created=_time(raw.get("created")),
        failure_message=raw.get("failure_message"),
    )


def _refund(raw: Mapping[str, Any]) -> Refund:
    return Refund(
        gateway=NAME,
        id=raw["id"],
        charge_id=_id(raw.get("charge")) or "",
        amount=from_stripe_amount(raw["amount"], raw["currency"]),
        status=raw.get("status") or "succeeded",
        reason=_metadata(raw).get(REASON_META) or raw.get("reason"),
        created=_time(raw.get("created")),
    )


def _subscription(raw: Mapping[str, Any]) -> Subscription:
    items = (raw.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    price = first.get("price") or first.get("plan") or raw.get("plan") or {}
    currency = raw.get("currency") or price.get("currency")
    if not currency:
        raise GatewayError(
            ErrorCode.invalid_state, f"subscription {raw['id']} has no currency", gateway=NAME
        )
    total = 0
    for item in items:
        unit = item.get("price") or item.get("plan") or {}
        each = unit.get("unit_amount")
        if each is None:
            each = unit.get("amount") or 0
        total += each * (item.get("quantity") or 1)
    recurring = price.get("recurring") or price
    interval = recurring.get("interval") or "month"
    count = recurring.get("interval_count") or 1
    period_end = raw.get("current_period_end")  # moved onto items in API 2025-03-31
    if period_end is None:
        ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
        period_end = max(ends) if ends else None
    return Subscription(
        gateway=NAME,
        id=raw["id"],
        customer_id=_id(raw.get("customer")) or "",
        plan=price.get("nickname") or price.get("lookup_key") or price.get("id") or "",
        status=_SUBSCRIPTION_STATUSES.get(raw.get("status") or "", SubscriptionStatus.incomplete),
        amount=from_stripe_amount(total, currency),
        interval=interval if count == 1 else f"{count} {interval}s",
        current_period_end=_time(period_end),
        cancel_at_period_end=bool(raw.get("cancel_at_period_end")),
        canceled_at=_time(raw.get("canceled_at")),
    )


def _customer(customer_id: str, raw: Mapping[str, Any]) -> Customer:
    address = raw.get("address") or {}
    locales = raw.get("preferred_locales") or []
    return Customer(
        gateway=NAME,
        id=customer_id,
        email=raw.get("email"),
        name=raw.get("name"),
        created=_time(raw.get("created")),
        address=Address(**{k: address.get(k) for k in _ADDRESS_FIELDS}) if address else None,
        locale=locales[0] if locales else None,
        # "reverse" is Stripe's reverse-charge flag; ours follows from the customer's VAT ID.
        tax_exempt=raw.get("tax_exempt") == "exempt",
    )


_ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "state", "country")


def _invoice_lines(raw: Mapping[str, Any], amount_due: Money) -> tuple[InvoiceLine, ...]:
    """The invoice's lines when they add up to what is due (tax included), else none.

    With tax added on top, Stripe's line amounts are net: the document then shows
    one line for the total rather than lines that do not add up.
    """
    currency = raw["currency"]
    lines = tuple(
        InvoiceLine(
            description=item.get("description") or "—",
            quantity=item.get("quantity") or 1,
            amount=from_stripe_amount(item.get("amount") or 0, currency),
        )
        for item in (raw.get("lines") or {}).get("data") or []
    )
    if sum(line.amount.minor for line in lines) != amount_due.minor:
        return ()
    return lines


def _invoice(raw: Mapping[str, Any]) -> Invoice:
    currency = raw["currency"]
    amount_due = from_stripe_amount(raw.get("amount_due") or 0, currency)
    return Invoice(
        gateway=NAME,
        id=raw["id"],
        customer_id=_id(raw.get("customer")) or "",
        number=raw.get("number"),
        status=InvoiceStatus(raw.get("status") or "draft"),
        amount_due=amount_due,
        amount_paid=from_stripe_amount(raw.get("amount_paid") or 0, currency),
        due_date=_time(raw.get("due_date")),
        created=_time(raw.get("created")),
        charge_id=_id(raw.get("charge")),  # gone from invoices since API 2025-03-31
        pdf_url=raw.get("invoice_pdf"),
        hosted_url=raw.get("hosted_invoice_url"),
        lines=_invoice_lines(raw, amount_due),
        paid_at=_time((raw.get("status_transitions") or {}).get("paid_at")),
    )


def _dispute(raw: Mapping[str, Any]) -> Dispute:
    details = raw.get("evidence_details") or {}
    return Dispute(
        gateway=NAME,
        id=raw["id"],
        charge_id=_id(raw.get("charge")) or "",
        amount=from_stripe_amount(raw["amount"], raw["currency"]),
        reason=raw.get("reason") or "general",
        status=_DISPUTE_STATUSES.get(raw.get("status") or "", DisputeStatus.under_review),
        evidence_due_by=_time(details.get("due_by")),
    )


def _tax_id(raw: Mapping[str, Any]) -> TaxId:
    verification = raw.get("verification") or {}
    verified = {"verified": True, "unverified": False}.get(verification.get("status") or "")
    return TaxId(
        gateway=NAME,
        id=raw["id"],
        type=raw["type"],
        value=raw["value"],
        country=raw.get("country"),
        verified=verified,
    )


def _applies(
    discount: Mapping[str, Any], wanted: Mapping[str, str], coupon: Mapping[str, Any]
) -> bool:
    if "promotion_code" in wanted:
        return _id(discount.get("promotion_code")) == wanted["promotion_code"]
    source = discount.get("source")
    current = discount.get("coupon") or (source.get("coupon") if isinstance(source, dict) else None)
    return _id(current) == coupon.get("id") and discount.get("promotion_code") is None


def _money(value: Any, currency: Any) -> Money | None:
    if not isinstance(value, int) or not isinstance(currency, str):
        return None
    try:
        return from_stripe_amount(value, currency)
    except (MoneyError, GatewayError):
        return None


def _event(event: Mapping[str, Any]) -> GatewayEvent:
    raw_type = str(event.get("type") or "")
    kind = _EVENT_KINDS.get(raw_type, EventKind.other)
    obj = event["data"].get("object") or {}
    object_type = obj.get("object")
    currency = obj.get("currency")
    object_id = obj.get("id") or event["id"]
    related_id: str | None = None
    amount: Money | None = None
    status = obj.get("status")
    detail: dict[str, Any] = {"livemode": bool(event.get("livemode"))}
    if object_type == "charge":
        related_id = _id(obj.get("payment_intent"))
        # An odd currency must not lose the event: Stripe's own status stays then.
        with contextlib.suppress(MoneyError, GatewayError, KeyError):
            status = _charge(obj).status.value
        amount = _money(obj.get("amount_captured") or obj.get("amount"), currency)
        if kind == EventKind.refund:
            related_id = obj["id"]
            # Since API 2022-11-15 the charge comes without its refunds: then only
            # refund.created names the refund, and this event gives the running total.
            refunds = (obj.get("refunds") or {}).get("data") or []
            latest = max(refunds, key=lambda r: r.get("created") or 0, default=None)
            amount = None
            if latest is not None:
                object_id = latest["id"]
                amount = _money(latest.get("amount"), currency)
            detail["amount_refunded"] = _money(obj.get("amount_refunded"), currency)
        if obj.get("failure_message"):
            detail["failure_message"] = obj["failure_message"]
    elif object_type == "refund":
        related_id = _id(obj.get("charge"))
        amount = _money(obj.get("amount"), currency)
    elif object_type == "dispute":
        related_id = _id(obj.get("charge"))
        amount = _money(obj.get("amount"), currency)
        detail["reason"] = obj.get("reason")
    elif object_type == "payment_intent":
        related_id = _id(obj.get("latest_charge"))
        received = obj.get("amount_received")
        amount = _money(received if received else obj.get("amount"), currency)
        error = obj.get("last_payment_error")
        if isinstance(error, dict) and error.get("message"):
            detail["failure_message"] = error["message"]
    elif object_type == "invoice":
        parent = obj.get("parent") or {}
        related_id = _id(obj.get("subscription")) or _id(
            (parent.get("subscription_details") or {}).get("subscription")
        )
        paid = kind == EventKind.invoice_paid
        amount = _money(obj.get("amount_paid" if paid else "amount_due"), currency)
    request = event.get("request")
    created = _time(event.get("created")) or datetime.now(UTC)
    return GatewayEvent(
        gateway=NAME,
        id=str(event.get("id") or ""),
        kind=kind,
        raw_type=raw_type,
        created=created,
        object_id=str(object_id),
        related_id=related_id,
        customer_id=obj.get("id") if object_type == "customer" else _id(obj.get("customer")),
        amount=amount,
        status=status,
        idempotency_key=request.get("idempotency_key") if isinstance(request, dict) else None,
        detail=detail,
    )
