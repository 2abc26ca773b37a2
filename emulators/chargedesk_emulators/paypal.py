"""An HTTP-level PayPal emulator on 127.0.0.1:0, for the PayPal gateway's tests.

It follows PayPal's REST reference for the endpoints the gateway uses: OAuth
client credentials, Payments v2 (captures, authorizations, refunds), the one
Orders v2 read that ties them to a payer, Billing Subscriptions v1, Transaction
Search (at most 31 days per request), Invoicing v2 (search, read, send), Customer
Disputes v1 (list, read, accept-claim, provide-evidence as a multipart form) and
webhook signature verification. Errors carry PayPal's own `name` and
`details[].issue`; every answer carries a `Paypal-Debug-Id` header. What it
answers is checked against PayPal's OpenAPI descriptions (emulators/chargedesk_emulators/data/paypal)
by tests/emulators/test_paypal_emulator.py.

State is seeded through Python methods (`add_payer`, `add_capture`, ...), never
over HTTP, so the gateway cannot reach anything PayPal itself would not offer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from openapi_core import OpenAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.multipart import parse_form
from chargedesk_emulators.openapi_check import exchange_problems
from chargedesk_emulators.serve import command, running
from chargedesk_emulators.traffic import EmulatedAPI, Exchange, Refused

# PayPal takes these in whole units, whatever ISO 4217 says (HUF and TWD have 2 there).
ZERO_DECIMAL = frozenset({"HUF", "JPY", "TWD"})
MAX_SEARCH_RANGE = timedelta(days=31)
AUTH_ALGO = "SHA256withRSA"
SCHEMAS = Path(__file__).resolve().parent / "data" / "paypal"
_DESCRIPTIONS = {
    "/v2/payments/": "payments_payment_v2",
    "/v2/checkout/": "checkout_orders_v2",
    "/v1/billing/": "billing_subscriptions_v1",
    "/v1/reporting/": "reporting_transactions_v1",
    "/v2/invoicing/": "invoicing_v2",
    "/v1/notifications/": "notifications_webhooks_v1",
    "/v1/customer/": "customer_disputes_v1",
}
_SERVER = "https://api-m.sandbox.paypal.com"
# A dispute's status, as the `dispute_state` filter of the list groups them.
_DISPUTE_STATES = {
    "OPEN": "REQUIRED_ACTION",
    "WAITING_FOR_SELLER_RESPONSE": "REQUIRED_ACTION",
    "WAITING_FOR_BUYER_RESPONSE": "REQUIRED_OTHER_PARTY_ACTION",
    "UNDER_REVIEW": "UNDER_PAYPAL_REVIEW",
    "RESOLVED": "RESOLVED",
    "OTHER": "UNDER_PAYPAL_REVIEW",
}
_ID_ALPHABET = string.ascii_uppercase + string.digits
_PAYER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_NOT_FOUND_DESCRIPTION = (
    "Specified resource ID does not exist. Please check the resource ID and try again."
)

Json = dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as PayPal's date_time pattern wants."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


def new_id(length: int = 17) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_payer_id() -> str:
    return "".join(secrets.choice(_PAYER_ALPHABET) for _ in range(13))


def decimals(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def money(value: Decimal, currency: str) -> Json:
    return {"currency_code": currency, "value": f"{value:.{decimals(currency)}f}"}


class ApiError(Exception):
    """An error answer in PayPal's shape: name, message, details[].issue, debug_id."""

    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        details: list[Json] | None = None,
    ) -> None:
        super().__init__(f"{status} {name}")
        self.status = status
        self.name = name
        self.message = message
        self.details = details or []


def not_found() -> ApiError:
    return ApiError(
        404,
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        [{"issue": "INVALID_RESOURCE_ID", "description": _NOT_FOUND_DESCRIPTION}],
    )


def unprocessable(issue: str, description: str) -> ApiError:
    return ApiError(
        422,
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business validation.",
        [{"issue": issue, "description": description}],
    )


def invalid_request(field_name: str, value: str | None, issue: str, location: str) -> ApiError:
    detail: Json = {"field": field_name, "location": location, "issue": issue}
    if value is not None:
        detail["value"] = value
    return ApiError(
        400,
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
        [detail],
    )


def parse_amount(raw: Any, currency: str, field_name: str) -> Decimal:
    """A request's `{"currency_code","value"}` as PayPal validates it."""
    if not isinstance(raw, dict) or "value" not in raw or "currency_code" not in raw:
        raise invalid_request(field_name, None, "MISSING_REQUIRED_PARAMETER", "body")
    try:
        value = Decimal(str(raw["value"]))
    except InvalidOperation:
        raise invalid_request(
            f"{field_name}/value", str(raw["value"]), "INVALID_PARAMETER_SYNTAX", "body"
        ) from None
    if raw["currency_code"] != currency:
        raise unprocessable("CURRENCY_MISMATCH", "Currency code should be the same.")
    places = max(0, -int(value.as_tuple().exponent))
    if currency in ZERO_DECIMAL and places > 0:
        raise unprocessable(
            "DECIMALS_NOT_SUPPORTED",
            "Currency does not support decimals. Please refer to https://developer.paypal.com/docs/api/reference/currency-codes/ for more information.",
        )
    if places > 2:
        raise unprocessable(
            "DECIMAL_PRECISION",
            "If the currency supports decimals, only two decimal place precision is supported.",
        )
    if value <= 0:
        raise unprocessable(
            "CANNOT_BE_ZERO_OR_NEGATIVE",
            "Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported.",
        )
    return value


@dataclass
class Payer:
    id: str
    email: str
    given_name: str
    surname: str
    country: str = "US"

    def name(self) -> Json:
        return {
            "given_name": self.given_name,
            "surname": self.surname,
            "full_name": f"{self.given_name} {self.surname}",
        }


@dataclass
class Order:
    id: str
    intent: str
    payer_id: str | None  # None until a buyer approves an order the API created
    amount: Decimal
    currency: str
    created: datetime
    captures: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    status: str = "COMPLETED"
    description: str | None = None
    custom_id: str | None = None
    invoice_id: str | None = None
    # Created with `payment_source.paypal.experience_context`: the buyer's link is
    # `payer-action` (status PAYER_ACTION_REQUIRED); without it, `approve` (CREATED).
    payer_action: bool = False
    updated: datetime | None = None


@dataclass
class Capture:
    id: str
    amount: Decimal
    currency: str
    status: str
    created: datetime
    updated: datetime
    payer_id: str
    order_id: str | None = None
    authorization_id: str | None = None
    final_capture: bool = True
    status_reason: str | None = None
    refunds: list[str] = field(default_factory=list)


@dataclass
class Authorization:
    id: str
    amount: Decimal
    currency: str
    status: str
    created: datetime
    updated: datetime
    payer_id: str
    order_id: str
    captures: list[str] = field(default_factory=list)


@dataclass
class RefundRecord:
    id: str
    capture_id: str
    amount: Decimal
    currency: str
    created: datetime
    note_to_payer: str | None = None
    custom_id: str | None = None
    status: str = "COMPLETED"


@dataclass
class Plan:
    id: str
    name: str
    price: Decimal
    currency: str
    interval_unit: str = "MONTH"
    interval_count: int = 1


@dataclass
class SubscriptionRecord:
    id: str
    plan: Plan
    payer_id: str
    status: str
    started: datetime
    next_billing: datetime | None
    status_updated: datetime
    status_change_note: str | None = None
    cycles_completed: int = 1
    failed_payments: int = 0
    last_payment: tuple[Decimal, datetime] | None = None


@dataclass
class InvoiceRecord:
    id: str
    number: str
    status: str
    recipient_email: str
    given_name: str
    surname: str
    amount: Decimal
    currency: str
    created: datetime
    due: date
    paid: Decimal = Decimal(0)
    payment_ids: list[str] = field(default_factory=list)
    sends: int = 0
    first_sent: datetime | None = None


@dataclass
class DisputeRecord:
    """A chargeback or claim on one capture; what the seller answered is kept as sent."""

    id: str
    capture_id: str
    reason: str
    amount: Decimal
    currency: str
    created: datetime
    due: datetime
    status: str = "WAITING_FOR_SELLER_RESPONSE"
    stage: str = "CHARGEBACK"
    outcome: str | None = None
    updated: datetime | None = None
    accept_note: str | None = None
    evidences: list[Json] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # by the name the seller gave


