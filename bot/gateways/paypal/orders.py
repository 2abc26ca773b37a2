"""Pay links: Orders v2 checkouts of intent CAPTURE that the buyer approves on PayPal.

- An order is made with the payment request's ID as `invoice_id` (shown to the buyer, and
  by PayPal's default account setting paid at most once across orders) and as `custom_id`
  behind `chargedesk:`, so the bot never touches the merchant's own website orders. The
  idempotency key is the `PayPal-Request-Id`: the same key gives the same order.
- PayPal's checkout does not take the money at approval: the merchant captures an
  APPROVED order, within 3 hours. `settle` does it, once (a `PayPal-Request-Id` derived
  from the order ID), whenever the bot reads the order: the CHECKOUT.ORDER.APPROVED
  webhook, the reminder job or the mail placeholder. A request is paid only when captured.
- Orders v2 has no cancel. Cancelling replaces the `custom_id` with `chargedesk-cancelled:`
  (a PATCH, allowed while CREATED or APPROVED): `settle` never captures such an order and
  reports it expired; PayPal drops an uncaptured order by itself after its approval window.
  A buyer who approves in the same instant as the cancel may still be captured: the order
  then reads COMPLETED, and the request closes as paid rather than cancelled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.paypal.client import PayPalAPI, request_id
from bot.gateways.paypal.mapping import NAME, Json, money_to_paypal, order_payments, paypal_time
from bot.models import PayLink, PayLinkStatus
from bot.money import Money

OURS = "chargedesk:"
CANCELLED = "chargedesk-cancelled:"
# PayPal's default: the buyer must reach the approve page within 3 hours of the order's
# creation (24, 48 or 72 through PayPal's account manager); a new order is made after.
APPROVAL_WINDOW = timedelta(hours=3)
RETURN_URL = "https://www.paypal.com/checkoutnow/error"  # PayPal's own page: nothing of ours
UNIT = "/purchase_units/@reference_id=='default'/custom_id"


def reference_of(custom_id: object) -> str | None:
    """Our payment request's ID from a purchase unit's or capture's `custom_id`, if ours."""
    text = str(custom_id or "")
    return text.removeprefix(OURS) if text.startswith(OURS) else None


def _unit(order: Json) -> Json:
    units = order.get("purchase_units") or [{}]
    return units[0] if isinstance(units[0], dict) else {}


def _buyer_url(order: Json) -> str | None:
    links = {link.get("rel"): link.get("href") for link in order.get("links") or []}
    return links.get("payer-action") or links.get("approve")


def pay_link_of(order: Json, now: datetime) -> PayLink:
    """An order as a pay link (pure): paid once a capture completed, open while the buyer
    can still approve it, expired once cancelled by us or past its approval window."""
    created = paypal_time(order.get("create_time"))
    expires = created + APPROVAL_WINDOW if created else None
    status = order.get("status")
    completed = [c for c in order_payments(order, "captures") if c.get("status") == "COMPLETED"]
    cancelled = str(_unit(order).get("custom_id") or "").startswith(CANCELLED)
    url = None
    if completed:
        state = PayLinkStatus.paid
    elif (
        cancelled
        or status == "VOIDED"
        or (
            status in ("CREATED", "PAYER_ACTION_REQUIRED")
            and expires is not None
            and now >= expires
        )
    ):
        state = PayLinkStatus.expired
    else:
        # Approved but not captured, or captured and pending (an eCheck): not paid yet.
        state = PayLinkStatus.open
        url = _buyer_url(order) if status in ("CREATED", "PAYER_ACTION_REQUIRED") else None
    return PayLink(
        gateway=NAME, id=str(order["id"]), status=state, url=url, expires_at=expires,
        charge_id=str(completed[0]["id"]) if completed else None,
    )  # fmt: skip


async def create(
    api: PayPalAPI, amount: Money, *, description: str, reference: str, key: str
) -> Json:
    """The order for payment request `reference`; the same key answers the same order."""
    unit = {
        "reference_id": "default",
        "amount": money_to_paypal(amount),
        "custom_id": OURS + reference,
        "invoice_id": reference,
    }
    if description.strip():
        unit["description"] = description.strip()[:127]  # PayPal's limit
    wallet = {
        "experience_context": {
            "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING",
            "return_url": RETURN_URL,
            "cancel_url": RETURN_URL,
        }
    }
    reply = await api.sdk(
        api.sdk_client.orders.create_order,
        {
            "paypal_request_id": request_id(key),
            "prefer": "return=representation",
            "body": {
                "intent": "CAPTURE",
                "purchase_units": [unit],
                "payment_source": {"paypal": wallet},
            },
        },
        verb="create",
        what=f"a PayPal order for {reference}",
    )
    return dict(reply.body)


async def read(api: PayPalAPI, order_id: str) -> Json:
    reply = await api.sdk(
        api.sdk_client.orders.get_order, {"id": order_id}, verb="read", what=f"order {order_id}"
    )
    return dict(reply.body)


async def settle(api: PayPalAPI, order: Json) -> Json:
    """Capture an APPROVED order of ours that was not cancelled, exactly once; the order
    as it stands after (any other order is returned as it is)."""
    if order.get("status") != "APPROVED" or reference_of(_unit(order).get("custom_id")) is None:
        return order
    order_id = str(order["id"])
    try:
        reply = await api.sdk(
            api.sdk_client.orders.capture_order,
            {
                "id": order_id,
                # Derived from the order: every reader's capture is the same one.
                "paypal_request_id": request_id(f"chargedesk:capture:{order_id}"),
                "prefer": "return=representation",
            },
            verb="capture",
            what=f"order {order_id}",
        )
    except GatewayError as exc:
        if exc.raw_code != "ORDER_ALREADY_CAPTURED":  # another reader was first
            raise
        return await read(api, order_id)
    return dict(reply.body)


async def cancel(api: PayPalAPI, order: Json, now: datetime) -> PayLink:
    """Mark the order (as just read) cancelled so the bot never captures it; one paid is
    left as it is. An approved order is not captured first: cancelling refuses the money."""
    order_id = str(order["id"])
    link = pay_link_of(order, now)
    custom_id = str(_unit(order).get("custom_id") or "")
    if order.get("status") in ("COMPLETED", "VOIDED") or custom_id.startswith(CANCELLED):
        return link  # paid (perhaps still pending), or never payable again
    # Marked even past its approval window: an account may have a longer one than ours.
    reference = reference_of(custom_id)
    if reference is None:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"order {order_id} was not made by ChargeDesk: it is left as it is",
            gateway=NAME,
        )
    try:
        await api.sdk(
            api.sdk_client.orders.patch_order,
            {"id": order_id, "body": [{"op": "replace", "path": UNIT,
                                       "value": CANCELLED + reference}]},
            verb="cancel", what=f"order {order_id}",
        )  # fmt: skip
    except GatewayError as exc:
        if exc.raw_code != "ORDER_ALREADY_COMPLETED":  # captured meanwhile: paid
            raise
    # Read again: a capture that won the race shows as paid, not cancelled.
    return pay_link_of(await read(api, order_id), now)
