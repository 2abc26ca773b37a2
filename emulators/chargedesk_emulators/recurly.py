"""An HTTP-level Recurly emulator (API v2021-02-25) on 127.0.0.1:0, for the Recurly gateway's tests.

It follows Recurly's published OpenAPI description (emulators/chargedesk_emulators/data/recurly,
pruned from recurly-client-python's openapi/api.yaml) for the endpoints the gateway uses:
accounts (listed by e-mail: several may share one), an account's transactions, invoices,
subscriptions and active coupon redemptions, single transactions, invoices (with their line
items and related credit invoices), plans and coupons, invoice refunds, subscription cancel
and terminate, and coupon redemptions.

What it holds to, because the gateway depends on it:
- Basic auth with the API key as user name; `Accept: application/vnd.recurly.v2021-02-25`.
- Errors in Recurly's shape, `{"error": {"type", "message", "params"}}`, with an
  `X-Request-Id` header on every answer (the SDK's error text needs it).
- Amounts are JSON numbers written exactly (`100.00`, `500` for JPY); Recurly keeps at most
  two decimals, none for zero-decimal currencies.
- Lists page with `limit` (1-200, default 20) and `next`, the path of the following page.
- `POST /invoices/{id}/refund` refunds an amount (split over the lines) or line-item
  quantities, and `refund_method` decides where the money goes: `credit_first`, the default,
  gives back the part paid with account credit as credit *before* touching the card, so a
  refund sent without a method can become account credit. `all_transaction` refunds to
  payments only, reaching an older invoice's payment when this one's is used up.
- `DELETE /subscriptions/{id}?refund=none|partial|full` terminates now; `PUT .../cancel`
  with `timeframe` (term_end by default, or bill_date) lets it run to that date.
- `POST /subscriptions` and `POST /purchases` charge the account's saved card (`set_card`:
  a decline code declines with Recurly's `transaction` error and its `transaction_error`,
  leaving only the declined transaction: no invoice, no subscription); a new account code
  makes an account without billing info. Coupons in `coupon_codes` are redeemed, not priced
  into the invoice. Neither keeps an idempotency key: Recurly's description has none.
- `POST /subscriptions/{id}/change/preview` and `.../change`: `now` bills (or credits) the
  new price for the days left of the period less the old one's, by whole days with today
  counted (how finely Recurly itself prorates is not in its description); `bill_date`,
  `renewal` and `term_end` keep a pending change. A change to the subscription as it is
  reverts a pending one (204) or is refused (422).
- The site's lists (`/accounts`, `/transactions`, `/invoices`, `/subscriptions`) take
  `sort`, `order`, `begin_time`/`end_time` (inclusive) and `ids` (alone, all at once).

State is seeded through Python methods (`add_account`, `add_purchase`, ...); refunds made in
Recurly's admin (`refund_in_dashboard`) and signed webhook deliveries (`webhook_delivery`)
come from here too. The gateway can only reach what Recurly itself offers over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from openapi_core import OpenAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.openapi_check import exchange_problems
from chargedesk_emulators.serve import command, running
from chargedesk_emulators.traffic import EmulatedAPI, Exchange, Refused

API_VERSION = "v2021-02-25"
MEDIA_TYPES = frozenset(
    {f"application/vnd.recurly.{API_VERSION}", f"application/vnd.recurly.{API_VERSION}+json"}
)
SCHEMAS = Path(__file__).resolve().parent / "data" / "recurly"
_SERVER = "https://v3.recurly.com"
# ISO 4217 currencies without a minor unit; Recurly keeps at most two decimals for the rest.
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_ID_ALPHABET = string.ascii_lowercase + string.digits
_PAYMENT_TYPES = ("purchase", "capture")
_NUMBER = re.compile(r'"\\u0000(-?[0-9]+(?:\.[0-9]+)?)\\u0000"')
_CARD = {
    "object": "credit_card",
    "card_type": "Visa",
    "first_six": "411111",
    "last_four": "1111",
    "exp_month": 12,
    "exp_year": 2030,
}

Json = dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """An object ID the way Recurly writes them: 12 lower-case letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def decimals(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def quantize(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals(currency)), rounding=ROUND_HALF_UP)


def amount(text: str | Decimal, currency: str) -> Decimal:
    """A seeded amount, exact and within the currency's decimals."""
    value = Decimal(str(text))
    if value != quantize(value, currency):
        raise ValueError(f"{text} {currency}: Recurly keeps {decimals(currency)} decimals")
    return quantize(value, currency)


def render(payload: Any) -> bytes:
    """JSON with every Decimal written as an exact number (json itself only writes floats)."""

    def marked(value: Any) -> Any:
        if isinstance(value, Decimal):
            return "\x00" + format(value, "f") + "\x00"
        raise TypeError(f"{type(value).__name__} is not JSON")

    text = json.dumps(payload, default=marked)
    return _NUMBER.sub(lambda m: m.group(1), text).encode()


def _clean(payload: Json) -> Json:
    """An object as Recurly writes it: unset fields left out."""
    return {k: v for k, v in payload.items() if v is not None}


class ApiError(Exception):
    """An error answer in Recurly's shape: `{"error": {"type", "message", "params"}}`."""

    def __init__(
        self, status: int, kind: str, message: str, params: list[Json] | None = None
    ) -> None:
        super().__init__(f"{status} {kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message
        self.params = params or []

    def body(self) -> Json:
        error: Json = {"type": self.kind, "message": self.message}
        if self.params:
            error["params"] = self.params
        if self.transaction_error is not None:
            error["transaction_error"] = self.transaction_error
        return {"error": error}

    transaction_error: Json | None = None


def declined(txn: Transaction, code: str) -> ApiError:
    """A declined payment as Recurly answers it: 422, type `transaction`, its details."""
    hard = code in ("fraudulent", "lost_card", "stolen_card", "pickup_card", "do_not_try_again")
    exc = ApiError(422, "transaction", "Your card was declined.")
    exc.transaction_error = {
        "object": "transaction_error", "transaction_id": txn.id,
        "category": "hard" if hard else "soft",
        "code": "insufficient_funds" if code == "insufficient_funds" else "declined",
        "decline_code": code, "message": "Your card was declined.",
        "merchant_advice": "The customer's bank declined the charge.",
    }  # fmt: skip
    return exc


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, "not_found", f"Couldn't find {kind} with id = {object_id}")


def invalid(param: str, message: str) -> ApiError:
    return ApiError(
        422,
        "validation",
        f"{param.replace('_', ' ').capitalize()} {message}",
        [{"param": param, "message": message}],
    )


# --- records -------------------------------------------------------------------------------


@dataclass
class Account:
    id: str
    code: str
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    created: datetime
    locale: str | None = None
    address: Json | None = None
    hosted_login_token: str = field(default_factory=lambda: secrets.token_hex(16))
    state: str = "active"
    # The saved card: "success" charges, a decline code (DeclineCodeEnum: insufficient_funds,
    # do_not_honor, ...) declines, None is no billing info on the account.
    card: str | None = "success"


@dataclass
class Plan:
    id: str
    code: str
    name: str
    interval_unit: str
    interval_length: int
    prices: dict[str, Decimal]
    created: datetime


@dataclass
class Line:
    id: str
    uuid: str
    invoice_id: str
    account_id: str
    currency: str
    description: str
    quantity: int
    unit_amount: Decimal
    created: datetime
    type: str = "charge"  # or credit
    origin: str = "one_time"
    subscription_id: str | None = None
    plan: Plan | None = None
    previous_line_item_id: str | None = None
    original_invoice_id: str | None = None
    refunded_quantity: int = 0
    refunded_amount: Decimal = Decimal(0)  # of an amount refund split over this line

    @property
    def subtotal(self) -> Decimal:
        return self.unit_amount * self.quantity


@dataclass
class Transaction:
    id: str
    uuid: str
    account_id: str
    type: str  # purchase, capture, authorization, refund, verify
    currency: str
    amount: Decimal
    status: str
    created: datetime
    origin: str = "api"
    invoice_id: str | None = None
    subscription_ids: list[str] = field(default_factory=list)
    original_transaction_id: str | None = None
    status_message: str | None = None
    collected: datetime | None = None
    voided: datetime | None = None


@dataclass
class Invoice:
    id: str
    uuid: str
    number: str
    account_id: str
    type: str  # charge or credit
    origin: str
    state: str
    currency: str
    created: datetime
    line_ids: list[str] = field(default_factory=list)
    transaction_ids: list[str] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    credit_applied: Decimal = Decimal(0)  # paid with account credit (charge invoices)
    credit_issued: Decimal = Decimal(0)  # given back as account credit (credit invoices)
    refunded: Decimal = Decimal(0)  # refunded so far (charge invoices)
    credit_refunded: Decimal = Decimal(0)  # of which back as credit (charge invoices)
    previous_invoice_id: str | None = None
    customer_notes: str | None = None
    closed: datetime | None = None
    updated: datetime | None = None
    collection_method: str = "automatic"


