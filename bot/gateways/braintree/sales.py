"""A new payment at Braintree: `Transaction.sale` on the customer's vaulted card.

Braintree's REST API honours no idempotency key, so the sale carries our key as its order ID
(`order_marker`) and is read back by it before anything is sent: approving twice, or a retry
after a lost answer, charges once. The merchant account (which fixes the currency) is the one
of the customer's earlier payments in that currency; without one the charge is refused rather
than made in the account's default currency.
"""

from __future__ import annotations

from typing import Any

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.braintree.client import BraintreeAPI
from bot.gateways.braintree.mapping import NAME, field, money_to_braintree, order_marker
from bot.money import Money

_UNKNOWN = frozenset({ErrorCode.timeout, ErrorCode.unavailable})


async def charge_vaulted(
    api: BraintreeAPI, customer_id: str, amount: Money, *, description: str, key: str
) -> Any:
    """The sale (a transaction), made once per key."""
    order_id = order_marker(key)
    earlier = await _ours(api, order_id)
    if earlier is not None:
        return _settled_or_refused(earlier, customer_id)
    customer = await api.customer(customer_id)
    if customer is None:
        raise GatewayError(ErrorCode.not_found, f"Braintree has no customer {customer_id}",
                           gateway=NAME)  # fmt: skip
    token = _default_card(customer, customer_id)
    params: dict[str, Any] = {
        "amount": money_to_braintree(amount), "payment_method_token": token,
        "merchant_account_id": await _account_for(api, customer_id, amount.currency),
        "order_id": order_id, "options": {"submit_for_settlement": True},
        "transaction_source": "unscheduled",
    }  # fmt: skip
    try:
        return await api.sale(params)
    except GatewayError as exc:
        if exc.code not in _UNKNOWN:
            raise
        found = await _ours(api, order_id)  # the answer was lost: did the sale happen?
        if found is None:
            raise
        return _settled_or_refused(found, customer_id)


async def _ours(api: BraintreeAPI, order_id: str) -> Any | None:
    sales = [t for t in await api.transactions_by_order(order_id) if field(t, "type") == "sale"]
    return sales[0] if sales else None


def _settled_or_refused(sale: Any, customer_id: str) -> Any:
    if field(sale, "status") in ("processor_declined", "gateway_rejected", "failed"):
        code = str(field(sale, "processor_response_code") or field(sale, "status"))
        raise GatewayError(ErrorCode.card_declined,
                           f"the card of {customer_id} was declined ({code})",
                           gateway=NAME, raw_code=code)  # fmt: skip
    return sale


def _default_card(customer: Any, customer_id: str) -> str:
    methods = list(field(customer, "payment_methods") or field(customer, "credit_cards") or [])
    default = next((m for m in methods if field(m, "default")), None)
    chosen = default or (methods[0] if len(methods) == 1 else None)
    if chosen is None:
        raise GatewayError(ErrorCode.invalid_state,
                           f"{customer_id} has no saved card: send a payment request instead",
                           gateway=NAME)  # fmt: skip
    return str(field(chosen, "token"))


async def _account_for(api: BraintreeAPI, customer_id: str, currency: str) -> str:
    for sale in await api.transactions_of(cap=50, customer_id=customer_id):
        if str(field(sale, "currency_iso_code") or "").upper() == currency:
            return str(field(sale, "merchant_account_id"))
    raise GatewayError(
        ErrorCode.currency_mismatch,
        f"{customer_id} has never paid in {currency} at Braintree, so no merchant account "
        f"is known for {currency}: charge in the currency of their earlier payments",
        gateway=NAME,
    )
