"""New payments at Stripe: an off-session charge of a saved card, and Checkout pay links.

An off-session charge is one PaymentIntent (`off_session`, `confirm`) on the customer's
default payment method, sent with the approval's ID as its Idempotency-Key and kept in its
metadata, so a retry after Stripe forgot the key (24 hours) finds the first one instead of
charging twice. A pay link is a Checkout Session (mode=payment) for the customer; it lasts at
most 24 hours at Stripe, so the payment request asks for a new one when it has expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.stripe.client import StripeAPI
from bot.gateways.stripe.mapping import (
    KEY_META,
    NAME,
    clip_metadata,
    expandable_id,
    metadata_of,
    stripe_time,
    to_stripe_amount,
)
from bot.models import PayLink, PayLinkStatus
from bot.money import Money

REQUEST_META = "chargedesk_payment_request"
# Stripe keeps a Checkout Session open for 30 minutes to 24 hours; ask for nearly the most.
SESSION_LIFETIME = timedelta(hours=23)
# Where Checkout sends the customer after paying; the pages are Stripe's own.
SUCCESS_URL = "https://checkout.stripe.com/success"


async def saved_payment_method(api: StripeAPI, customer_id: str) -> str:
    """The customer's default payment method, else their only card; refused if neither."""
    what = f"customer {customer_id}"
    customer = await api.get(lambda: api.v1.customers.retrieve_async(customer_id), what)
    if customer.get("deleted"):
        raise GatewayError(ErrorCode.not_found, f"Stripe has no {what}", gateway=NAME)
    default = expandable_id((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if default:
        return default
    cards = await api.list(
        lambda p: api.v1.customers.payment_methods.list_async(customer_id, p),
        {"type": "card"}, f"the cards of {what}", 2,
    )  # fmt: skip
    if len(cards) == 1:
        return str(cards[0]["id"])
    why = "no saved card" if not cards else "several cards and no default one"
    raise GatewayError(
        ErrorCode.invalid_state,
        f"{customer_id} has {why}: send a payment request instead (`request`)",
        gateway=NAME,
    )


async def charge_off_session(
    api: StripeAPI, customer_id: str, amount: Money, *, description: str, key: str
) -> str:
    """Charge the saved card once per key; returns the charge ID."""
    earlier = await _intent_with_key(api, customer_id, key)
    if earlier is not None and earlier.get("status") == "succeeded":
        return str(expandable_id(earlier.get("latest_charge")))
    method = await saved_payment_method(api, customer_id)
    params: dict[str, Any] = {
        "amount": to_stripe_amount(amount), "currency": amount.currency.lower(),
        "customer": customer_id, "payment_method": method, "off_session": True,
        "confirm": True, "description": clip_metadata(description),
        "metadata": {KEY_META: key},
    }  # fmt: skip
    try:
        intent = await api.get(
            lambda: api.v1.payment_intents.create_async(params, {"idempotency_key": key}),
            f"the charge of {customer_id}",
        )
    except GatewayError as exc:
        raise _declined(exc, customer_id) from None
    if intent.get("status") == "requires_action":
        raise _needs_customer(customer_id, intent.get("status"))
    if intent.get("status") not in ("succeeded", "processing"):
        raise GatewayError(
            ErrorCode.rejected,
            f"Stripe left the charge of {customer_id} {intent.get('status')}",
            gateway=NAME, raw_code=str(intent.get("status")),
        )  # fmt: skip
    return str(expandable_id(intent.get("latest_charge")))


async def _intent_with_key(api: StripeAPI, customer_id: str, key: str) -> dict[str, Any] | None:
    intents = await api.list(
        lambda p: api.v1.payment_intents.list_async(p),
        {"customer": customer_id}, f"the payments of {customer_id}", 100,
    )  # fmt: skip
    return next((i for i in intents if metadata_of(i).get(KEY_META) == key), None)


def _needs_customer(customer_id: str, raw: str | None) -> GatewayError:
    return GatewayError(
        ErrorCode.authentication_required,
        f"the bank of {customer_id} wants the cardholder to confirm this payment (3-D Secure): "
        "it cannot be charged without them. Send a payment request instead (`request`)",
        gateway=NAME, raw_code=raw or "authentication_required",
    )  # fmt: skip


def _declined(exc: GatewayError, customer_id: str) -> GatewayError:
    """Stripe's card error in our words: 3-D Secure wanted, or declined with its decline code."""
    if exc.code != ErrorCode.card_declined:
        return exc
    if exc.raw_code == "authentication_required":
        return _needs_customer(customer_id, exc.raw_code)
    return GatewayError(
        ErrorCode.card_declined,
        f"the card of {customer_id} was declined ({exc.raw_code}): {exc.raw_message}",
        gateway=NAME, raw_code=exc.raw_code, raw_message=exc.raw_message,
    )  # fmt: skip


# --- pay links: Checkout Sessions ------------------------------------------------------


def pay_link_of(session: dict[str, Any]) -> PayLink:
    """A Checkout Session as a pay link (pure)."""
    status = session.get("status")
    if status == "complete" and session.get("payment_status") in ("paid", "no_payment_required"):
        state = PayLinkStatus.paid
    elif status == "open":
        state = PayLinkStatus.open
    else:
        state = PayLinkStatus.expired
    return PayLink(
        gateway=NAME, id=str(session["id"]), status=state,
        url=session.get("url") if state == PayLinkStatus.open else None,
        expires_at=stripe_time(session.get("expires_at")),
        charge_id=expandable_id(session.get("payment_intent")) if state == PayLinkStatus.paid else None,
    )  # fmt: skip


async def create_session(
    api: StripeAPI, customer_id: str, amount: Money, *, description: str, reference: str,
    key: str,
) -> PayLink:  # fmt: skip
    marker = {REQUEST_META: reference, KEY_META: key}
    expires = datetime.now(UTC) + SESSION_LIFETIME
    params: dict[str, Any] = {
        "mode": "payment", "customer": customer_id, "client_reference_id": reference,
        "line_items": [{"quantity": 1, "price_data": {
            "currency": amount.currency.lower(), "unit_amount": to_stripe_amount(amount),
            "product_data": {"name": description[:250]},
        }}],
        "metadata": marker, "payment_intent_data": {"metadata": marker},
        "success_url": SUCCESS_URL, "expires_at": int(expires.timestamp()),
    }  # fmt: skip
    session = await api.get(
        lambda: api.v1.checkout.sessions.create_async(params, {"idempotency_key": key}),
        f"a Checkout Session for {customer_id}",
    )
    return pay_link_of(session)


async def get_session(api: StripeAPI, session_id: str) -> PayLink:
    _known(session_id)
    return pay_link_of(
        await api.get(
            lambda: api.v1.checkout.sessions.retrieve_async(session_id),
            f"Checkout Session {session_id}",
        )
    )


async def expire_session(api: StripeAPI, session_id: str) -> PayLink:
    link = await get_session(api, session_id)
    if link.status != PayLinkStatus.open:
        return link
    return pay_link_of(
        await api.get(
            lambda: api.v1.checkout.sessions.expire_async(session_id),
            f"Checkout Session {session_id}",
        )
    )


def _known(session_id: str) -> None:
    if not session_id.startswith("cs_"):
        raise GatewayError(
            ErrorCode.not_found, f"Stripe has no Checkout Session {session_id}", gateway=NAME
        )