@dataclass
class Subscription:
    id: str
    uuid: str
    account_id: str
    plan: Plan
    currency: str
    unit_amount: Decimal
    quantity: int
    state: str
    created: datetime
    period_start: datetime
    period_end: datetime
    term_end: datetime
    canceled: datetime | None = None
    expires: datetime | None = None
    expiration_reason: str | None = None
    invoice_ids: list[str] = field(default_factory=list)
    updated: datetime | None = None
    paused_at: datetime | None = None  # when a pause starts (the next renewal)
    remaining_pause_cycles: int | None = None
    trial_started: datetime | None = None
    trial_ends: datetime | None = None
    customer_notes: str | None = None
    pending: Change | None = None  # a change waiting for the next bill date


@dataclass
class Change:
    """A subscription change (`POST /subscriptions/{id}/change`): now, or at `activate_at`."""

    id: str
    subscription_id: str
    plan: Plan
    unit_amount: Decimal
    quantity: int
    activate_at: datetime
    created: datetime
    activated: bool = False


@dataclass
class Coupon:
    id: str
    code: str
    name: str
    discount: Json
    duration: str
    created: datetime
    state: str = "redeemable"
    redemption_resource: str = "account"
    temporal_amount: int | None = None
    temporal_unit: str | None = None


@dataclass
class Redemption:
    id: str
    account_id: str
    coupon: Coupon
    currency: str
    created: datetime
    subscription_id: str | None = None
    state: str = "active"


Handler = Callable[[Request, Json], tuple[int, Any]]