@dataclass
class Row:
    """One line of Transaction Search: a T-code, a signed amount, a payer."""

    transaction_id: str
    event_code: str
    when: datetime
    amount: Decimal
    currency: str
    status: str
    payer_id: str
    reference_id: str | None = None
    reference_type: str | None = None
    balance_affecting: bool = True
    updated: datetime | None = None
    recorded: float = 0.0  # monotonic time the search got it: at `when`, for seeded history

    def __post_init__(self) -> None:
        self.recorded = time.monotonic() - max(0.0, (now() - self.when).total_seconds())


Handler = Callable[[Request, bytes], tuple[int, Json | None]]


class PayPalEmulator(EmulatedAPI):
    """PayPal's REST API, stateful, in memory. The switches leave OAuth token requests alone."""

    name = "PayPal"

    def __init__(
        self,
        *,
        client_id: str = "chargedesk-client",
        client_secret: str = "chargedesk-secret",
        webhook_id: str = "8PT597110X687430L",
        token_ttl: int = 32400,
        search_lag: timedelta = timedelta(0),
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.token_ttl = token_ttl
        # PayPal: "It takes a maximum of three hours for executed transactions to appear".
        self.search_lag = search_lag
        self.cert_url = (
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"
        )
        self.tokens_issued = 0
        self.orders_created = 0  # through the API
        self.payers: dict[str, Payer] = {}
        self.orders: dict[str, Order] = {}
        self.captures: dict[str, Capture] = {}
        self.authorizations: dict[str, Authorization] = {}
        self.refunds: dict[str, RefundRecord] = {}
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.invoices: dict[str, InvoiceRecord] = {}
        self.disputes: dict[str, DisputeRecord] = {}
        self.rows: list[Row] = []
        self._tokens: dict[str, float] = {}
        self._replays: dict[tuple[str, str], tuple[int, Json | None]] = {}
        self._order_keys: dict[str, str] = {}  # PayPal-Request-Id -> the order it created
        self._signing_key = secrets.token_bytes(32)

    # --- test switches -------------------------------------------------------------------

    def add_checkout_order(
        self, value: str, currency: str = "USD", *, custom_id: str | None = None
    ) -> str:
        """An order the merchant's own website created (CREATED, waiting for its buyer)."""
        with self._lock:
            order = self._new_order("CAPTURE", None, Decimal(value), currency, now())
            order.status, order.custom_id = "CREATED", custom_id
            return order.id

    def approve_order(self, order_id: str, payer_id: str) -> Json:
        """The buyer logs in on the order's approve page and approves it, as `payer_id`.

        Returns the order as the CHECKOUT.ORDER.APPROVED event carries it."""
        with self._lock:
            order = self.orders[order_id]
            if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
                raise ValueError(f"order {order_id} is {order.status}: nothing to approve")
            order.payer_id, order.status, order.updated = payer_id, "APPROVED", now()
            return self.order_json(order_id)

    def revoke_tokens(self) -> None:
        """Forget every issued access token, as if they had expired at PayPal."""
        with self._lock:
            self._tokens.clear()

    # --- seeding -------------------------------------------------------------------------

    def add_payer(self, email: str, given_name: str = "Jane", surname: str = "Doe") -> str:
        with self._lock:
            payer = Payer(id=new_payer_id(), email=email, given_name=given_name, surname=surname)
            self.payers[payer.id] = payer
            return payer.id

    def add_capture(
        self,
        payer_id: str,
        value: str,
        currency: str = "USD",
        *,
        days_ago: float = 0,
        status: str = "COMPLETED",
        with_order: bool = True,
    ) -> str:
        """A payment captured through an Orders checkout (or standalone), with its search row."""
        with self._lock:
            when = now() - timedelta(days=days_ago)
            amount = Decimal(value)
            order_id = None
            if with_order:
                order = self._new_order("CAPTURE", payer_id, amount, currency, when)
                order_id = order.id
            capture = self._new_capture(payer_id, amount, currency, when, order_id, None, status)
            if status == "PENDING":
                capture.status_reason = "ECHECK"
            return capture.id

    def add_authorization(
        self, payer_id: str, value: str, currency: str = "USD", *, days_ago: float = 0
    ) -> str:
        with self._lock:
            when = now() - timedelta(days=days_ago)
            amount = Decimal(value)
            order = self._new_order("AUTHORIZE", payer_id, amount, currency, when)
            auth = Authorization(
                id=new_id(),
                amount=amount,
                currency=currency,
                status="CREATED",
                created=when,
                updated=when,
                payer_id=payer_id,
                order_id=order.id,
            )
            self.authorizations[auth.id] = auth
            order.authorizations.append(auth.id)
            self.rows.append(
                Row(
                    transaction_id=auth.id,
                    event_code="T1300",
                    when=when,
                    amount=amount,
                    currency=currency,
                    status="P",
                    payer_id=payer_id,
                    reference_id=order.id,
                    reference_type="ODR",
                    balance_affecting=False,
                )
            )
            return auth.id

    def add_subscription(
        self,
        payer_id: str,
        value: str,
        currency: str = "USD",
        *,
        plan_name: str = "Pro monthly",
        days_ago: float = 0,
        status: str = "ACTIVE",
        interval_unit: str = "MONTH",
    ) -> str:
        """A subscription with its first payment (a capture without an order, row T0002/SUB)."""
        with self._lock:
            when = now() - timedelta(days=days_ago)
            price = Decimal(value)
            plan = Plan(id=f"P-{new_id(24)}", name=plan_name, price=price, currency=currency)
            plan.interval_unit = interval_unit
            sub = SubscriptionRecord(
                id=f"I-{new_id(12)}",
                plan=plan,
                payer_id=payer_id,
                status=status,
                started=when,
                next_billing=when + timedelta(days=30),
                status_updated=when,
                last_payment=(price, when),
            )
            while sub.next_billing is not None and sub.next_billing < now():
                sub.next_billing += timedelta(days=30)
                sub.cycles_completed += 1
            self.subscriptions[sub.id] = sub
            self._new_capture(payer_id, price, currency, when, None, None, "COMPLETED")
            # A subscription payment is a T0002 row that names its subscription.
            row = self.rows[-1]
            row.event_code, row.reference_id, row.reference_type = "T0002", sub.id, "SUB"
            return sub.id

    def add_invoice(
        self,
        recipient_email: str,
        value: str,
        currency: str = "USD",
        *,
        status: str = "SENT",
        given_name: str = "Jane",
        surname: str = "Doe",
        days_ago: float = 0,
        due_in_days: int = 30,
        number: str | None = None,
    ) -> str:
        with self._lock:
            created = now() - timedelta(days=days_ago)
            invoice = InvoiceRecord(
                id=f"INV2-{new_id(4)}-{new_id(4)}-{new_id(4)}-{new_id(4)}",
                number=number or f"{len(self.invoices) + 1:04d}",
                status=status,
                recipient_email=recipient_email,
                given_name=given_name,
                surname=surname,
                amount=Decimal(value),
                currency=currency,
                created=created,
                due=(created + timedelta(days=due_in_days)).date(),
            )
            if status != "DRAFT":
                invoice.first_sent = created
            if status == "PAID":
                invoice.paid = invoice.amount
                invoice.payment_ids.append(new_id())
            self.invoices[invoice.id] = invoice
            return invoice.id

    def refund_outside(self, capture_id: str, value: str, *, days_ago: float = 0) -> str:
        """A refund made in PayPal's dashboard, not through the API (`days_ago`: back then)."""
        with self._lock:
            capture = self.captures[capture_id]
            when = now() - timedelta(days=days_ago)
            return self._refund(capture, Decimal(value), None, None, when=when).id

    def add_dispute(
        self,
        capture_id: str,
        *,
        reason: str = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        value: str | None = None,
        status: str = "WAITING_FOR_SELLER_RESPONSE",
        due_in_days: float = 10,
        days_ago: float = 0,
        stage: str | None = None,
    ) -> str:
        """A chargeback on a capture (the whole of it unless `value`), waiting for the seller;
        one of status OPEN is an inquiry (stage INQUIRY) unless `stage` says otherwise."""
        with self._lock:
            capture = self.captures[capture_id]
            created = now() - timedelta(days=days_ago)
            dispute = DisputeRecord(
                id=f"PP-D-{secrets.randbelow(10**6):06d}",
                capture_id=capture_id,
                reason=reason,
                amount=Decimal(value) if value is not None else capture.amount,
                currency=capture.currency,
                created=created,
                due=(created + timedelta(days=due_in_days)).replace(microsecond=0),
                status=status,
                stage=stage or ("INQUIRY" if status == "OPEN" else "CHARGEBACK"),
            )
            self.disputes[dispute.id] = dispute
            return dispute.id

    def _new_order(
        self, intent: str, payer_id: str | None, amount: Decimal, currency: str, when: datetime
    ) -> Order:
        order = Order(
            id=new_id(),
            intent=intent,
            payer_id=payer_id,
            amount=amount,
            currency=currency,
            created=when,
        )
        self.orders[order.id] = order
        return order

    def _new_capture(
        self,
        payer_id: str,
        amount: Decimal,
        currency: str,
        when: datetime,
        order_id: str | None,
        authorization_id: str | None,
        status: str,
    ) -> Capture:
        capture = Capture(
            id=new_id(),
            amount=amount,
            currency=currency,
            status=status,
            created=when,
            updated=when,
            payer_id=payer_id,
            order_id=order_id,
            authorization_id=authorization_id,
        )
        self.captures[capture.id] = capture
        if order_id is not None:
            self.orders[order_id].captures.append(capture.id)
        row_status = {"COMPLETED": "S", "PENDING": "P", "DECLINED": "D", "FAILED": "D"}[status]
        self.rows.append(
            Row(
                transaction_id=capture.id,
                event_code="T0006",
                when=when,
                amount=amount,
                currency=currency,
                status=row_status,
                payer_id=payer_id,
                reference_id=order_id,
                reference_type="ODR" if order_id else None,
            )
        )
        return capture

    def _refund(
        self,
        capture: Capture,
        amount: Decimal,
        note: str | None,
        custom_id: str | None,
        *,
        when: datetime | None = None,
    ) -> RefundRecord:
        when = when or now()
        refund = RefundRecord(
            id=new_id(),
            capture_id=capture.id,
            amount=amount,
            currency=capture.currency,
            created=when,
            note_to_payer=note,
            custom_id=custom_id,
        )
        self.refunds[refund.id] = refund
        capture.refunds.append(refund.id)
        fully = self.refunded(capture) >= capture.amount
        capture.status = "REFUNDED" if fully else "PARTIALLY_REFUNDED"
        capture.updated = when
        self.rows.append(
            Row(
                transaction_id=refund.id,
                event_code="T1107",
                when=when,
                amount=-amount,
                currency=capture.currency,
                status="S",
                payer_id=capture.payer_id,
                reference_id=capture.id,
                reference_type="TXN",
            )
        )
        if fully:
            for row in self.rows:
                if row.transaction_id == capture.id:
                    row.status, row.updated = "V", when
        return refund

    def refunded(self, capture: Capture) -> Decimal:
        return sum((self.refunds[r].amount for r in capture.refunds), Decimal(0))

    # --- webhooks ------------------------------------------------------------------------

    def webhook_delivery(
        self,
        event_type: str,
        resource: Json,
        *,
        resource_type: str = "capture",
        transmission_time: datetime | None = None,
        created: datetime | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A delivery as PayPal would POST it to the webhook URL: raw body and headers."""
        sent = transmission_time or now()
        event = {
            "id": f"WH-{new_id()}-{new_id()}",
            "event_version": "1.0",
            "create_time": timestamp(created or sent),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": event_type.replace(".", " ").lower(),
            "resource": resource,
            "links": [
                {
                    "href": f"https://api-m.paypal.com/v1/notifications/webhooks-events/{new_id()}",
                    "rel": "self",
                    "method": "GET",
                }
            ],
        }
        body = json.dumps(event).encode()
        transmission_id = str(uuid.uuid4())
        sent_text = timestamp(sent)
        headers = {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": sent_text,
            "PAYPAL-TRANSMISSION-SIG": self._signature(transmission_id, sent_text, body),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": AUTH_ALGO,
        }
        return body, headers

    def _signature(self, transmission_id: str, sent: str, event: bytes) -> str:
        # PayPal signs "id|time|webhook_id|crc32(body)" with RSA; a keyed HMAC stands in.
        message = f"{transmission_id}|{sent}|{self.webhook_id}|{binascii.crc32(event)}"
        digest = hmac.new(self._signing_key, message.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    # --- JSON views, as PayPal shows them ------------------------------------------------

    def capture_json(self, capture_id: str, *, supplementary: bool = True) -> Json:
        c = self.captures[capture_id]
        up = (
            f"/v2/payments/authorizations/{c.authorization_id}"
            if c.authorization_id
            else f"/v2/checkout/orders/{c.order_id}"
            if c.order_id
            else None
        )
        links = [
            self._link(f"/v2/payments/captures/{c.id}", "self"),
            self._link(f"/v2/payments/captures/{c.id}/refund", "refund", "POST"),
        ]
        if up:
            links.append(self._link(up, "up"))
        body: Json = {
            "id": c.id,
            "status": c.status,
            "amount": money(c.amount, c.currency),
            "final_capture": c.final_capture,
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
            },
            "seller_receivable_breakdown": {"gross_amount": money(c.amount, c.currency)},
            "links": links,
            "create_time": timestamp(c.created),
            "update_time": timestamp(c.updated),
        }
        if c.status_reason:
            body["status_details"] = {"reason": c.status_reason}
        order = self.orders.get(c.order_id) if c.order_id else None
        for name in ("custom_id", "invoice_id"):  # a capture keeps its purchase unit's
            if order is not None and getattr(order, name):
                body[name] = getattr(order, name)
        related = {
            k: v
            for k, v in (("order_id", c.order_id), ("authorization_id", c.authorization_id))
            if v
        }
        if supplementary and related:
            body["supplementary_data"] = {"related_ids": related}
        return body

    def authorization_json(self, authorization_id: str, *, supplementary: bool = True) -> Json:
        a = self.authorizations[authorization_id]
        body: Json = {
            "id": a.id,
            "status": a.status,
            "amount": money(a.amount, a.currency),
            "seller_protection": {"status": "ELIGIBLE"},
            "expiration_time": timestamp(a.created + timedelta(days=29)),
            "links": [
                self._link(f"/v2/payments/authorizations/{a.id}", "self"),
                self._link(f"/v2/payments/authorizations/{a.id}/capture", "capture", "POST"),
                self._link(f"/v2/payments/authorizations/{a.id}/void", "void", "POST"),
                self._link(
                    f"/v2/payments/authorizations/{a.id}/reauthorize", "reauthorize", "POST"
                ),
                self._link(f"/v2/checkout/orders/{a.order_id}", "up"),
            ],
            "create_time": timestamp(a.created),
            "update_time": timestamp(a.updated),
        }
        if supplementary:
            body["supplementary_data"] = {"related_ids": {"order_id": a.order_id}}
        return body

    def refund_json(self, refund_id: str) -> Json:
        r = self.refunds[refund_id]
        capture = self.captures[r.capture_id]
        body: Json = {
            "id": r.id,
            "amount": money(r.amount, r.currency),
            "status": r.status,
            "seller_payable_breakdown": {
                "gross_amount": money(r.amount, r.currency),
                "net_amount": money(r.amount, r.currency),
                "total_refunded_amount": money(self.refunded(capture), r.currency),
            },
            "links": [
                self._link(f"/v2/payments/refunds/{r.id}", "self"),
                self._link(f"/v2/payments/captures/{r.capture_id}", "up"),
            ],
            "create_time": timestamp(r.created),
            "update_time": timestamp(r.created),
        }
        if r.note_to_payer:
            body["note_to_payer"] = r.note_to_payer
        if r.custom_id:
            body["custom_id"] = r.custom_id
        return body

    def order_json(self, order_id: str) -> Json:
        o = self.orders[order_id]
        captures = [self.capture_json(c, supplementary=False) for c in o.captures]
        refunds = [self.refund_json(r) for c in o.captures for r in self.captures[c].refunds]
        payments: Json = {}
        if o.authorizations:
            payments["authorizations"] = [
                self.authorization_json(a, supplementary=False) for a in o.authorizations
            ]
        if captures:
            payments["captures"] = captures
        if refunds:
            payments["refunds"] = refunds
        unit: Json = {"reference_id": "default", "amount": money(o.amount, o.currency)}
        for name in ("description", "custom_id", "invoice_id"):
            if getattr(o, name):
                unit[name] = getattr(o, name)
        if payments:
            unit["payments"] = payments
        body: Json = {
            "id": o.id,
            "intent": o.intent,
            "status": o.status,
            "purchase_units": [unit],
            "create_time": timestamp(o.created),
            "update_time": timestamp(o.updated or o.created),
            "links": self._order_links(o),
        }
        if o.payer_id is not None:  # known once a buyer approved it
            payer = self.payers[o.payer_id]
            body["payment_source"] = {
                "paypal": {
                    "email_address": payer.email,
                    "account_id": payer.id,
                    "account_status": "VERIFIED",
                    "name": {"given_name": payer.given_name, "surname": payer.surname},
                }
            }
            body["payer"] = {
                "email_address": payer.email,
                "payer_id": payer.id,
                "name": {"given_name": payer.given_name, "surname": payer.surname},
            }
        elif o.payer_action:
            body["payment_source"] = {"paypal": {}}
        return body

    def _order_links(self, o: Order) -> list[Json]:
        links = [self._link(f"/v2/checkout/orders/{o.id}", "self")]
        if o.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
            # The buyer's page is on www.paypal.com, not the API host.
            links.append({
                "href": f"https://www.sandbox.paypal.com/checkoutnow?token={o.id}",
                "rel": "payer-action" if o.payer_action else "approve", "method": "GET",
            })  # fmt: skip
        if o.status in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            links.append(self._link(f"/v2/checkout/orders/{o.id}", "update", "PATCH"))
        if o.status == "APPROVED":
            links.append(self._link(f"/v2/checkout/orders/{o.id}/capture", "capture", "POST"))
        return links

    def subscription_json(self, subscription_id: str, *, with_plan: bool = False) -> Json:
        s = self.subscriptions[subscription_id]
        payer = self.payers[s.payer_id]
        billing: Json = {
            "outstanding_balance": money(Decimal(0), s.plan.currency),
            "cycle_executions": [
                {
                    "tenure_type": "REGULAR",
                    "sequence": 1,
                    "cycles_completed": s.cycles_completed,
                    "cycles_remaining": 0,
                    "current_pricing_scheme_version": 1,
                    "total_cycles": 0,
                }
            ],
            "failed_payments_count": s.failed_payments,
        }
        if s.last_payment:
            paid, paid_at = s.last_payment
            billing["last_payment"] = {
                "amount": money(paid, s.plan.currency),
                "time": timestamp(paid_at),
            }
        if s.status == "ACTIVE" and s.next_billing:
            billing["next_billing_time"] = timestamp(s.next_billing)
        body: Json = {
            "id": s.id,
            "plan_id": s.plan.id,
            "status": s.status,
            "status_update_time": timestamp(s.status_updated),
            "start_time": timestamp(s.started),
            "quantity": "1",
            "subscriber": {
                "email_address": payer.email,
                "payer_id": payer.id,
                "name": {"given_name": payer.given_name, "surname": payer.surname},
            },
            "billing_info": billing,
            "create_time": timestamp(s.started),
            "update_time": timestamp(s.status_updated),
            "plan_overridden": False,
            "links": [
                self._link(f"/v1/billing/subscriptions/{s.id}", "self"),
                self._link(f"/v1/billing/subscriptions/{s.id}/cancel", "cancel", "POST"),
            ],
        }
        if s.status_change_note:
            body["status_change_note"] = s.status_change_note
        if with_plan:
            body["plan"] = {
                "name": s.plan.name,
                "status": "ACTIVE",
                "billing_cycles": [
                    {
                        "pricing_scheme": {
                            "version": 1,
                            "fixed_price": money(s.plan.price, s.plan.currency),
                        },
                        "frequency": {
                            "interval_unit": s.plan.interval_unit,
                            "interval_count": s.plan.interval_count,
                        },
                        "tenure_type": "REGULAR",
                        "sequence": 1,
                        "total_cycles": 0,
                    }
                ],
            }
        return body

    def invoice_json(self, invoice_id: str) -> Json:
        i = self.invoices[invoice_id]
        metadata: Json = {
            "create_time": timestamp(i.created),
            "recipient_view_url": f"https://www.sandbox.paypal.com/invoice/p/#{i.id.removeprefix('INV2-').replace('-', '')}",
            "invoicer_view_url": f"https://www.sandbox.paypal.com/invoice/details/{i.id}",
        }
        if i.first_sent:
            metadata["first_sent_time"] = timestamp(i.first_sent)
            metadata["last_sent_time"] = timestamp(i.first_sent)
        body: Json = {
            "id": i.id,
            "status": i.status,
            "detail": {
                "currency_code": i.currency,
                "invoice_number": i.number,
                "invoice_date": i.created.date().isoformat(),
                "payment_term": {"term_type": "NET_30", "due_date": i.due.isoformat()},
                "metadata": metadata,
            },
            "invoicer": {"email_address": "billing@merchant.example"},
            "primary_recipients": [
                {
                    "billing_info": {
                        "email_address": i.recipient_email,
                        "name": {"given_name": i.given_name, "surname": i.surname},
                    }
                }
            ],
            "amount": money(i.amount, i.currency),
            "due_amount": money(i.amount - i.paid, i.currency),
            "links": [
                self._link(f"/v2/invoicing/invoices/{i.id}", "self"),
                self._link(f"/v2/invoicing/invoices/{i.id}/send", "send", "POST"),
            ],
        }
        if i.paid:
            body["payments"] = {
                "paid_amount": money(i.paid, i.currency),
                "transactions": [
                    {
                        "type": "PAYPAL",
                        "payment_id": pid,
                        "payment_date": i.created.date().isoformat(),
                        "method": "PAYPAL",
                        "amount": money(i.paid, i.currency),
                    }
                    for pid in i.payment_ids
                ],
            }
        return body

    def _row_json(self, row: Row, fields: set[str]) -> Json:
        info: Json = {
            "paypal_account_id": row.payer_id,
            "transaction_id": row.transaction_id,
            "transaction_event_code": row.event_code,
            "transaction_initiation_date": timestamp(row.when),
            "transaction_updated_date": timestamp(row.updated or row.when),
            "transaction_amount": money(row.amount, row.currency),
            "transaction_status": row.status,
            "protection_eligibility": "01",
        }
        if row.reference_id and row.reference_type:
            info["paypal_reference_id"] = row.reference_id
            info["paypal_reference_id_type"] = row.reference_type
        detail: Json = {"transaction_info": info}
        if "all" in fields or "payer_info" in fields:
            payer = self.payers[row.payer_id]
            detail["payer_info"] = {
                "account_id": payer.id,
                "email_address": payer.email,
                "address_status": "Y",
                "payer_status": "Y",
                "payer_name": {
                    "given_name": payer.given_name,
                    "surname": payer.surname,
                    "alternate_full_name": f"{payer.given_name} {payer.surname}",
                },
                "country_code": payer.country,
            }
        return detail

    def dispute_json(self, dispute_id: str, *, summary: bool = False) -> Json:
        d = self.disputes[dispute_id]
        answer: Json = {
            "dispute_id": d.id,
            "create_time": timestamp(d.created),
            "update_time": timestamp(d.updated or d.created),
            "reason": d.reason,
            "status": d.status,
            "dispute_amount": money(d.amount, d.currency),
        }
        if summary:  # what the list answers by default
            return {**answer, "links": [self._link(f"/v1/customer/disputes/{d.id}", "self")]}
        capture = self.captures[d.capture_id]
        payer = self.payers.get(capture.payer_id)
        transaction: Json = {
            "seller_transaction_id": capture.id,
            "create_time": timestamp(capture.created),
            "transaction_status": capture.status,
            "gross_amount": money(capture.amount, capture.currency),
        }
        if payer is not None:
            transaction["buyer"] = {"name": f"{payer.given_name} {payer.surname}"}
        answer |= {
            "disputed_transactions": [transaction],
            "dispute_life_cycle_stage": d.stage,
            "dispute_channel": "EXTERNAL" if d.stage == "CHARGEBACK" else "INTERNAL",
            "links": [self._link(f"/v1/customer/disputes/{d.id}", "self")],
        }
        if d.status in ("WAITING_FOR_SELLER_RESPONSE", "OPEN"):
            answer["seller_response_due_date"] = timestamp(d.due)
        if d.outcome is not None:
            answer["dispute_outcome"] = {"outcome_code": d.outcome}
        if d.evidences:
            answer["evidences"] = d.evidences
        return answer

    def _link(self, path: str, rel: str, method: str = "GET") -> Json:
        return {
            "href": f"{self.base_url or 'https://api-m.sandbox.paypal.com'}{path}",
            "rel": rel,
            "method": method,
        }

    # --- endpoints -----------------------------------------------------------------------

    def _token(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = dict(pair.split("=", 1) for pair in body.decode().split("&") if "=" in pair)
        if request.headers.get("authorization") != f"Basic {expected}":
            return 401, {
                "error": "invalid_client",
                "error_description": "Client Authentication failed",
            }
        if form.get("grant_type") != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Grant Type is NULL",
            }
        token = f"A21AA{secrets.token_urlsafe(24)}"
        self._tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        return 200, {
            "scope": "https://uri.paypal.com/services/invoicing https://uri.paypal.com/services/subscriptions https://uri.paypal.com/services/reporting/search/read",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": self.token_ttl,
            "nonce": f"{timestamp(now())}{secrets.token_hex(8)}",
        }

    def _get_capture(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        capture_id = request.path_params["capture_id"]
        if capture_id not in self.captures:
            raise not_found()
        return 200, self.capture_json(capture_id)

    def _get_authorization(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        authorization_id = request.path_params["authorization_id"]
        if authorization_id not in self.authorizations:
            raise not_found()
        return 200, self.authorization_json(authorization_id)

    def _get_refund(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        refund_id = request.path_params["refund_id"]
        if refund_id not in self.refunds:
            raise not_found()
        return 200, self.refund_json(refund_id)

    def _get_order(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        order_id = request.path_params["id"]
        if order_id not in self.orders:
            raise not_found()
        return 200, self.order_json(order_id)

    def _create_order(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """`POST /v2/checkout/orders`: one purchase unit, intent CAPTURE or AUTHORIZE."""
        key = request.headers.get("paypal-request-id")
        if key and key in self._order_keys:
            # PayPal: an idempotent repeat answers 200 with the order as it is now.
            return 200, self._prefer_order(request, self._order_keys[key])
        payload = _json_body(body)
        intent = payload.get("intent")
        if intent not in ("CAPTURE", "AUTHORIZE"):
            raise invalid_request("/intent", None if intent is None else str(intent), "MISSING_REQUIRED_PARAMETER" if intent is
                                  None else "INVALID_PARAMETER_VALUE", "body")  # fmt: skip
        units = payload.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            # Several purchase units are valid at PayPal; this emulator serves one.
            raise invalid_request("/purchase_units", None, "MISSING_REQUIRED_PARAMETER", "body")
        unit = units[0]
        raw = unit.get("amount")
        if not isinstance(raw, dict) or not raw.get("currency_code"):
            raise invalid_request(
                "/purchase_units/@reference_id=='default'/amount", None,
                "MISSING_REQUIRED_PARAMETER", "body",
            )  # fmt: skip
        currency = str(raw["currency_code"])
        amount = parse_amount(raw, currency, "/purchase_units/@reference_id=='default'/amount")
        for name in ("description", "custom_id", "invoice_id"):
            value = unit.get(name)
            if value is not None and not 1 <= len(str(value)) <= 127:
                raise invalid_request(
                    f"/purchase_units/@reference_id=='default'/{name}", str(value),
                    "INVALID_STRING_LENGTH", "body",
                )  # fmt: skip
        wallet = (payload.get("payment_source") or {}).get("paypal")
        when = now()
        order = Order(
            id=new_id(), intent=str(intent), payer_id=None, amount=amount, currency=currency,
            created=when, status="PAYER_ACTION_REQUIRED" if wallet is not None else "CREATED",
            description=unit.get("description"), custom_id=unit.get("custom_id"),
            invoice_id=unit.get("invoice_id"), payer_action=wallet is not None,
        )  # fmt: skip
        self.orders[order.id] = order
        self.orders_created += 1
        if key:
            self._order_keys[key] = order.id
        return 201, self._prefer_order(request, order.id)

    def _prefer_order(self, request: Request, order_id: str) -> Json:
        full = self.order_json(order_id)
        if "return=representation" in request.headers.get("prefer", ""):
            return full
        return {k: full[k] for k in ("id", "status", "links")}

    def _patch_order(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """`PATCH /v2/checkout/orders/{id}`: the purchase unit's text fields, before capture."""
        order = self.orders.get(request.path_params["id"])
        if order is None:
            raise not_found()
        try:
            operations = json.loads(body)
        except ValueError:
            raise invalid_request("/", None, "MALFORMED_REQUEST_JSON", "body") from None
        if not isinstance(operations, list):
            raise invalid_request("/", None, "INVALID_PARAMETER_SYNTAX", "body")
        if order.status == "COMPLETED":
            raise unprocessable("ORDER_ALREADY_COMPLETED", "The order cannot be patched after "
                                "it is completed.")  # fmt: skip
        prefix = "/purchase_units/@reference_id=='default'/"
        for op in operations:
            path = str(op.get("path") or "")
            name = path.removeprefix(prefix)
            if not path:
                raise unprocessable("PATCH_PATH_REQUIRED", "Please specify a 'path' for the "
                                    "field for which the operation needs to be performed.")  # fmt: skip
            if not path.startswith(prefix) or name not in ("description", "custom_id",
                                                           "invoice_id"):  # fmt: skip
                raise unprocessable("NOT_PATCHABLE", "Cannot be patched.")
            if op.get("op") in ("replace", "add"):
                if op.get("value") is None:
                    raise unprocessable("PATCH_VALUE_REQUIRED", "Please specify a 'value' to "
                                        "for the field that is being patched.")  # fmt: skip
                setattr(order, name, str(op["value"]))
            elif op.get("op") == "remove":
                setattr(order, name, None)
            else:
                raise unprocessable(
                    "UNSUPPORTED_PATCH_PARAMETER_VALUE",
                    "The value specified for this field is not currently supported.",
                )
        order.updated = now()
        return 204, None

    def _capture_order(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """`POST /v2/checkout/orders/{id}/capture`: only an APPROVED order, once."""
        order = self.orders.get(request.path_params["id"])
        if order is None:
            raise not_found()
        _json_body(body)  # an empty body, or a payment_source this emulator ignores
        if order.status == "COMPLETED":
            raise unprocessable(
                "ORDER_ALREADY_CAPTURED",
                "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
            )
        if order.status != "APPROVED" or order.payer_id is None:
            raise unprocessable(
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment. Please redirect the payer "
                "to the 'rel':'approve' url returned as part of the HATEOAS links within the "
                "Create Order call or provide a valid `payment_source` in the request.",
            )
        if order.intent != "CAPTURE":
            # An AUTHORIZE order is authorized, not captured; PayPal lists no issue for this.
            raise ApiError(
                422,
                "UNPROCESSABLE_ENTITY",
                "The requested action could not be performed, semantically incorrect, or failed business validation.",
            )
        if order.invoice_id and any(
            o.invoice_id == order.invoice_id and o.status == "COMPLETED" and o.id != order.id
            for o in self.orders.values()
        ):
            # The merchant's default: an invoice ID is paid once across its orders.
            raise unprocessable(
                "DUPLICATE_INVOICE_ID",
                "Duplicate Invoice ID detected. To "
                "avoid a potential duplicate transaction your account setting "
                "requires that Invoice Id be unique for each transaction.",
            )
        when = now()
        self._new_capture(
            order.payer_id, order.amount, order.currency, when, order.id, None, "COMPLETED"
        )
        order.status, order.updated = "COMPLETED", when
        return 201, self._prefer_order(request, order.id)

    def _refund_capture(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        capture = self.captures.get(request.path_params["capture_id"])
        if capture is None:
            raise not_found()
        payload = _json_body(body)
        if capture.status == "REFUNDED":
            raise unprocessable(
                "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded"
            )
        if capture.status == "PENDING":
            raise unprocessable(
                "PENDING_CAPTURE",
                "Cannot initiate a refund as the capture is pending. Capture is typically pending when the payer has funded the transaction using e-check/bank funded.",
            )
        if capture.status not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise unprocessable("REFUND_NOT_ALLOWED", "Capture cannot be refunded.")
        remaining = capture.amount - self.refunded(capture)
        if "amount" in payload:
            raw = payload["amount"]
            if isinstance(raw, dict) and raw.get("currency_code") not in (None, capture.currency):
                raise unprocessable(
                    "REFUND_CAPTURE_CURRENCY_MISMATCH",
                    "Refund must be in the same currency as the capture",
                )
            amount = parse_amount(raw, capture.currency, "/amount")
        else:
            amount = remaining
        if amount > remaining:
            raise unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has not yet been refunded.",
            )
        refund = self._refund(
            capture, amount, payload.get("note_to_payer"), payload.get("custom_id")
        )
        return 201, self._prefer(request, self.refund_json(refund.id))

    def _capture_authorization(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        auth = self.authorizations.get(request.path_params["authorization_id"])
        if auth is None:
            raise not_found()
        payload = _json_body(body)
        if auth.status == "VOIDED":
            raise unprocessable(
                "AUTHORIZATION_VOIDED",
                "A voided authorization cannot be captured or reauthorized. ",
            )
        if auth.status == "CAPTURED":
            raise unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has previously been captured."
            )
        if auth.status == "DENIED":
            raise unprocessable(
                "AUTHORIZATION_DENIED", "An denied authorization cannot be captured."
            )
        captured = sum((self.captures[c].amount for c in auth.captures), Decimal(0))
        if "amount" in payload:
            raw = payload["amount"]
            if isinstance(raw, dict) and raw.get("currency_code") not in (None, auth.currency):
                raise unprocessable(
                    "AUTH_CAPTURE_CURRENCY_MISMATCH",
                    "Currency of capture must be the same as currency of authorization.",
                )
            amount = parse_amount(raw, auth.currency, "/amount")
        else:
            amount = auth.amount - captured
        if captured + amount > auth.amount:
            raise unprocessable(
                "MAX_CAPTURE_AMOUNT_EXCEEDED",
                "Capture amount exceeds allowable limit. Please contact customer service or your account manager to request the change to your overage limit. The default overage limit is 115%, which allows the sum of all captures to be up to 115% of the order amount. The ability to over capture is subjected to regulatory approvals.",
            )
        final = bool(payload.get("final_capture", False))
        when = now()
        capture = self._new_capture(
            auth.payer_id, amount, auth.currency, when, auth.order_id, auth.id, "COMPLETED"
        )
        capture.final_capture = final
        auth.captures.append(capture.id)
        fully = final or captured + amount >= auth.amount
        auth.status = "CAPTURED" if fully else "PARTIALLY_CAPTURED"
        auth.updated = when
        return 201, self._prefer(request, self.capture_json(capture.id))

    def _void_authorization(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        auth = self.authorizations.get(request.path_params["authorization_id"])
        if auth is None:
            raise not_found()
        if auth.status == "VOIDED":
            raise unprocessable(
                "PREVIOUSLY_VOIDED",
                "Authorization has been previously voided and hence cannot be voided again.",
            )
        if auth.status in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise unprocessable(
                "PREVIOUSLY_CAPTURED",
                "Authorization has been previously captured and hence cannot be voided.",
            )
        auth.status = "VOIDED"
        auth.updated = now()
        for row in self.rows:
            if row.transaction_id == auth.id:
                row.status, row.updated = "V", auth.updated
        if "return=representation" in request.headers.get("prefer", ""):
            return 200, self.authorization_json(auth.id)
        return 204, None

    def _get_subscription(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        subscription_id = request.path_params["id"]
        if subscription_id not in self.subscriptions:
            raise not_found()
        fields = set(request.query_params.get("fields", "").split(","))
        return 200, self.subscription_json(subscription_id, with_plan="plan" in fields)

    def _cancel_subscription(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        sub = self.subscriptions.get(request.path_params["id"])
        if sub is None:
            raise not_found()
        payload = _json_body(body)
        reason = payload.get("reason")
        if not isinstance(reason, str) or not reason:
            # The description lists no issue for this (only INVALID_STRING_MAX_LENGTH).
            raise invalid_request("/reason", None, "MISSING_REQUIRED_PARAMETER", "body")
        if len(reason) > 128:
            error = invalid_request("/reason", reason, "INVALID_STRING_MAX_LENGTH", "body")
            error.details[0]["description"] = "The value of a field is too long."
            raise error
        if sub.status not in ("ACTIVE", "SUSPENDED", "APPROVED"):
            raise unprocessable(
                "SUBSCRIPTION_STATUS_INVALID",
                "Invalid subscription status for cancel action; subscription status should be active or suspended.",
            )
        sub.status = "CANCELLED"
        sub.status_change_note = reason
        sub.status_updated = now()
        sub.next_billing = None
        return 204, None

    def _suspend_subscription(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        return self._switch_subscription(request, body, "ACTIVE", "SUSPENDED", "suspend")

    def _activate_subscription(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        return self._switch_subscription(request, body, "SUSPENDED", "ACTIVE", "activate")

    def _switch_subscription(
        self, request: Request, body: bytes, expected: str, new: str, verb: str
    ) -> tuple[int, Json | None]:
        """Suspend (a reason required) or activate (a reason optional) a subscription."""
        sub = self.subscriptions.get(request.path_params["id"])
        if sub is None:
            raise not_found()
        reason = _json_body(body).get("reason") if body else None
        if verb == "suspend" and (not isinstance(reason, str) or not reason):
            raise invalid_request("/reason", None, "MISSING_REQUIRED_PARAMETER", "body")
        if isinstance(reason, str) and len(reason) > 128:
            raise invalid_request("/reason", reason, "INVALID_STRING_MAX_LENGTH", "body")
        if sub.status != expected:
            raise unprocessable(
                "SUBSCRIPTION_STATUS_INVALID",
                f"Invalid subscription status for {verb} action; subscription status should "
                f"be {expected.lower()}.",
            )
        sub.status = new
        sub.status_change_note = reason if isinstance(reason, str) else None
        sub.status_updated = now()
        return 204, None

    def _subscription_transactions(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """`GET /v1/billing/subscriptions/{id}/transactions`: its payments in a time range."""
        sub = self.subscriptions.get(request.path_params["id"])
        if sub is None:
            raise not_found()
        bounds: dict[str, datetime] = {}
        for name in ("start_time", "end_time"):
            raw = request.query_params.get(name)
            if raw is None:
                raise invalid_request(name, None, "MISSING_REQUIRED_PARAMETER", "query")
            try:
                bounds[name] = parse_time(raw)
            except ValueError:
                raise invalid_request(name, raw, "INVALID_PARAMETER_SYNTAX", "query") from None
        payer = self.payers[sub.payer_id]
        paid = [
            self.captures[r.transaction_id]
            for r in self.rows
            if r.reference_id == sub.id and r.event_code == "T0002"
            and bounds["start_time"] <= r.when <= bounds["end_time"]
        ]  # fmt: skip
        transactions = [{
            "id": c.id, "status": c.status,
            "amount_with_breakdown": {
                "gross_amount": money(c.amount, c.currency),
                "net_amount": money(c.amount, c.currency),
            },
            "payer_name": {"given_name": payer.given_name, "surname": payer.surname},
            "payer_email": payer.email, "time": timestamp(c.created),
        } for c in sorted(paid, key=lambda c: c.created, reverse=True)]  # fmt: skip
        return 200, {"transactions": transactions, "total_items": len(transactions),
                     "total_pages": 1, "links": [self._link(request.url.path, "self")]}  # fmt: skip

    def _search_transactions(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        query = request.query_params
        bounds: dict[str, datetime] = {}
        for name in ("start_date", "end_date"):
            raw = query.get(name)
            if raw is None:
                raise invalid_request(name, None, "MISSING_REQUIRED_PARAMETER", "query")
            try:
                bounds[name] = parse_time(raw)
            except ValueError:
                raise invalid_request(name, raw, "INVALID_PARAMETER_SYNTAX", "query") from None
        start, end = bounds["start_date"], bounds["end_date"]
        if end - start > MAX_SEARCH_RANGE:
            raise invalid_request(
                "end_date", query["end_date"], "Date range is greater than 31 days", "query"
            )
        if end < start:
            raise invalid_request(
                "end_date", query["end_date"], "End date should be greater than start date", "query"
            )
        page_size = _int_param(query, "page_size", 100, 1, 500)
        page = _int_param(query, "page", 1, 1, 2_147_483_647)
        balance_only = query.get("balance_affecting_records_only", "Y") != "N"
        wanted = query.get("transaction_id")
        fields = set(query.get("fields", "transaction_info").split(","))
        cutoff = time.monotonic() - self.search_lag.total_seconds()
        rows = sorted(
            (
                r
                for r in self.rows
                if start <= r.when <= end
                and r.recorded <= cutoff
                and (r.balance_affecting or not balance_only)
                and (wanted is None or r.transaction_id == wanted)
            ),
            key=lambda r: r.when,
        )
        chunk = rows[(page - 1) * page_size : page * page_size]
        answer: Json = {
            "account_number": "2PN9ZJ4SQ6X3S",
            "start_date": timestamp(start),
            "end_date": timestamp(end),
            "last_refreshed_datetime": timestamp(now()),
            "page": page,
            "total_items": len(rows),
            "total_pages": math.ceil(len(rows) / page_size),
            "links": [self._link(str(request.url.path) + "?" + str(request.url.query), "self")],
        }
        if chunk:
            # The description allows no empty list (minItems 1): PayPal leaves it out.
            answer["transaction_details"] = [self._row_json(r, fields) for r in chunk]
        return 200, answer

    def _search_invoices(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        payload = _json_body(body)
        email = payload.get("recipient_email")
        number = payload.get("invoice_number")  # the whole number, as the invoicer gave it
        created = payload.get("creation_date_range")
        bounds = None
        if created is not None:
            try:
                bounds = (parse_time(str(created["start"])), parse_time(str(created["end"])))
            except (KeyError, TypeError, ValueError):
                raise invalid_request("/creation_date_range", None, "INVALID_PARAMETER_SYNTAX",
                                      "body") from None  # fmt: skip
        page_size = _int_param(request.query_params, "page_size", 20, 1, 100)
        page = _int_param(request.query_params, "page", 1, 1, 1000)
        found = sorted(
            (
                i
                for i in self.invoices.values()
                if (email is None or i.recipient_email.lower() == str(email).lower())
                and (number is None or i.number == str(number))
                and (bounds is None or bounds[0] <= i.created <= bounds[1])
            ),
            key=lambda i: i.created,
            reverse=True,
        )
        answer: Json = {
            "items": [
                self.invoice_json(i.id) for i in found[(page - 1) * page_size : page * page_size]
            ],
            "links": [self._link("/v2/invoicing/search-invoices", "self", "POST")],
        }
        if request.query_params.get("total_required") == "true":
            answer["total_items"] = len(found)
            answer["total_pages"] = math.ceil(len(found) / page_size)
        return 200, answer

    def _get_invoice(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        invoice_id = request.path_params["invoice_id"]
        if invoice_id not in self.invoices:
            raise not_found()
        return 200, self.invoice_json(invoice_id)

    def _send_invoice(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        invoice = self.invoices.get(request.path_params["invoice_id"])
        if invoice is None:
            raise not_found()
        if invoice.status in ("PAID", "MARKED_AS_PAID", "CANCELLED", "REFUNDED"):
            # PayPal documents no issue name for this case; the generic 422 stands in.
            raise ApiError(
                422,
                "UNPROCESSABLE_ENTITY",
                "The requested action could not be performed, semantically incorrect, or failed business validation.",
            )
        invoice.sends += 1
        if invoice.status in ("DRAFT", "SCHEDULED"):
            invoice.status = "SENT"
            invoice.first_sent = now()
        return 200, self._link(f"/v2/invoicing/invoices/{invoice.id}", "self")

    def _verify_webhook(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        payload = _json_body(body)
        required = (
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
            "webhook_event",
        )
        missing = [name for name in required if not payload.get(name)]
        if missing:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Invalid request - see details",
                [{"field": name, "issue": "Required field is missing"} for name in missing],
            )
        # The signature covers the event's bytes exactly as delivered, not a re-serialization.
        event = raw_member(body, "webhook_event")
        genuine = (
            payload["webhook_id"] == self.webhook_id
            and payload["auth_algo"] == AUTH_ALGO
            and payload["cert_url"] == self.cert_url
            and event is not None
            and hmac.compare_digest(
                str(payload["transmission_sig"]),
                self._signature(
                    str(payload["transmission_id"]), str(payload["transmission_time"]), event
                ),
            )
        )
        return 200, {"verification_status": "SUCCESS" if genuine else "FAILURE"}

    def _list_disputes(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """Newest first, filtered by transaction or states; pages by `next_page_token`."""
        query = request.query_params
        page_size = _int_param(query, "page_size", 10, 1, 50)
        found = sorted(self.disputes.values(), key=lambda d: d.created, reverse=True)
        if query.get("disputed_transaction_id"):
            found = [d for d in found if d.capture_id == query["disputed_transaction_id"]]
        if query.get("dispute_state"):
            states = set(query["dispute_state"].split(","))
            found = [d for d in found if _DISPUTE_STATES[d.status] in states]
        if query.get("start_time"):  # created then or after: within the last 180 days
            start = parse_time(query["start_time"])
            if start < now() - timedelta(days=180):
                raise invalid_request("start_time", query["start_time"],
                                      "INVALID_PARAMETER_VALUE", "query")  # fmt: skip
            found = [d for d in found if d.created >= start]
        if query.get("update_time_after"):
            changed = parse_time(query["update_time_after"])
            found = [d for d in found if (d.updated or d.created) >= changed]
        start = int(query.get("next_page_token") or 0)
        answer: Json = {
            "items": [
                self.dispute_json(d.id, summary=True) for d in found[start : start + page_size]
            ],
            "links": [self._link("/v1/customer/disputes", "self")],
        }
        if start + page_size < len(found):
            # The next page's link keeps the filters asked, with its own token.
            kept = {k: v for k, v in query.items() if k not in ("page_size", "next_page_token")}
            following = urlencode({**kept, "page_size": page_size,
                                   "next_page_token": str(start + page_size)})  # fmt: skip
            answer["links"].append(self._link(f"/v1/customer/disputes?{following}", "next"))
        if not answer["items"]:
            del answer["items"]  # the description wants at least one item when present
        return 200, answer

    def _get_dispute(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        dispute_id = request.path_params["id"]
        if dispute_id not in self.disputes:
            raise not_found()
        return 200, self.dispute_json(dispute_id)

    def _answerable(self, request: Request, *statuses: str) -> DisputeRecord:
        dispute = self.disputes.get(request.path_params["id"])
        if dispute is None:
            raise not_found()
        if dispute.status not in statuses:
            # PayPal documents no issue name for this case; the generic 422 stands in.
            raise ApiError(
                422,
                "UNPROCESSABLE_ENTITY",
                "The requested action could not be performed, semantically incorrect, or failed business validation.",
            )
        return dispute

    def _accept_claim(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """A JSON body (`note`, as PayPal's reference shows it) or a form with `input`."""
        dispute = self._answerable(request, "WAITING_FOR_SELLER_RESPONSE", "OPEN")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            parts = {p.name: p for p in parse_form(content_type, body)}
            payload = _json_body(parts["input"].data) if "input" in parts else {}
        else:
            payload = _json_body(body)
        if not payload.get("note"):
            raise invalid_request("note", None, "MISSING_REQUIRED_PARAMETER", "body")
        dispute.accept_note = str(payload["note"])
        dispute.status, dispute.outcome, dispute.updated = (
            "RESOLVED",
            "RESOLVED_BUYER_FAVOUR",
            now(),
        )
        return 200, {"links": [self._link(f"/v1/customer/disputes/{dispute.id}", "self")]}

    def _provide_evidence(self, request: Request, body: bytes) -> tuple[int, Json | None]:
        """`input` (JSON: evidences) and the files its documents name, as one form."""
        # PayPal: "A merchant can provide evidence for disputes with the
        # WAITING_FOR_SELLER_RESPONSE status".
        dispute = self._answerable(request, "WAITING_FOR_SELLER_RESPONSE")
        try:
            parts = parse_form(request.headers.get("content-type", ""), body)
        except ValueError:
            raise invalid_request("/", None, "INVALID_REQUEST_BODY", "body") from None
        files = {p.filename: p.data for p in parts if p.filename}
        given = next((p for p in parts if p.name == "input" and not p.filename), None)
        evidences = (_json_body(given.data) if given else {}).get("evidences") or []
        named = [doc.get("name") for e in evidences for doc in e.get("documents") or []]
        if not evidences or any(n not in files for n in named) or set(files) - set(named):
            raise invalid_request("evidences", None, "INVALID_EVIDENCE_FILE", "body")
        stamp = timestamp(now())
        for evidence in evidences:
            kept = {
                k: evidence[k] for k in ("evidence_type", "notes", "documents") if k in evidence
            }
            dispute.evidences.append({**kept, "source": "SUBMITTED_BY_SELLER", "date": stamp})
        dispute.files.update(files)
        dispute.status, dispute.updated = "UNDER_REVIEW", now()
        return 200, {"links": [self._link(f"/v1/customer/disputes/{dispute.id}", "self")]}

    @staticmethod
    def _prefer(request: Request, full: Json) -> Json:
        if "return=representation" in request.headers.get("prefer", ""):
            return full
        return {k: full[k] for k in ("id", "status", "links") if k in full}

    # --- plumbing ------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            ("/v1/oauth2/token", "POST", self._token, False),
            ("/v2/payments/captures/{capture_id}", "GET", self._get_capture, True),
            ("/v2/payments/captures/{capture_id}/refund", "POST", self._refund_capture, True),
            ("/v2/payments/refunds/{refund_id}", "GET", self._get_refund, True),
            (
                "/v2/payments/authorizations/{authorization_id}",
                "GET",
                self._get_authorization,
                True,
            ),
            (
                "/v2/payments/authorizations/{authorization_id}/capture",
                "POST",
                self._capture_authorization,
                True,
            ),
            (
                "/v2/payments/authorizations/{authorization_id}/void",
                "POST",
                self._void_authorization,
                True,
            ),
            ("/v2/checkout/orders", "POST", self._create_order, True),
            ("/v2/checkout/orders/{id}", "GET", self._get_order, True),
            ("/v2/checkout/orders/{id}", "PATCH", self._patch_order, True),
            ("/v2/checkout/orders/{id}/capture", "POST", self._capture_order, True),
            ("/v1/billing/subscriptions/{id}", "GET", self._get_subscription, True),
            ("/v1/billing/subscriptions/{id}/cancel", "POST", self._cancel_subscription, True),
            (
                "/v1/billing/subscriptions/{id}/transactions",
                "GET",
                self._subscription_transactions,
                True,
            ),
            ("/v1/billing/subscriptions/{id}/suspend", "POST", self._suspend_subscription, True),
            ("/v1/billing/subscriptions/{id}/activate", "POST", self._activate_subscription, True),
            ("/v1/reporting/transactions", "GET", self._search_transactions, True),
            ("/v2/invoicing/search-invoices", "POST", self._search_invoices, True),
            ("/v2/invoicing/invoices/{invoice_id}", "GET", self._get_invoice, True),
            ("/v2/invoicing/invoices/{invoice_id}/send", "POST", self._send_invoice, True),
            ("/v1/notifications/verify-webhook-signature", "POST", self._verify_webhook, True),
            ("/v1/customer/disputes", "GET", self._list_disputes, True),
            ("/v1/customer/disputes/{id}", "GET", self._get_dispute, True),
            ("/v1/customer/disputes/{id}/accept-claim", "POST", self._accept_claim, True),
            ("/v1/customer/disputes/{id}/provide-evidence", "POST", self._provide_evidence, True),
        ]
        return Starlette(
            routes=[
                Route(path, self._endpoint(handler, api=api), methods=[method])
                for path, method, handler, api in routes
            ]
        )

    def _endpoint(self, handler: Handler, *, api: bool) -> Callable[[Request], Awaitable[Response]]:
        def work(request: Request, body: bytes) -> tuple[int, Json | None]:
            if api and not self._authorized(request):
                raise Refused(_authentication_failure())
            return self._handle(request, body, handler)

        async def endpoint(request: Request) -> Response:
            return await self._exchange(request, work, self._failure, _response, switched=api)

        return endpoint

    @staticmethod
    def _failure(status: int) -> tuple[int, Json | None]:
        if status == 429:
            return 429, {
                "name": "RATE_LIMIT_REACHED",
                "message": "Too many requests. Blocked due to rate limiting.",
            }
        if status == 503:
            return 503, {"name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable."}
        return status, {
            "name": "INTERNAL_SERVER_ERROR",
            "message": "An internal server error occurred.",
            "links": [_info_link("INTERNAL_SERVER_ERROR")],
        }

    def _handle(self, request: Request, body: bytes, handler: Handler) -> tuple[int, Json | None]:
        request_id = request.headers.get("paypal-request-id")
        replay_key = (
            (request.url.path, request_id)
            if request_id and request.method == "POST" and request.url.path != "/v2/checkout/orders"
            else None  # a repeated order creation answers the order as it is now (above)
        )
        if replay_key and replay_key in self._replays:
            return self._replays[replay_key]
        try:
            status, answer = handler(request, body)
        except ApiError as exc:
            error: Json = {"name": exc.name, "message": exc.message, "details": exc.details}
            issue = exc.details[0]["issue"] if exc.details else exc.name
            error["links"] = [_info_link(issue)]
            return exc.status, error
        if replay_key:
            self._replays[replay_key] = (status, answer)
        return status, answer

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return False
        expires = self._tokens.get(header.removeprefix("Bearer "))
        return expires is not None and expires > time.monotonic()

    def banner(self) -> list[str]:
        return [
            f"client id {self.client_id}, secret {self.client_secret}, webhook id {self.webhook_id}",
            f"Try: CHARGEDESK_PAYPAL__CLIENT_ID={self.client_id} "
            f"CHARGEDESK_PAYPAL__CLIENT_SECRET={self.client_secret} "
            f"CHARGEDESK_PAYPAL__BASE_URL={self.base_url} chargedesk shell",
        ]


def _response(answer: tuple[int, Json | None]) -> Response:
    """PayPal's answer, with the `Paypal-Debug-Id` it puts on every one (and in error bodies)."""
    status, body = answer
    debug_id = secrets.token_hex(7)[:13]
    if body is not None and status >= 400 and "name" in body:
        body = {**body, "debug_id": debug_id}
    return Response(
        b"" if body is None else json.dumps(body).encode(),
        status_code=status,
        headers={"Paypal-Debug-Id": debug_id},
        media_type="application/json" if body is not None else None,
    )


def _authentication_failure() -> tuple[int, Json]:
    return 401, {
        "name": "AUTHENTICATION_FAILURE",
        "message": "Authentication failed due to missing authorization header, or invalid authentication credentials.",
        "details": [],
        "links": [_info_link("AUTHENTICATION_FAILURE")],
    }


def _info_link(issue: str) -> Json:
    return {
        "href": f"https://developer.paypal.com/docs/api/payments/v2/#error-{issue}",
        "rel": "information_link",
        "method": "GET",
    }


def _json_body(body: bytes) -> Json:
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except ValueError:
        raise ApiError(
            400,
            "INVALID_REQUEST",
            "Request is not well-formed, syntactically incorrect, or violates schema.",
            [{"field": "/", "location": "body", "issue": "MALFORMED_REQUEST_JSON"}],
        ) from None
    if not isinstance(payload, dict):
        raise invalid_request("/", None, "INVALID_PARAMETER_SYNTAX", "body")
    return payload


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(name, raw, "INVALID_PARAMETER_SYNTAX", "query") from None
    if not low <= value <= high:
        raise invalid_request(name, raw, "INVALID_PARAMETER_VALUE", "query")
    return value


def raw_member(body: bytes, name: str) -> bytes | None:
    """The exact bytes of a top-level member's value in a JSON object, or None."""
    text = body.decode()
    decoder = json.JSONDecoder()
    index = text.index("{") + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text) or text[index] == "}":
            return None
        key, index = decoder.raw_decode(text, index)
        while text[index] in " \t\r\n:":
            index += 1
        start = index
        _, index = decoder.raw_decode(text, index)
        if key == name:
            return text[start:index].encode()


def paypal_api(**options: Any) -> AbstractContextManager[PayPalEmulator]:
    """Run an emulator on 127.0.0.1 with a free port, in a background thread."""
    return running(PayPalEmulator(**options))


@cache
def description(name: str) -> OpenAPI:
    """One of PayPal's OpenAPI descriptions, as copied into emulators/chargedesk_emulators/data/paypal."""
    return OpenAPI.from_dict(json.loads((SCHEMAS / f"{name}.json").read_text()))


def schema_problems(exchanges: Iterable[Exchange], *, requests: bool = False) -> list[str]:
    """Every answer (and, with `requests`, every request) that PayPal's descriptions refuse.

    The OAuth token endpoint is not in the descriptions, nor is 429 RATE_LIMIT_REACHED:
    those are left out.
    """
    problems: list[str] = []
    for exchange in exchanges:
        name = next((n for p, n in _DESCRIPTIONS.items() if exchange.path.startswith(p)), None)
        if name is None or exchange.status == 429:
            continue
        # PayPal marks the event's fields read-only, yet this call exists to send them back;
        # a form body (dispute evidence) cannot be checked as the JSON the check reads.
        check_request = (
            requests
            and exchange.path != "/v1/notifications/verify-webhook-signature"
            and not exchange.headers.get("content-type", "").startswith("multipart/")
        )
        problems += exchange_problems(description(name), exchange, _SERVER, request=check_request)
    return problems


def main(argv: list[str] | None = None) -> None:
    """Serve an empty PayPal until interrupted; prints the settings that point the bot at it."""
    command(PayPalEmulator(), argv)


if __name__ == "__main__":
    main()