class RecurlyEmulator(EmulatedAPI):
    """One Recurly site's API, stateful, in memory."""

    name = "Recurly"

    def __init__(
        self,
        *,
        api_key: str = "chargedesk-recurly-private-key",
        webhook_secret: str = "chargedesk-recurly-webhook-secret",
        subdomain: str = "chargedesk-test",
        credit_invoices: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        # Sites without Recurly's Credit Invoices feature (older ones) know no refund method
        # but the default, and no credit invoice notes.
        self.credit_invoices = credit_invoices
        self.webhook_secret = webhook_secret
        self.subdomain = subdomain
        self.site_id = new_id()
        self.accounts: dict[str, Account] = {}
        self.plans: dict[str, Plan] = {}
        self.lines: dict[str, Line] = {}
        self.transactions: dict[str, Transaction] = {}
        self.invoices: dict[str, Invoice] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.coupons: dict[str, Coupon] = {}
        self.redemptions: dict[str, Redemption] = {}
        self.credit: dict[tuple[str, str], Decimal] = {}  # (account, currency) -> balance
        self._next_number = 1001

    # --- seeding -------------------------------------------------------------------------

    def add_account(
        self,
        email: str,
        first_name: str | None = "Jane",
        last_name: str | None = "Doe",
        *,
        code: str | None = None,
        company: str | None = None,
        days_ago: float = 60,
        locale: str | None = None,
        address: Json | None = None,
    ) -> str:
        with self._lock:
            account = Account(
                id=new_id(),
                code=code or f"cust-{secrets.token_hex(4)}",
                email=email,
                first_name=first_name,
                last_name=last_name,
                company=company,
                created=now() - timedelta(days=days_ago),
                locale=locale,
                address=address,
            )
            self.accounts[account.id] = account
            return account.id

    def add_plan(
        self,
        code: str,
        name: str,
        prices: dict[str, str],
        *,
        interval_unit: str = "months",
        interval_length: int = 1,
    ) -> str:
        with self._lock:
            plan = Plan(
                id=new_id(),
                code=code,
                name=name,
                interval_unit=interval_unit,
                interval_length=interval_length,
                prices={c: amount(v, c) for c, v in prices.items()},
                created=now() - timedelta(days=365),
            )
            self.plans[plan.id] = plan
            return plan.id

    def add_purchase(
        self,
        account_id: str,
        lines: str | list[tuple[str, str, int]],
        currency: str = "USD",
        *,
        days_ago: float = 0,
        status: str = "success",
        paid_with_credit: str = "0",
        subscription_id: str | None = None,
    ) -> tuple[str, str | None]:
        """A charge invoice and the card payment for what credit did not cover.

        `lines` is one amount, or (description, unit amount, quantity) triples.
        `status` "processing" is a payment not settled yet (ACH); "declined" failed.
        Returns (invoice ID, payment transaction ID or None when credit paid it all).
        """
        with self._lock:
            when = now() - timedelta(days=days_ago)
            if isinstance(lines, str):
                lines = [("One-time charge", lines, 1)]
            invoice = self._new_invoice(account_id, "charge", "purchase", currency, when)
            sub = self.subscriptions.get(subscription_id) if subscription_id else None
            for description, unit, quantity in lines:
                line = Line(
                    id=new_id(),
                    uuid=secrets.token_hex(16),
                    invoice_id=invoice.id,
                    account_id=account_id,
                    currency=currency,
                    description=description,
                    quantity=quantity,
                    unit_amount=amount(unit, currency),
                    created=when,
                    origin="plan" if sub else "one_time",
                    subscription_id=subscription_id,
                    plan=sub.plan if sub else None,
                )
                self.lines[line.id] = line
                invoice.line_ids.append(line.id)
            if sub is not None:
                invoice.subscription_ids.append(sub.id)
                invoice.origin = "purchase" if not sub.invoice_ids else "renewal"
                sub.invoice_ids.append(invoice.id)
            credit = amount(paid_with_credit, currency)
            invoice.credit_applied = credit
            card = self._total(invoice) - credit
            payment = None
            if card > 0:
                payment = self._new_transaction(
                    account_id, "purchase", currency, card, status, when, invoice=invoice
                )
            invoice.state = {"success": "paid", "processing": "processing"}.get(status, "failed")
            invoice.closed = when if invoice.state == "paid" else None
            return invoice.id, payment.id if payment else None

    def add_authorization(
        self, account_id: str, value: str, currency: str = "USD", *, days_ago: float = 0
    ) -> str:
        """An authorization hold (a billing-info verification), not captured."""
        with self._lock:
            when = now() - timedelta(days=days_ago)
            return self._new_transaction(
                account_id, "authorization", currency, amount(value, currency), "success", when
            ).id

    def add_subscription(
        self,
        account_id: str,
        plan_id: str,
        currency: str = "USD",
        *,
        quantity: int = 1,
        days_ago: float = 10,
        term_cycles: int = 1,
    ) -> str:
        """An active subscription in its current period, with the invoice that paid for it."""
        with self._lock:
            plan = self.plans[plan_id]
            started = now() - timedelta(days=days_ago)
            end = _advance(started, plan)
            term_end = started
            for _ in range(term_cycles):
                term_end = _advance(term_end, plan)
            sub = Subscription(
                id=new_id(),
                uuid=secrets.token_hex(16),
                account_id=account_id,
                plan=plan,
                currency=currency,
                unit_amount=plan.prices[currency],
                quantity=quantity,
                state="active",
                created=started,
                period_start=started,
                period_end=end,
                term_end=term_end,
            )
            self.subscriptions[sub.id] = sub
            price = format(plan.prices[currency], "f")
            self.add_purchase(
                account_id,
                [(f"{plan.name}", price, quantity)],
                currency,
                days_ago=days_ago,
                subscription_id=sub.id,
            )
            return sub.id

    def add_coupon(
        self,
        code: str,
        name: str,
        *,
        percent: int | None = None,
        fixed: dict[str, str] | None = None,
        duration: str = "forever",
        temporal: tuple[int, str] | None = None,
        state: str = "redeemable",
        redemption_resource: str = "account",
    ) -> str:
        with self._lock:
            if percent is not None:
                discount: Json = {"type": "percent", "percent": percent}
            else:
                discount = {
                    "type": "fixed",
                    "currencies": [
                        {"currency": c, "amount": amount(v, c)} for c, v in (fixed or {}).items()
                    ],
                }
            coupon = Coupon(
                id=new_id(),
                code=code,
                name=name,
                discount=discount,
                duration=duration,
                created=now() - timedelta(days=30),
                state=state,
                redemption_resource=redemption_resource,
                temporal_amount=temporal[0] if temporal else None,
                temporal_unit=temporal[1] if temporal else None,
            )
            self.coupons[coupon.id] = coupon
            return coupon.id

    def set_card(self, account_id: str, outcome: str | None) -> None:
        """The account's saved card: "success", a decline code, or None (no billing info)."""
        with self._lock:
            self.accounts[account_id].card = outcome

    # --- what happens in Recurly's admin -------------------------------------------------

    def refund_in_dashboard(
        self,
        invoice_id: str,
        value: str | None = None,
        *,
        refund_method: str = "credit_first",
        line_items: list[tuple[str, int]] | None = None,
    ) -> str:
        """A refund someone made in Recurly's admin; returns the credit invoice's ID."""
        with self._lock:
            body: Json = {"refund_method": refund_method}
            if line_items is not None:
                body |= {"type": "line_items", "line_items": [
                    {"id": line_id, "quantity": quantity} for line_id, quantity in line_items
                ]}  # fmt: skip
            else:
                body["type"] = "amount"
                if value is not None:
                    body["amount"] = Decimal(value)
            return self._refund(self.invoices[invoice_id], body, origin="recurly_admin").id

    def credit_balance(self, account_id: str, currency: str) -> Decimal:
        """Account credit the customer can spend on later invoices (credit, not money)."""
        with self._lock:
            return self.credit.get((account_id, currency), Decimal(0))

    def refunds_of(self, transaction_id: str) -> list[Transaction]:
        with self._lock:
            return [
                t
                for t in self.transactions.values()
                if t.type == "refund" and t.original_transaction_id == transaction_id
            ]

    # --- webhooks ------------------------------------------------------------------------

    def webhook_delivery(
        self,
        object_type: str,
        event_type: str,
        object_id: str,
        *,
        signing_secrets: Iterable[str] | None = None,
        sent_at: datetime | None = None,
        event_time: datetime | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A JSON notification as Recurly posts it, signed with each secret (rotation sends two).

        `recurly-signature: <ms timestamp>,<sig>[,<sig>...]`, each sig the hex HMAC-SHA256
        of `<timestamp>.<body>`. JSON notifications name the object; its details are read
        from the API.
        """
        with self._lock:
            payload: Json = {
                "id": object_id,
                "object_type": object_type,
                "site_id": self.site_id,
                "event_type": event_type,
                "event_time": timestamp(event_time or now()),
            }
            found = self._find_any(object_id)
            if found is not None and hasattr(found, "uuid"):
                payload["uuid"] = found.uuid
            owner = (
                found
                if isinstance(found, Account)
                else self.accounts.get(getattr(found, "account_id", ""))
            )
            if object_type in ("account", "subscription") and owner is not None:
                payload["account_code"] = owner.code
        body = json.dumps(payload).encode()
        moment = sent_at or datetime.now(UTC)
        stamp = str(int(moment.timestamp() * 1000))
        keys = list(signing_secrets) if signing_secrets is not None else [self.webhook_secret]
        signatures = [sign(key, stamp, body) for key in keys]
        headers = {
            "Content-Type": "application/json",
            "recurly-signature": ",".join([stamp, *signatures]),
        }
        return body, headers

    def _find_any(self, object_id: str) -> Any:
        for table in (self.transactions, self.invoices, self.subscriptions, self.accounts):
            if object_id in table:
                return table[object_id]
        return None

    # --- object builders -----------------------------------------------------------------

    def _new_invoice(
        self, account_id: str, kind: str, origin: str, currency: str, when: datetime
    ) -> Invoice:
        invoice = Invoice(
            id=new_id(),
            uuid=secrets.token_hex(16),
            number=str(self._next_number),
            account_id=account_id,
            type=kind,
            origin=origin,
            state="pending",
            currency=currency,
            created=when,
        )
        self._next_number += 1
        self.invoices[invoice.id] = invoice
        return invoice

    def _new_transaction(
        self,
        account_id: str,
        kind: str,
        currency: str,
        value: Decimal,
        status: str,
        when: datetime,
        *,
        invoice: Invoice | None = None,
        original: Transaction | None = None,
        origin: str = "api",
    ) -> Transaction:
        txn = Transaction(
            id=new_id(),
            uuid=secrets.token_hex(16),
            account_id=account_id,
            type=kind,
            currency=currency,
            amount=value,
            status=status,
            created=when,
            origin=origin,
            invoice_id=invoice.id if invoice else None,
            subscription_ids=list(invoice.subscription_ids) if invoice else [],
            original_transaction_id=original.id if original else None,
            status_message={
                "success": "Transaction approved.",
                "declined": "Your card was declined.",
                "processing": "Transaction is processing.",
            }.get(status),
            collected=when if status == "success" else None,
        )
        self.transactions[txn.id] = txn
        if invoice is not None:
            invoice.transaction_ids.append(txn.id)
        return txn

    def _total(self, invoice: Invoice) -> Decimal:
        sign = -1 if invoice.type == "credit" else 1
        return sign * sum((self.lines[i].subtotal for i in invoice.line_ids), Decimal(0))

    def _refundable(self, invoice: Invoice) -> Decimal:
        return self._total(invoice) - invoice.refunded

    def _payment_left(self, txn: Transaction) -> Decimal:
        back = sum((r.amount for r in self.refunds_of(txn.id) if r.status == "success"), Decimal(0))
        return txn.amount - back

    # --- refunds -------------------------------------------------------------------------

    def _refund(self, invoice: Invoice, body: Json, *, origin: str) -> Invoice:
        """Refund part of a charge invoice as Recurly does: a credit invoice, money or credit."""
        currency = invoice.currency
        if invoice.type != "charge":
            raise invalid("invoice", "must be a charge invoice to be refunded")
        if invoice.state in ("processing", "pending"):
            raise ApiError(
                422,
                "validation",
                f"Invoice {invoice.number} is {invoice.state}: its payment has not settled, "
                "so it cannot be refunded yet",
            )
        if invoice.state not in ("paid", "closed"):
            raise invalid("invoice", f"is {invoice.state} and cannot be refunded")
        method = body.get("refund_method", "credit_first")
        if not self.credit_invoices and (
            method != "credit_first" or "credit_customer_notes" in body
        ):
            raise ApiError(
                422,
                "missing_feature",
                "The Credit Invoices feature must be enabled to use refund_method "
                f"{method} or credit_customer_notes",
            )
        if method not in ("credit_first", "transaction_first", "all_credit", "all_transaction"):
            raise invalid("refund_method", "is not included in the list")
        kind = body.get("type")
        refundable = self._refundable(invoice)
        lines = [self.lines[i] for i in invoice.line_ids]
        if kind == "amount":
            if "line_items" in body:
                raise invalid("line_items", "cannot be given with type=amount")
            raw = body.get("amount")
            total = refundable if raw is None else _decimal(raw, "amount")
            if total <= 0:
                raise invalid("amount", "must be greater than 0")
            if total != quantize(total, currency):
                raise invalid("amount", f"must have at most {decimals(currency)} decimals")
            if total > refundable:
                raise invalid(
                    "amount",
                    f"cannot be greater than the refundable amount of {format(refundable, 'f')}",
                )
            shares = self._split(lines, total)
            credits = [(line, 1, share) for line, share in zip(lines, shares, strict=True) if share]
        elif kind == "line_items":
            if "amount" in body:
                raise invalid("amount", "cannot be given with type=line_items")
            wanted = body.get("line_items")
            if not isinstance(wanted, list) or not wanted:
                raise invalid("line_items", "can't be blank")
            credits = []
            for item in wanted:
                line = self.lines.get(str(item.get("id")))
                if line is None or line.invoice_id != invoice.id:
                    raise invalid(
                        "line_items", f"has no line item {item.get('id')} on this invoice"
                    )
                quantity = item.get("quantity")
                left = line.quantity - line.refunded_quantity
                if not isinstance(quantity, int) or not 0 < quantity <= left:
                    raise invalid("quantity", f"must be between 1 and {left}")
                credits.append((line, quantity, line.unit_amount * quantity))
            total = sum((value for _, _, value in credits), Decimal(0))
            if total > refundable:
                raise invalid("line_items", "refund more than the refundable amount")
        else:
            raise invalid("type", "is not included in the list")
        to_credit, payments = self._where_money_goes(invoice, total, method)
        when = now()
        credit = self._new_invoice(
            invoice.account_id,
            "credit",
            "open_amount_refund" if kind == "amount" else "line_item_refund",
            currency,
            when,
        )
        credit.previous_invoice_id = invoice.id
        credit.subscription_ids = list(invoice.subscription_ids)
        credit.customer_notes = body.get("credit_customer_notes")
        for line, quantity, value in credits:
            back = Line(
                id=new_id(),
                uuid=secrets.token_hex(16),
                invoice_id=credit.id,
                account_id=invoice.account_id,
                currency=currency,
                description=line.description,
                quantity=quantity,
                unit_amount=value / quantity,
                created=when,
                type="credit",
                origin="credit",
                subscription_id=line.subscription_id,
                plan=line.plan,
                previous_line_item_id=line.id,
                original_invoice_id=invoice.id,
            )
            self.lines[back.id] = back
            credit.line_ids.append(back.id)
            if kind == "line_items":
                line.refunded_quantity += quantity
            line.refunded_amount += value
        for paid_by, share in payments:
            self._new_transaction(
                invoice.account_id, "refund", currency, share, "success", when,
                invoice=credit, original=paid_by, origin=origin,
            )  # fmt: skip
        credit.credit_issued = to_credit
        credit.state = "open" if to_credit > 0 else "closed"
        credit.closed = None if to_credit > 0 else when
        if to_credit > 0:
            key = (invoice.account_id, currency)
            self.credit[key] = self.credit.get(key, Decimal(0)) + to_credit
        invoice.refunded += total
        invoice.credit_refunded += to_credit
        invoice.updated = when
        return credit

    def _split(self, lines: list[Line], total: Decimal) -> list[Decimal]:
        """An amount spread over the lines by what each has left, cents to the largest."""
        currency = lines[0].currency if lines else "USD"
        unit = Decimal(1).scaleb(-decimals(currency))
        left = [line.subtotal - line.refunded_amount for line in lines]
        whole = sum(left, Decimal(0))
        if whole <= 0:
            return [Decimal(0)] * len(lines)
        shares = [(total * part / whole).quantize(unit, rounding=ROUND_DOWN) for part in left]
        rest = total - sum(shares, Decimal(0))
        for index in sorted(range(len(lines)), key=lambda i: left[i] - shares[i], reverse=True):
            if rest <= 0:
                break
            if shares[index] + unit <= left[index]:
                shares[index] += unit
                rest -= unit
        return shares

    def _where_money_goes(
        self, invoice: Invoice, total: Decimal, method: str
    ) -> tuple[Decimal, list[tuple[Transaction, Decimal]]]:
        """(account credit, [(payment, money back)]) for a refund, by `refund_method`."""
        credit_left = invoice.credit_applied - invoice.credit_refunded
        own = [
            t
            for t in self.transactions.values()
            if t.invoice_id == invoice.id and t.type in _PAYMENT_TYPES and t.status == "success"
        ]
        own_left = sum((self._payment_left(t) for t in own), Decimal(0))
        if method == "all_credit":
            to_credit = total
        elif method == "credit_first":
            to_credit = min(total, max(credit_left, Decimal(0)))
        elif method == "transaction_first":
            to_credit = total - min(total, own_left)
        else:
            to_credit = Decimal(0)
        to_money = total - to_credit
        payments: list[tuple[Transaction, Decimal]] = []
        candidates = own
        if method == "all_transaction" and to_money > own_left:
            # Recurly reaches back to the account's earlier payments in this currency.
            earlier = sorted(
                (
                    t
                    for t in self.transactions.values()
                    if t.account_id == invoice.account_id
                    and t.currency == invoice.currency
                    and t.type in _PAYMENT_TYPES
                    and t.status == "success"
                    and t.invoice_id != invoice.id
                    and t.created <= invoice.created
                ),
                key=lambda t: t.created,
                reverse=True,
            )
            candidates = own + earlier
        for txn in candidates:
            if to_money <= 0:
                break
            share = min(to_money, self._payment_left(txn))
            if share > 0:
                payments.append((txn, share))
                to_money -= share
        if to_money > 0:
            raise invalid(
                "refund_method",
                f"{method} cannot refund {format(to_money, 'f')} {invoice.currency} to a "
                "payment: there is no payment left to refund",
            )
        return to_credit, payments

    # --- subscriptions -------------------------------------------------------------------

    def _cancel(self, sub: Subscription, timeframe: str) -> None:
        if sub.state == "canceled":
            raise invalid("subscription", "is already canceled")
        if sub.state != "active":
            raise ApiError(
                400, "bad_request", f"Subscription is {sub.state} and cannot be canceled"
            )
        when = now()
        sub.state = "canceled"
        sub.canceled = when
        sub.expires = sub.term_end if timeframe == "term_end" else sub.period_end
        sub.updated = when

    def _terminate(self, sub: Subscription, refund: str) -> None:
        if sub.state not in ("active", "canceled", "future", "paused"):
            raise ApiError(
                400, "bad_request", f"Subscription is {sub.state} and cannot be terminated"
            )
        when = now()
        last = next(
            (
                self.invoices[i]
                for i in reversed(sub.invoice_ids)
                if self.invoices[i].type == "charge" and self.invoices[i].state == "paid"
            ),
            None,
        )
        if refund != "none" and last is not None:
            refundable = self._refundable(last)
            value = refundable
            if refund == "partial":
                whole = (sub.period_end - sub.period_start).total_seconds()
                left = max((sub.period_end - when).total_seconds(), 0)
                value = quantize(self._total(last) * Decimal(left) / Decimal(whole), sub.currency)
                value = min(value, refundable)
            if value > 0:
                self._refund(
                    last,
                    {"type": "amount", "amount": value, "refund_method": "transaction_first"},
                    origin="api",
                )
        sub.state = "expired"
        sub.canceled = sub.canceled or when
        sub.expires = when
        sub.expiration_reason = "terminated" if refund == "none" else f"terminated, refund {refund}"
        sub.updated = when

    # --- JSON ------------------------------------------------------------------------------

    def _account_mini(self, account_id: str) -> Json:
        a = self.accounts[account_id]
        return _clean({
            "id": a.id, "object": "account", "code": a.code, "email": a.email,
            "first_name": a.first_name, "last_name": a.last_name, "company": a.company,
        })  # fmt: skip

    def account_json(self, account: Account) -> Json:
        subs = [s for s in self.subscriptions.values() if s.account_id == account.id]
        return _clean({
            **self._account_mini(account.id),
            "state": account.state,
            "hosted_login_token": account.hosted_login_token,
            "preferred_locale": account.locale,
            "address": account.address,
            "bill_to": "self",
            "has_live_subscription": any(s.state in ("active", "canceled") for s in subs),
            "has_active_subscription": any(s.state == "active" for s in subs),
            "has_canceled_subscription": any(s.state == "canceled" for s in subs),
            "has_past_due_invoice": any(
                i.state == "past_due" for i in self.invoices.values() if i.account_id == account.id
            ),
            "created_at": timestamp(account.created),
            "updated_at": timestamp(account.created),
        })  # fmt: skip

    def _invoice_mini(self, invoice_id: str | None) -> Json | None:
        if invoice_id is None:
            return None
        i = self.invoices[invoice_id]
        return {
            "id": i.id,
            "object": "invoice",
            "number": i.number,
            "type": i.type,
            "state": i.state,
        }

    def transaction_json(self, txn: Transaction) -> Json:
        refunded = txn.type in _PAYMENT_TYPES and self._payment_left(txn) <= 0
        return _clean({
            "id": txn.id, "object": "transaction", "uuid": txn.uuid,
            "original_transaction_id": txn.original_transaction_id,
            "account": self._account_mini(txn.account_id),
            "invoice": self._invoice_mini(txn.invoice_id),
            "subscription_ids": txn.subscription_ids,
            "type": txn.type, "origin": txn.origin, "currency": txn.currency, "amount": txn.amount,
            "status": txn.status, "success": txn.status == "success",
            "refunded": refunded, "collection_method": "automatic", "payment_method": _CARD,
            "status_message": txn.status_message,
            "created_at": timestamp(txn.created), "updated_at": timestamp(txn.created),
            "collected_at": timestamp(txn.collected), "voided_at": timestamp(txn.voided),
        })  # fmt: skip

    def line_json(self, line: Line) -> Json:
        invoice = self.invoices[line.invoice_id]
        sign = -1 if line.type == "credit" else 1
        subtotal = sign * line.subtotal
        return _clean({
            "id": line.id, "object": "line_item", "uuid": line.uuid, "type": line.type,
            "state": "invoiced", "legacy_category": None,
            "account": self._account_mini(line.account_id),
            "subscription_id": line.subscription_id,
            "plan_id": line.plan.id if line.plan else None,
            "plan_code": line.plan.code if line.plan else None,
            "invoice_id": invoice.id, "invoice_number": invoice.number,
            "previous_line_item_id": line.previous_line_item_id,
            "original_line_item_invoice_id": line.original_invoice_id,
            "origin": line.origin, "currency": line.currency,
            "amount": subtotal, "description": line.description, "quantity": line.quantity,
            "unit_amount": sign * line.unit_amount, "subtotal": subtotal,
            "discount": Decimal(0).quantize(line.unit_amount), "tax": Decimal(0).quantize(line.unit_amount),
            "refund": line.type == "credit",
            "refunded_quantity": line.refunded_quantity if line.type == "charge" else line.quantity,
            "created_at": timestamp(line.created), "updated_at": timestamp(line.created),
        })  # fmt: skip

    def invoice_json(self, invoice: Invoice) -> Json:
        total = self._total(invoice)
        zero = Decimal(0).quantize(Decimal(1).scaleb(-decimals(invoice.currency)))
        payments = [self.transactions[t] for t in invoice.transaction_ids]
        if invoice.type == "charge":
            paid = sum((t.amount for t in payments if t.status == "success"), zero)
            balance = total - paid - invoice.credit_applied if invoice.state != "paid" else zero
            refundable = self._refundable(invoice) if invoice.state == "paid" else zero
        else:
            paid = zero
            balance = -invoice.credit_issued if invoice.state == "open" else zero
            refundable = None
        credit_payments = []
        if invoice.credit_applied:
            credit_payments.append({
                "id": f"cp{invoice.id[:10]}", "object": "credit_payment", "uuid": invoice.uuid[::-1],
                "action": "payment", "account": self._account_mini(invoice.account_id),
                "applied_to_invoice": self._invoice_mini(invoice.id), "currency": invoice.currency,
                "amount": invoice.credit_applied, "created_at": timestamp(invoice.created),
            })  # fmt: skip
        return _clean({
            "id": invoice.id, "object": "invoice", "uuid": invoice.uuid, "type": invoice.type,
            "origin": invoice.origin, "state": invoice.state,
            "account": self._account_mini(invoice.account_id),
            "subscription_ids": invoice.subscription_ids,
            "previous_invoice_id": invoice.previous_invoice_id, "number": invoice.number,
            "collection_method": invoice.collection_method, "net_terms": 0,
            "currency": invoice.currency,
            "discount": zero, "subtotal": total, "tax": zero, "total": total,
            "refundable_amount": refundable, "paid": paid, "balance": balance,
            "customer_notes": invoice.customer_notes,
            "line_items": [self.line_json(self.lines[i]) for i in invoice.line_ids],
            "has_more_line_items": False,
            "transactions": [self.transaction_json(t) for t in payments],
            "credit_payments": credit_payments,
            "created_at": timestamp(invoice.created),
            "updated_at": timestamp(invoice.updated or invoice.created),
            "due_at": timestamp(invoice.created), "closed_at": timestamp(invoice.closed),
        })  # fmt: skip

    def plan_json(self, plan: Plan) -> Json:
        return {
            "id": plan.id, "object": "plan", "code": plan.code, "state": "active",
            "name": plan.name, "interval_unit": plan.interval_unit,
            "interval_length": plan.interval_length, "auto_renew": True,
            "currencies": [
                {"currency": c, "setup_fee": Decimal(0).quantize(v), "unit_amount": v}
                for c, v in plan.prices.items()
            ],
            "created_at": timestamp(plan.created), "updated_at": timestamp(plan.created),
        }  # fmt: skip

    def subscription_json(self, sub: Subscription) -> Json:
        subtotal = sub.unit_amount * sub.quantity
        zero = Decimal(0).quantize(sub.unit_amount)
        redemptions = [
            self._redemption_mini(r)
            for r in self.redemptions.values()
            if r.subscription_id == sub.id and r.state == "active"
        ]
        return _clean({
            "id": sub.id, "object": "subscription", "uuid": sub.uuid,
            "account": self._account_mini(sub.account_id),
            "plan": {"id": sub.plan.id, "object": "plan", "code": sub.plan.code, "name": sub.plan.name},
            "state": sub.state, "coupon_redemptions": redemptions,
            "current_period_started_at": timestamp(sub.period_start),
            "current_period_ends_at": timestamp(sub.period_end),
            "current_term_started_at": timestamp(sub.created),
            "current_term_ends_at": timestamp(sub.term_end),
            "auto_renew": sub.state == "active", "currency": sub.currency,
            "unit_amount": sub.unit_amount, "quantity": sub.quantity, "add_ons": [],
            "add_ons_total": zero, "subtotal": subtotal, "tax": zero, "total": subtotal,
            "collection_method": "automatic", "expiration_reason": sub.expiration_reason,
            "created_at": timestamp(sub.created),
            "updated_at": timestamp(sub.updated or sub.created),
            "activated_at": timestamp(sub.created), "canceled_at": timestamp(sub.canceled),
            "expires_at": timestamp(sub.expires),
            "paused_at": timestamp(sub.paused_at) if sub.paused_at else None,
            "remaining_pause_cycles": sub.remaining_pause_cycles,
            "trial_started_at": timestamp(sub.trial_started),
            "trial_ends_at": timestamp(sub.trial_ends),
            "customer_notes": sub.customer_notes,
            "pending_change": self.change_json(sub.pending) if sub.pending else None,
        })  # fmt: skip

    def change_json(self, change: Change, collection: Json | None = None) -> Json:
        plan = change.plan
        return _clean({
            "id": change.id, "object": "subscription_change",
            "subscription_id": change.subscription_id,
            "plan": {"id": plan.id, "object": "plan", "code": plan.code, "name": plan.name},
            "unit_amount": change.unit_amount, "quantity": change.quantity, "add_ons": [],
            "activate_at": timestamp(change.activate_at), "activated": change.activated,
            "invoice_collection": collection,
            "created_at": timestamp(change.created), "updated_at": timestamp(change.created),
        })  # fmt: skip

    def coupon_json(self, coupon: Coupon) -> Json:
        return _clean({
            "id": coupon.id, "object": "coupon", "code": coupon.code, "name": coupon.name,
            "state": coupon.state, "duration": coupon.duration,
            "temporal_amount": coupon.temporal_amount, "temporal_unit": coupon.temporal_unit,
            "applies_to_all_plans": True, "applies_to_non_plan_charges": False,
            "redemption_resource": coupon.redemption_resource, "discount": coupon.discount,
            "coupon_type": "single_code",
            "created_at": timestamp(coupon.created), "updated_at": timestamp(coupon.created),
        })  # fmt: skip

    def _redemption_mini(self, redemption: Redemption) -> Json:
        c = redemption.coupon
        return {
            "id": redemption.id, "object": "coupon_redemption", "state": redemption.state,
            "coupon": {"id": c.id, "object": "coupon", "code": c.code, "name": c.name,
                       "state": c.state, "discount": c.discount, "coupon_type": "single_code"},
            "discounted": Decimal(0).quantize(Decimal(1).scaleb(-decimals(redemption.currency))),
            "created_at": timestamp(redemption.created),
        }  # fmt: skip

    def redemption_json(self, redemption: Redemption) -> Json:
        return _clean({
            "id": redemption.id, "object": "coupon_redemption",
            "account": self._account_mini(redemption.account_id),
            "subscription_id": redemption.subscription_id,
            "coupon": self.coupon_json(redemption.coupon), "state": redemption.state,
            "currency": redemption.currency,
            "discounted": Decimal(0).quantize(Decimal(1).scaleb(-decimals(redemption.currency))),
            "created_at": timestamp(redemption.created), "updated_at": timestamp(redemption.created),
        })  # fmt: skip

    # --- lookups by path ID ----------------------------------------------------------------

    def _account(self, ref: str) -> Account:
        if ref.startswith("code-"):
            code = ref.removeprefix("code-")
            found = next((a for a in self.accounts.values() if a.code == code), None)
        else:
            found = self.accounts.get(ref)
        if found is None:
            raise not_found("Account", ref)
        return found

    def _transaction(self, ref: str) -> Transaction:
        if ref.startswith("uuid-"):
            uuid = ref.removeprefix("uuid-")
            found = next((t for t in self.transactions.values() if t.uuid == uuid), None)
        else:
            found = self.transactions.get(ref)
        if found is None:
            raise not_found("Transaction", ref)
        return found

    def _invoice(self, ref: str) -> Invoice:
        if ref.startswith("number-"):
            number = ref.removeprefix("number-")
            found = next((i for i in self.invoices.values() if i.number == number), None)
        else:
            found = self.invoices.get(ref)
        if found is None:
            raise not_found("Invoice", ref)
        return found

    def _subscription(self, ref: str) -> Subscription:
        if ref.startswith("uuid-"):
            uuid = ref.removeprefix("uuid-")
            found = next((s for s in self.subscriptions.values() if s.uuid == uuid), None)
        else:
            found = self.subscriptions.get(ref)
        if found is None:
            raise not_found("Subscription", ref)
        return found

    def _coupon(self, ref: str) -> Coupon:
        if ref.startswith("code-"):
            code = ref.removeprefix("code-")
            found = next((c for c in self.coupons.values() if c.code == code), None)
        else:
            found = self.coupons.get(ref)
        if found is None:
            raise not_found("Coupon", ref)
        return found

    def _plan(self, ref: str) -> Plan:
        if ref.startswith("code-"):
            code = ref.removeprefix("code-")
            found = next((p for p in self.plans.values() if p.code == code), None)
        else:
            found = self.plans.get(ref)
        if found is None:
            raise not_found("Plan", ref)
        return found

    # --- handlers --------------------------------------------------------------------------

    def _list_accounts(self, request: Request, body: Json) -> tuple[int, Any]:
        accounts = list(self.accounts.values())
        email = request.query_params.get("email")
        if email is not None:
            # Exact address; compared without case, as e-mail domains and most sites are.
            accounts = [a for a in accounts if (a.email or "").lower() == email.lower()]
        return 200, _page(request, accounts, self.account_json)

    def _get_account(self, request: Request, body: Json) -> tuple[int, Any]:
        return 200, self.account_json(self._account(request.path_params["account_id"]))

    def _update_account(self, request: Request, body: Json) -> tuple[int, Any]:
        """`PUT /accounts/{id}`: the names given; an address replaces the whole address."""
        account = self._account(request.path_params["account_id"])
        for name in ("first_name", "last_name", "company"):
            if name in body:
                setattr(account, name, body[name] or None)
        if isinstance(body.get("address"), dict):
            account.address = {k: v for k, v in body["address"].items() if v}
        return 200, self.account_json(account)

    def _account_transactions(self, request: Request, body: Json) -> tuple[int, Any]:
        account = self._account(request.path_params["account_id"])
        found = [t for t in self.transactions.values() if t.account_id == account.id]
        return 200, _page(request, self._of_type(request, found), self.transaction_json)

    def _list_transactions(self, request: Request, body: Json) -> tuple[int, Any]:
        found = list(self.transactions.values())
        return 200, _page(request, self._of_type(request, found), self.transaction_json)

    def _of_type(self, request: Request, found: list[Transaction]) -> list[Transaction]:
        kind = request.query_params.get("type")
        if kind is not None:
            if kind not in ("authorization", "capture", "payment", "purchase", "refund", "verify"):
                raise invalid("type", "is not included in the list")
            types = _PAYMENT_TYPES if kind == "payment" else (kind,)
            found = [t for t in found if t.type in types]
        success = request.query_params.get("success")
        if success is not None:
            found = [t for t in found if (t.status == "success") == (success == "true")]
        return found

    def _account_invoices(self, request: Request, body: Json) -> tuple[int, Any]:
        account = self._account(request.path_params["account_id"])
        found = [i for i in self.invoices.values() if i.account_id == account.id]
        return 200, _page(request, self._invoices_of(request, found), self.invoice_json)

    def _list_invoices(self, request: Request, body: Json) -> tuple[int, Any]:
        found = list(self.invoices.values())
        return 200, _page(request, self._invoices_of(request, found), self.invoice_json)

    def _invoices_of(self, request: Request, found: list[Invoice]) -> list[Invoice]:
        kind = request.query_params.get("type")
        if kind is not None:
            if kind not in ("charge", "credit", "legacy", "non-legacy"):
                raise invalid("type", "is not included in the list")
            found = [i for i in found if kind in (i.type, "non-legacy")]
        state = request.query_params.get("state")
        if state is not None:
            found = [i for i in found if i.state == state]
        return found

    def _account_subscriptions(self, request: Request, body: Json) -> tuple[int, Any]:
        account = self._account(request.path_params["account_id"])
        found = [s for s in self.subscriptions.values() if s.account_id == account.id]
        return 200, _page(request, self._in_state(request, found), self.subscription_json)

    def _list_subscriptions(self, request: Request, body: Json) -> tuple[int, Any]:
        found = list(self.subscriptions.values())
        return 200, _page(request, self._in_state(request, found), self.subscription_json)

    def _in_state(self, request: Request, found: list[Subscription]) -> list[Subscription]:
        state = request.query_params.get("state")
        if state == "live":
            found = [s for s in found if s.state in ("active", "canceled", "future")]
        elif state is not None:
            found = [s for s in found if s.state == state]
        return found

    def _active_redemptions(self, request: Request, body: Json) -> tuple[int, Any]:
        account = self._account(request.path_params["account_id"])
        found = [
            r
            for r in self.redemptions.values()
            if r.account_id == account.id and r.state == "active"
        ]
        data = [self.redemption_json(r) for r in sorted(found, key=lambda r: r.created)]
        return 200, {"object": "list", "has_more": False, "next": None, "data": data}

    def _remove_redemption(self, request: Request, body: Json) -> tuple[int, Any]:
        """One active redemption ends: the account's own first, else the oldest."""
        account = self._account(request.path_params["account_id"])
        active = sorted(
            (r for r in self.redemptions.values() if r.account_id == account.id and r.state == "active"),
            key=lambda r: (r.subscription_id is not None, r.created),
        )  # fmt: skip
        if not active:
            raise not_found("CouponRedemption", "active")
        active[0].state = "inactive"
        return 200, self.redemption_json(active[0])

    def _redeem(self, request: Request, body: Json) -> tuple[int, Any]:
        account = self._account(request.path_params["account_id"])
        coupon_id = body.get("coupon_id")
        if not coupon_id:
            raise invalid("coupon_id", "can't be blank")
        coupon = self._coupon(str(coupon_id))
        if coupon.state != "redeemable":
            raise invalid("coupon", f"is {coupon.state} and can no longer be redeemed")
        currency = str(body.get("currency") or "USD")
        if coupon.discount["type"] == "fixed" and currency not in {
            c["currency"] for c in coupon.discount["currencies"]
        }:
            raise invalid("currency", f"is not a currency of coupon {coupon.code}")
        subscription_id = body.get("subscription_id")
        if subscription_id is not None:
            sub = self._subscription(str(subscription_id))
            if sub.account_id != account.id:
                raise invalid("subscription_id", "belongs to another account")
            subscription_id = sub.id
        elif coupon.redemption_resource == "subscription":
            raise invalid("subscription_id", "is required for a subscription coupon")
        if any(
            r.account_id == account.id and r.coupon.id == coupon.id and r.state == "active"
            and r.subscription_id == subscription_id
            for r in self.redemptions.values()
        ):  # fmt: skip
            raise invalid("coupon", "has already been redeemed")
        redemption = Redemption(
            id=new_id(),
            account_id=account.id,
            coupon=coupon,
            currency=currency,
            created=now(),
            subscription_id=subscription_id,
        )
        self.redemptions[redemption.id] = redemption
        return 200, self.redemption_json(redemption)

    def _get_transaction(self, request: Request, body: Json) -> tuple[int, Any]:
        return 200, self.transaction_json(self._transaction(request.path_params["transaction_id"]))

    def _get_invoice(self, request: Request, body: Json) -> tuple[int, Any]:
        return 200, self.invoice_json(self._invoice(request.path_params["invoice_id"]))

    def _related_invoices(self, request: Request, body: Json) -> tuple[int, Any]:
        invoice = self._invoice(request.path_params["invoice_id"])
        related = [
            i
            for i in self.invoices.values()
            if i.previous_invoice_id == invoice.id or i.id == invoice.previous_invoice_id
        ]
        return 200, _page(request, related, self.invoice_json)

    def _refund_invoice(self, request: Request, body: Json) -> tuple[int, Any]:
        invoice = self._invoice(request.path_params["invoice_id"])
        return 201, self.invoice_json(self._refund(invoice, body, origin="api"))

    def _get_subscription(self, request: Request, body: Json) -> tuple[int, Any]:
        return 200, self.subscription_json(
            self._subscription(request.path_params["subscription_id"])
        )

    def _cancel_subscription(self, request: Request, body: Json) -> tuple[int, Any]:
        sub = self._subscription(request.path_params["subscription_id"])
        timeframe = body.get("timeframe", "term_end")
        if timeframe not in ("term_end", "bill_date"):
            raise invalid("timeframe", "is not included in the list")
        self._cancel(sub, timeframe)
        return 200, self.subscription_json(sub)

    def _terminate_subscription(self, request: Request, body: Json) -> tuple[int, Any]:
        sub = self._subscription(request.path_params["subscription_id"])
        refund = request.query_params.get("refund", "none")
        if refund not in ("full", "partial", "none"):
            raise invalid("refund", "is not included in the list")
        self._terminate(sub, refund)
        return 200, self.subscription_json(sub)

    def _pause_subscription(self, request: Request, body: Json) -> tuple[int, Any]:
        """A pause starts at the next renewal and lasts `remaining_pause_cycles`; 0 cancels
        a pause that has not started."""
        sub = self._subscription(request.path_params["subscription_id"])
        cycles = body.get("remaining_pause_cycles")
        if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 0:
            raise invalid("remaining_pause_cycles", "must be a number greater than or equal to 0")
        if sub.state not in ("active", "paused"):
            raise ApiError(422, "invalid_transition", f"Subscription is {sub.state}")
        if cycles == 0:
            sub.paused_at, sub.remaining_pause_cycles = None, None
        else:
            sub.paused_at, sub.remaining_pause_cycles = sub.paused_at or sub.period_end, cycles
        sub.updated = now()
        return 200, self.subscription_json(sub)

    def _resume_subscription(self, request: Request, body: Json) -> tuple[int, Any]:
        sub = self._subscription(request.path_params["subscription_id"])
        if sub.state != "paused":
            raise ApiError(422, "invalid_transition", "Subscription is not paused")
        sub.state, sub.paused_at, sub.remaining_pause_cycles = "active", None, None
        sub.updated = now()
        return 200, self.subscription_json(sub)

    def _get_coupon(self, request: Request, body: Json) -> tuple[int, Any]:
        return 200, self.coupon_json(self._coupon(request.path_params["coupon_id"]))

    def _get_plan(self, request: Request, body: Json) -> tuple[int, Any]:
        return 200, self.plan_json(self._plan(request.path_params["plan_id"]))

    # --- purchases, new subscriptions, plan changes ----------------------------------------

    def _buyer(self, body: Json) -> Account:
        """The account a purchase names by `code`; a new code makes a new account, as at
        Recurly (with no billing info)."""
        given = body.get("account")
        if not isinstance(given, dict) or not given.get("code"):
            raise invalid("account", "code can't be blank")
        code = str(given["code"])
        found = next((a for a in self.accounts.values() if a.code == code), None)
        if found is not None:
            return found
        account = Account(
            id=new_id(), code=code, email=str(given.get("email") or ""),
            first_name=given.get("first_name"), last_name=given.get("last_name"),
            company=given.get("company"), created=now(), card=None,
        )  # fmt: skip
        self.accounts[account.id] = account
        return account

    def _add_line(
        self, invoice: Invoice, description: str, unit: Decimal, quantity: int,
        sub: Subscription | None = None,
    ) -> None:  # fmt: skip
        line = Line(
            id=new_id(), uuid=secrets.token_hex(16), invoice_id=invoice.id,
            account_id=invoice.account_id, currency=invoice.currency, description=description,
            quantity=quantity, unit_amount=unit, created=invoice.created,
            origin="plan" if sub else "one_time", subscription_id=sub.id if sub else None,
            plan=sub.plan if sub else None,
        )  # fmt: skip
        self.lines[line.id] = line
        invoice.line_ids.append(line.id)

    def _discard(self, invoice: Invoice) -> None:
        for line_id in invoice.line_ids:
            self.lines.pop(line_id, None)
        self.invoices.pop(invoice.id, None)

    def _collect(self, account: Account, invoice: Invoice) -> None:
        """Charge a new invoice to the saved card. A failed purchase leaves no invoice (and
        no subscription or change): only its declined transaction stays, as at Recurly."""
        total = self._total(invoice)
        if total > 0 and account.card is None:
            self._discard(invoice)
            raise invalid("billing_info", "can't be blank")
        if total > 0:
            outcome = account.card or "success"
            status = "success" if outcome == "success" else "declined"
            txn = self._new_transaction(
                account.id, "purchase", invoice.currency, total, status, invoice.created,
                invoice=invoice,
            )  # fmt: skip
            if status != "success":
                txn.invoice_id, txn.subscription_ids = None, []
                self._discard(invoice)
                raise declined(txn, outcome)
        invoice.state, invoice.closed = "paid", invoice.created

    def _purchase(self, request: Request, body: Json) -> tuple[int, Any]:
        """`POST /purchases` with one-time charge line items (subscriptions in a purchase are
        not emulated): collected from the card, or left pending with `manual`."""
        currency = str(body.get("currency") or "")
        if not currency:
            raise invalid("currency", "can't be blank")
        if body.get("subscriptions"):
            raise ApiError(400, "bad_request", "The emulator sells no subscriptions in a purchase")
        items = body.get("line_items")
        if not isinstance(items, list) or not items:
            raise invalid("line_items", "can't be blank")
        method = str(body.get("collection_method") or "automatic")
        if method not in ("automatic", "manual"):
            raise invalid("collection_method", "is not included in the list")
        lines: list[tuple[str, Decimal, int]] = []
        for item in items:
            if not isinstance(item, dict) or item.get("type", "charge") != "charge":
                raise invalid("line_items", "only charges are emulated")
            if str(item.get("currency") or currency) != currency:
                raise invalid("currency", "must be the purchase's currency")
            unit = _decimal(item.get("unit_amount"), "unit_amount")
            if unit <= 0 or unit != quantize(unit, currency):
                raise invalid(
                    "unit_amount", f"must be positive, with {decimals(currency)} decimals"
                )
            description = str(item.get("description") or "One-time charge")
            lines.append(
                (description, quantize(unit, currency), _quantity(item.get("quantity", 1)))
            )
        account = self._buyer(body)
        invoice = self._new_invoice(account.id, "charge", "purchase", currency, now())
        invoice.customer_notes = body.get("customer_notes")
        invoice.collection_method = method
        for description, unit, quantity in lines:
            self._add_line(invoice, description, unit, quantity)
        if method == "automatic":
            self._collect(account, invoice)
        collection = {"object": "invoice_collection", "credit_invoices": [],
                      "charge_invoice": self.invoice_json(invoice)}  # fmt: skip
        return 201, collection

    def _create_subscription(self, request: Request, body: Json) -> tuple[int, Any]:
        """`POST /subscriptions`: the first period charged now, or a free trial first."""
        plan = self._plan_named(body)
        currency = str(body.get("currency") or "")
        if currency not in plan.prices:
            raise invalid("currency", f"is not a currency of plan {plan.code}")
        quantity = _quantity(body.get("quantity", 1))
        coupons = []
        for code in body.get("coupon_codes") or []:
            found = next((c for c in self.coupons.values() if c.code == code), None)
            if found is None or found.state != "redeemable":
                raise invalid("coupon_codes", f"{code} is invalid")
            coupons.append(found)
        when = now()
        trial_ends = _time(body.get("trial_ends_at"), "trial_ends_at")
        if trial_ends is not None and trial_ends <= when:
            raise invalid("trial_ends_at", "must be in the future")
        account = self._buyer(body)
        end = trial_ends or _advance(when, plan)
        sub = Subscription(
            id=new_id(), uuid=secrets.token_hex(16), account_id=account.id, plan=plan,
            currency=currency, unit_amount=plan.prices[currency], quantity=quantity,
            state="active", created=when, period_start=when, period_end=end, term_end=end,
            trial_started=when if trial_ends else None, trial_ends=trial_ends,
            customer_notes=body.get("customer_notes"),
        )  # fmt: skip
        if trial_ends is None:
            invoice = self._new_invoice(account.id, "charge", "purchase", currency, when)
            invoice.customer_notes = sub.customer_notes
            invoice.subscription_ids.append(sub.id)
            self._add_line(invoice, plan.name, sub.unit_amount, quantity, sub)
            self._collect(account, invoice)
            sub.invoice_ids.append(invoice.id)
        self.subscriptions[sub.id] = sub
        for coupon in coupons:
            on_sub = coupon.redemption_resource == "subscription"
            redemption = Redemption(
                id=new_id(), account_id=account.id, coupon=coupon, currency=currency,
                created=when, subscription_id=sub.id if on_sub else None,
            )  # fmt: skip
            self.redemptions[redemption.id] = redemption
        return 201, self.subscription_json(sub)

    def _plan_named(self, body: Json) -> Plan:
        if body.get("plan_id"):
            return self._plan(str(body["plan_id"]))
        if not body.get("plan_code"):
            raise invalid("plan_code", "can't be blank")
        code = str(body["plan_code"])
        found = next((p for p in self.plans.values() if p.code == code), None)
        if found is None:
            raise invalid("plan_code", "is invalid")
        return found

    def _asked_change(self, sub: Subscription, body: Json) -> tuple[Change | None, str]:
        """The change a body asks for (None: the subscription as it is) and its timeframe."""
        if sub.state != "active":
            raise invalid("subscription", f"is {sub.state} and cannot be changed")
        timeframe = str(body.get("timeframe") or "now")
        if timeframe not in ("now", "bill_date", "renewal", "term_end"):
            raise invalid("timeframe", "is not included in the list")
        named = "plan_code" in body or "plan_id" in body
        plan = self._plan_named(body) if named else sub.plan
        if sub.currency not in plan.prices:
            raise invalid("plan_code", f"has no price in {sub.currency}")
        unit = plan.prices[sub.currency]
        if body.get("unit_amount") is not None:
            unit = quantize(_decimal(body["unit_amount"], "unit_amount"), sub.currency)
        quantity = _quantity(body.get("quantity", sub.quantity))
        if (plan.id, unit, quantity) == (sub.plan.id, sub.unit_amount, sub.quantity):
            return None, timeframe
        when = now()
        change = Change(
            id=new_id(), subscription_id=sub.id, plan=plan, unit_amount=unit,
            quantity=quantity, created=when,
            activate_at=when if timeframe == "now" else self._activation(sub, timeframe),
        )  # fmt: skip
        return change, timeframe

    def _prorated(self, sub: Subscription, unit: Decimal, quantity: int) -> Decimal:
        """What changing now costs (negative: credit): the new price for the days left in
        the period less the old one's, by whole days (today counted), none in a trial."""
        moment = now()
        if sub.trial_ends is not None and sub.trial_ends > moment:
            return Decimal(0)
        days = max(round((sub.period_end - sub.period_start).total_seconds() / 86400), 1)
        left = min(max(math.ceil((sub.period_end - moment).total_seconds() / 86400), 0), days)
        old = quantize(sub.unit_amount * sub.quantity * left / days, sub.currency)
        new = quantize(unit * quantity * left / days, sub.currency)
        return new - old

    def _preview_change(self, request: Request, body: Json) -> tuple[int, Any]:
        """What a change would do, saved nowhere: its invoice collection for `now`."""
        sub = self._subscription(request.path_params["subscription_id"])
        change, timeframe = self._asked_change(sub, body)
        if change is None:
            raise ApiError(422, "validation", "Subscription hasn't been changed")
        collection = None
        if timeframe == "now":
            net = self._prorated(sub, change.unit_amount, change.quantity)
            zero = quantize(Decimal(0), sub.currency)
            kind = "credit" if net < 0 else "charge"
            invoice = {
                "object": "invoice", "type": kind, "origin": "immediate_change",
                "state": "pending" if kind == "charge" else "open", "currency": sub.currency,
                "subtotal": net, "discount": zero, "tax": zero, "total": net,
                "balance": net, "paid": zero,
                "account": self._account_mini(sub.account_id), "subscription_ids": [sub.id],
            }  # fmt: skip
            collection = {
                "object": "invoice_collection",
                "charge_invoice": invoice if kind == "charge" else None,
                "credit_invoices": [invoice] if kind == "credit" else [],
            }
        return 200, self.change_json(change, _clean(collection) if collection else None)

    def _activation(self, sub: Subscription, timeframe: str) -> datetime:
        return sub.term_end if timeframe == "term_end" else sub.period_end

    def _create_change(self, request: Request, body: Json) -> tuple[int, Any]:
        """`now` changes the subscription and bills (or credits) the prorated difference at
        once; a later timeframe replaces any pending change. A change to the subscription as
        it is reverts a pending one (204), or is refused."""
        sub = self._subscription(request.path_params["subscription_id"])
        change, timeframe = self._asked_change(sub, body)
        if change is None:
            if sub.pending is None:
                raise ApiError(422, "validation", "Subscription hasn't been changed")
            sub.pending, sub.updated = None, now()
            return 204, None
        when, plan = change.created, change.plan
        if timeframe != "now":
            sub.pending, sub.updated = change, when
            return 201, self.change_json(change)
        net = self._prorated(sub, change.unit_amount, change.quantity)
        account = self.accounts[sub.account_id]
        collection: Json = {"object": "invoice_collection", "credit_invoices": []}
        if net != 0:
            kind = "charge" if net > 0 else "credit"
            invoice = self._new_invoice(account.id, kind, "immediate_change", sub.currency, when)
            invoice.subscription_ids.append(sub.id)
            self._add_line(invoice, f"Prorated change to {plan.name}", abs(net), 1, sub)
            if kind == "charge":
                self._collect(account, invoice)  # a decline refuses the change
                collection["charge_invoice"] = self.invoice_json(invoice)
            else:
                invoice.state, invoice.credit_issued = "open", abs(net)
                key = (account.id, sub.currency)
                self.credit[key] = self.credit.get(key, Decimal(0)) + abs(net)
                collection["credit_invoices"] = [self.invoice_json(invoice)]
            sub.invoice_ids.append(invoice.id)
        sub.plan, sub.unit_amount, sub.quantity = plan, change.unit_amount, change.quantity
        sub.pending, sub.updated = None, when
        change.activated = True
        return 201, self.change_json(change, collection)

    # --- plumbing --------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes: list[tuple[str, str, Handler]] = [
            ("/accounts", "GET", self._list_accounts),
            ("/transactions", "GET", self._list_transactions),
            ("/invoices", "GET", self._list_invoices),
            ("/subscriptions", "GET", self._list_subscriptions),
            ("/subscriptions", "POST", self._create_subscription),
            ("/subscriptions/{subscription_id}/change", "POST", self._create_change),
            ("/subscriptions/{subscription_id}/change/preview", "POST", self._preview_change),
            ("/purchases", "POST", self._purchase),
            ("/accounts/{account_id}", "GET", self._get_account),
            ("/accounts/{account_id}", "PUT", self._update_account),
            ("/accounts/{account_id}/transactions", "GET", self._account_transactions),
            ("/accounts/{account_id}/invoices", "GET", self._account_invoices),
            ("/accounts/{account_id}/subscriptions", "GET", self._account_subscriptions),
            ("/accounts/{account_id}/coupon_redemptions/active", "POST", self._redeem),
            ("/accounts/{account_id}/coupon_redemptions/active", "GET", self._active_redemptions),
            ("/accounts/{account_id}/coupon_redemptions/active", "DELETE", self._remove_redemption),
            ("/transactions/{transaction_id}", "GET", self._get_transaction),
            ("/invoices/{invoice_id}", "GET", self._get_invoice),
            ("/invoices/{invoice_id}/related_invoices", "GET", self._related_invoices),
            ("/invoices/{invoice_id}/refund", "POST", self._refund_invoice),
            ("/subscriptions/{subscription_id}", "GET", self._get_subscription),
            ("/subscriptions/{subscription_id}", "DELETE", self._terminate_subscription),
            ("/subscriptions/{subscription_id}/cancel", "PUT", self._cancel_subscription),
            ("/subscriptions/{subscription_id}/pause", "PUT", self._pause_subscription),
            ("/subscriptions/{subscription_id}/resume", "PUT", self._resume_subscription),
            ("/coupons/{coupon_id}", "GET", self._get_coupon),
            ("/plans/{plan_id}", "GET", self._get_plan),
        ]
        by_path: dict[str, dict[str, Handler]] = {}
        for path, method, handler in routes:
            by_path.setdefault(path, {})[method] = handler
        return Starlette(
            routes=[
                Route(path, self._endpoint(handlers), methods=list(handlers))
                for path, handlers in by_path.items()
            ]
        )

    def _endpoint(self, handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._exchange(
                request,
                lambda request, raw: self._answer(request, raw, handlers[request.method]),
                _failure,
                _response,
            )

        return endpoint

    def _answer(self, request: Request, raw: bytes, handler: Handler) -> tuple[int, Any]:
        try:
            self._check_headers(request)
            return handler(request, _json_body(raw))
        except ApiError as exc:  # refused: the answer stands, whatever failure is due
            raise Refused((exc.status, exc.body())) from None

    def _check_headers(self, request: Request) -> None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            user = base64.b64decode(value).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError, binascii.Error):
            user = ""
        if scheme.lower() != "basic" or not hmac.compare_digest(user, self.api_key):
            raise ApiError(
                401,
                "unauthorized",
                "Invalid API key. Please use a valid private API key for this site.",
            )
        accept = request.headers.get("accept", "")
        if not any(part.strip() in MEDIA_TYPES for part in accept.split(",")):
            raise ApiError(
                406,
                "unknown_api_version",
                f"Please send an Accept header naming a version, e.g. application/vnd.recurly.{API_VERSION}",
            )

    def banner(self) -> list[str]:
        return [
            f"api key {self.api_key}, webhook secret {self.webhook_secret}",
            f"Try: CHARGEDESK_RECURLY__API_KEY={self.api_key} "
            f"CHARGEDESK_RECURLY__BASE_URL={self.base_url} "
            f"CHARGEDESK_RECURLY__WEBHOOK_SECRET={self.webhook_secret} chargedesk shell",
        ]


def sign(secret: str, stamp: str, body: bytes) -> str:
    """One `recurly-signature` entry: hex HMAC-SHA256 of `<timestamp>.<body>`."""
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _advance(moment: datetime, plan: Plan) -> datetime:
    if plan.interval_unit == "days":
        return moment + timedelta(days=plan.interval_length)
    month = moment.month - 1 + plan.interval_length
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, 28)
    return moment.replace(year=year, month=month, day=day)


def _response(answer: tuple[int, Any]) -> Response:
    status, body = answer
    headers = {
        "X-Request-Id": secrets.token_hex(10),
        "Recurly-Version": f"recurly.{API_VERSION}",
        "X-RateLimit-Limit": "2000",
        "X-RateLimit-Remaining": "1999",
        "X-RateLimit-Reset": str(int(time.time()) + 300),
    }
    return Response(
        b"" if body is None else render(body),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8" if body is not None else None,
    )


def _failure(status: int) -> tuple[int, Json]:
    if status == 429:
        kind, words = "rate_limited", "You have made too many API requests in the last 5 minutes."
    elif status in (502, 503):
        kind, words = "service_not_available", "Service not available. Please try again later."
    else:
        kind, words = "internal_server_error", "An unexpected error has occurred."
    return status, ApiError(status, kind, words).body()


def _decimal(value: Any, param: str) -> Decimal:
    if isinstance(value, bool):
        raise invalid(param, "is not a number")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise invalid(param, "is not a number") from None


def _quantity(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid("quantity", "must be a whole number greater than 0")
    return value


def _time(value: Any, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(param, "is not a valid date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json_body(raw: bytes) -> Json:
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise ApiError(400, "bad_request", "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", "The request body must be a JSON object.")
    return payload


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("offset:"))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise invalid("cursor", "is invalid") from None


def _page(request: Request, records: list[Any], to_json: Callable[[Any], Json]) -> Json:
    """One page of a list, newest first unless `order=asc`, and the path of the next one."""
    query = request.query_params
    if "ids" in query:
        # Up to 200 IDs, all at once and in no order; no other list parameter goes with them.
        if set(query) - {"ids"}:
            raise invalid("ids", "cannot be used with other list parameters")
        wanted = set(query["ids"].split(","))
        chosen = [r for r in records if r.id in wanted]
        return {"object": "list", "has_more": False, "next": None,
                "data": [to_json(r) for r in chosen]}  # fmt: skip
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise invalid("limit", "is not a number") from None
    if not 1 <= limit <= 200:
        raise invalid("limit", "must be between 1 and 200")
    order = query.get("order", "desc")
    sort = query.get("sort", "created_at")
    if order not in ("asc", "desc") or sort not in ("created_at", "updated_at"):
        raise invalid("sort", "is not included in the list")

    def key(record: Any) -> tuple[datetime, str]:
        moment = getattr(record, "updated", None) if sort == "updated_at" else None
        return (moment or record.created, record.id)

    begin = _time(query.get("begin_time"), "begin_time")
    end = _time(query.get("end_time"), "end_time")
    if begin is not None or end is not None:  # both inclusive, on the sorted field
        records = [
            r for r in records
            if (begin is None or key(r)[0] >= begin) and (end is None or key(r)[0] <= end)
        ]  # fmt: skip
    ordered = sorted(records, key=key, reverse=order == "desc")
    offset = _offset(query.get("cursor"))
    chunk = ordered[offset : offset + limit]
    more = offset + limit < len(ordered)
    following = None
    if more:
        params = {k: v for k, v in query.items() if k not in ("cursor", "limit")}
        params |= {"cursor": _cursor(offset + limit), "limit": str(limit)}
        following = f"{request.url.path}?{urlencode(params)}"
    return {
        "object": "list",
        "has_more": more,
        "next": following,
        "data": [to_json(r) for r in chunk],
    }


def recurly_api(**options: Any) -> AbstractContextManager[RecurlyEmulator]:
    """Run an emulator on 127.0.0.1 with a free port, in a background thread."""
    return running(RecurlyEmulator(**options))


@cache
def description() -> OpenAPI:
    """Recurly's OpenAPI description, as copied into emulators/chargedesk_emulators/data/recurly."""
    return OpenAPI.from_dict(json.loads((SCHEMAS / "api.json").read_text()))


def schema_problems(exchanges: Iterable[Exchange], *, requests: bool = False) -> list[str]:
    """Every answer (and, with `requests`, every request) Recurly's description refuses."""
    api = description()
    problems: list[str] = []
    for exchange in exchanges:
        if exchange.status in (429, 500, 502, 503):
            continue  # injected failures
        problems += exchange_problems(api, exchange, _SERVER, request=requests)
    return problems


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Recurly site until interrupted; prints the settings that point the bot at it."""
    command(RecurlyEmulator(), argv)


if __name__ == "__main__":
    main()
