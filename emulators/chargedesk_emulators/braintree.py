"""An HTTP-level Braintree emulator on 127.0.0.1:0, for the Braintree gateway's tests.

It speaks Braintree's XML gateway API, the one Braintree's server SDKs use (API
version 6, HTTP Basic with the public and private key), for the calls the gateway
makes, under `/merchants/{merchant_id}`: customers (find; `advanced_search_ids`
then `advanced_search`), payment methods, transactions (find, search, refund,
void, submit for settlement, and the sandbox's settle), subscriptions (find,
update, cancel, discounts added and removed), disputes (find, search), merchant accounts,
plans and discounts.

Answers are XML as Braintree writes it: hyphenated tags, typed elements
(`integer`, `boolean`, `datetime`, `date`, `array`, `nil="true"`). Refusals are
Braintree's validation errors in its `api-error-response` document (HTTP 422):
91506 (refund before settlement), 91574 (refund while settling), 91512 (already
refunded), 91521 (refund amount too large), 91504 (cannot be voided), 91507
(cannot submit for settlement), 91522 (settlement amount too large), 81503/81531
(amount format), 81901/81905 (canceled subscription), 91909 (billing cycles).
A refund that names no order ID gets its sale's, as Braintree does.

State is seeded through Python methods (`add_customer`, `add_sale`, ...), never
over HTTP, as are what only Braintree or a person in its Control Panel does:
`settle` (also `PUT .../transactions/{id}/settle`, as the sandbox offers),
`refund_outside` (a Control Panel refund) and `delivery` (a signed webhook).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.multipart import parse_form
from chargedesk_emulators.serve import command, running
from chargedesk_emulators.traffic import EmulatedAPI

# ISO 4217 minor units of the currencies the emulator is asked for (Braintree follows ISO).
ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
PAGE_SIZE = 50
OLDEST_API_VERSION = 4
_LOWER_ALNUM = string.ascii_lowercase + string.digits

Json = dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_id(length: int = 8) -> str:
    return "".join(secrets.choice(_LOWER_ALNUM) for _ in range(length))


def decimals(currency: str) -> int:
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def amount_text(value: Decimal, currency: str) -> str:
    return f"{value:.{decimals(currency)}f}"


# --- XML, as Braintree writes and reads it ----------------------------------------------------


@dataclass(frozen=True)
class Array:
    """`<tag type="array">` holding one `<item_tag>` per item."""

    item_tag: str
    items: list[Any]


@dataclass(frozen=True)
class Many:
    """Several sibling elements with one tag, inside a collection."""

    items: list[Any]


@dataclass(frozen=True)
class Symbol:
    value: str


def _element(tag: str, value: Any) -> str:
    tag = tag.replace("_", "-")
    if value is None:
        return f'<{tag} nil="true"/>'
    if isinstance(value, Many):
        return "".join(_element(tag, item) for item in value.items)
    if isinstance(value, bool):
        return f'<{tag} type="boolean">{str(value).lower()}</{tag}>'
    if isinstance(value, int):
        return f'<{tag} type="integer">{value}</{tag}>'
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f'<{tag} type="datetime">{stamp}</{tag}>'
    if isinstance(value, date):
        return f'<{tag} type="date">{value.isoformat()}</{tag}>'
    if isinstance(value, Symbol):
        return f'<{tag} type="symbol">{escape(value.value)}</{tag}>'
    if isinstance(value, Array):
        inner = "".join(_element(value.item_tag, item) for item in value.items)
        return f'<{tag} type="array">{inner}</{tag}>'
    if isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def document(root: str, value: Any) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + _element(root, value)).encode()


def _node(element: ET.Element) -> Any:
    kind = element.get("type")
    if kind == "array":
        return [_node(child) for child in element]
    if element.get("nil") == "true":
        return None
    if len(element):
        return {_name(child.tag): _node(child) for child in element}
    text = element.text or ""
    if kind == "integer":
        return int(text)
    if kind == "boolean":
        return text in ("true", "1")
    return text


def _name(tag: str) -> str:
    return tag.replace("-", "_")


def read_xml(body: bytes) -> tuple[str, Any]:
    """A request's XML as (root tag, value), tags with underscores (the SDK sends either)."""
    if not body.strip():
        return "", {}
    root = ET.fromstring(body)
    return _name(root.tag), _node(root)


# --- errors ------------------------------------------------------------------------------------

MESSAGES = {
    "81501": "Amount cannot be negative.",
    "81503": "Amount is an invalid format.",
    "81531": "Amount must be greater than zero.",
    "81502": "Amount is required.",
    "91565": "Payment method token is invalid.",
    "91509": "Transaction type is invalid.",
    "81901": "Cannot edit a canceled subscription.",
    "81905": "Subscription has already been canceled.",
    "81906": "ID has already been taken.",
    "91903": "Payment method token is invalid.",
    "91904": "Plan ID is invalid.",
    "91504": "Transaction can only be voided if status is authorized, submitted_for_settlement, "
    "or - for PayPal - settlement_pending.",
    "91505": "Cannot refund credit",
    "91506": "Cannot refund transaction unless it is settled.",
    "91507": "Cannot submit for settlement unless status is authorized.",
    "91512": "Transaction has already been completely refunded.",
    "91521": "Refund amount is too large.",
    "91522": "Settlement amount is too large.",
    "91574": "Cannot refund a transaction with a status of settling. Try again after the "
    "transaction has settled.",
    "91575": "Cannot simulate transaction settlement.",
    "91908": "Number Of Billing Cycles must be blank if Never Expires is true.",
    "92013": "Inherited From ID is invalid.",
    "92016": "ID to remove is not present.",
    "91909": "Number Of Billing Cycles is too small.",
    "95701": "Evidence can only be attached to disputes that are in an Open state",
    "95703": "A document upload ID is required to attach a document to a dispute",
    "95704": "Disputes can only be accepted when they are in an Open state",
    "95705": "Disputes can only be finalized when they are in an Open state",
    "95708": "Content is required",
    "84901": "Kind is invalid.",
    "84906": "File is empty.",
}


class Invalid(Exception):
    """A Braintree validation error: answered 422 with an api-error-response."""

    def __init__(self, code: str, on: str, attribute: str = "base") -> None:
        super().__init__(code)
        self.code = code
        self.on = on
        self.attribute = attribute


class Missing(Exception):
    """No such object: answered 404, as Braintree does."""


# --- state -------------------------------------------------------------------------------------


@dataclass
class Event:
    status: str
    when: datetime
    amount: Decimal
    source: str = "api"
    user: str | None = "chargedesk_api"


@dataclass
class Card:
    token: str
    customer_id: str
    last_4: str
    card_type: str
    created: datetime
    subscriptions: list[str] = field(default_factory=list)


@dataclass
class CustomerRecord:
    id: str
    first_name: str
    last_name: str
    email: str
    created: datetime
    company: str | None = None
    address: dict[str, str] | None = None
    cards: list[str] = field(default_factory=list)


@dataclass
class TransactionRecord:
    id: str
    type: str  # sale or credit
    amount: Decimal
    currency: str
    merchant_account_id: str
    status: str
    created: datetime
    updated: datetime
    customer_id: str | None
    # The customer's details as they stood when the transaction was made.
    first_name: str | None
    last_name: str | None
    email: str | None
    token: str | None = None
    order_id: str | None = None
    refunded_transaction_id: str | None = None
    refund_ids: list[str] = field(default_factory=list)
    subscription_id: str | None = None
    plan_id: str | None = None
    history: list[Event] = field(default_factory=list)
    disputes: list[str] = field(default_factory=list)
    processor_response: tuple[str, str] = ("1000", "Approved")

    def move(self, status: str, source: str = "api") -> None:
        self.status = status
        self.updated = now()
        user = "chargedesk_api" if source == "api" else "control_panel_user"
        self.history.append(Event(status, self.updated, self.amount, source, user))


@dataclass
class SubscriptionRecord:
    id: str
    plan_id: str
    price: Decimal
    currency: str
    merchant_account_id: str
    token: str
    status: str
    created: datetime
    first_billing: date
    current_cycle: int
    billing_frequency: int
    trial: bool = False
    never_expires: bool = True
    cycles: int | None = None
    transactions: list[str] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)
    updated: datetime = field(default_factory=now)
    discounts: list[str] = field(default_factory=list)  # IDs of the account's discounts
    balance: Decimal = Decimal(0)  # negative: credit left by a prorated price cut

    def period(self) -> tuple[date, date]:
        """The current billing period: [start, end]; the next bill is the day after the end."""
        months = max(self.current_cycle - 1, 0) * self.billing_frequency
        start = _add_months(self.first_billing, months)
        return start, _add_months(start, self.billing_frequency) - timedelta(days=1)


@dataclass
class DisputeRecord:
    id: str
    transaction_id: str
    amount: Decimal
    currency: str
    reason: str
    status: str
    kind: str
    received: date
    reply_by: date
    created: datetime
    evidence: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DiscountRecord:
    """A discount set up in the Control Panel: an amount off each bill, for some cycles."""

    id: str
    name: str
    amount: Decimal
    cycles: int | None = None  # None: never expires
    created: datetime = field(default_factory=now)


@dataclass
class Plan:
    id: str
    name: str
    price: Decimal
    currency: str
    billing_frequency: int


Handler = Callable[[Request, Json], tuple[int, bytes]]


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


class BraintreeEmulator(EmulatedAPI):
    """Braintree's gateway API for one merchant, stateful, in memory.

    With `settling_refunds` the merchant account refunds settling transactions
    (some processors allow it); without, they are refused with 91574. Paths given to
    the switches and `requests_to` may stand anywhere in a request's path (all of them
    start with `/merchants/{merchant_id}`).
    """

    name = "Braintree"
    paths_anywhere = True

    def __init__(
        self,
        *,
        merchant_id: str = "chargedeskmerchant",
        public_key: str = "chargedesk_public_key",
        private_key: str = "chargedesk_private_key",
        settling_refunds: bool = False,
    ) -> None:
        super().__init__()
        self.merchant_id = merchant_id
        self.public_key = public_key
        self.private_key = private_key
        self.settling_refunds = settling_refunds
        self.customers: dict[str, CustomerRecord] = {}
        self.cards: dict[str, Card] = {}
        self.transactions: dict[str, TransactionRecord] = {}
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.disputes: dict[str, DisputeRecord] = {}
        self.document_uploads: dict[str, tuple[str, bytes]] = {}  # ID -> (file name, bytes)
        self.plans: dict[str, Plan] = {}
        self.discounts: dict[str, DiscountRecord] = {}
        self.merchant_accounts: dict[str, tuple[str, bool]] = {}  # id -> (currency, default)
        self.add_merchant_account("chargedesk_usd", "USD", default=True)

    # --- test switches -------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 500,
        *,
        after: bool = False,
        method: str | None = None,
        path_contains: str = "",
    ) -> None:
        """Answer the next `count` matching requests with `status`.

        With `after`, each is carried out first and only its answer is lost.
        """
        self._fail(count, status, after=after, method=method, path=path_contains)

    def slow_next(
        self,
        count: int,
        seconds: float,
        *,
        apply_first: bool = True,
        method: str | None = None,
        path_contains: str = "",
    ) -> None:
        """Hold the answer to the next `count` matching requests for `seconds`.

        With `apply_first` the request takes effect at once and only its answer is late
        (a client that gave up can read the effect back); without, it takes effect late.
        """
        self._hold(count, seconds, after=apply_first, method=method, path=path_contains)

    # --- seeding -------------------------------------------------------------------------

    def add_merchant_account(self, account_id: str, currency: str, *, default: bool = False) -> str:
        with self._lock:
            self.merchant_accounts[account_id] = (currency, default)
            return account_id

    def _account_for(self, currency: str) -> str:
        for account_id, (code, _) in self.merchant_accounts.items():
            if code == currency:
                return account_id
        return self.add_merchant_account(f"chargedesk_{currency.lower()}", currency)

    def add_plan(
        self, plan_id: str, name: str, price: str, currency: str = "USD", billing_frequency: int = 1
    ) -> str:
        with self._lock:
            self.plans[plan_id] = Plan(plan_id, name, Decimal(price), currency, billing_frequency)
            return plan_id

    def add_discount(
        self, discount_id: str, name: str, amount: str, cycles: int | None = None
    ) -> str:
        with self._lock:
            self.discounts[discount_id] = DiscountRecord(discount_id, name, Decimal(amount), cycles)
            return discount_id

    def add_customer(
        self,
        email: str,
        first_name: str = "Jane",
        last_name: str = "Doe",
        *,
        company: str | None = None,
        address: dict[str, str] | None = None,
        customer_id: str | None = None,
        days_ago: int = 400,
    ) -> str:
        """A stored customer with one credit card (their default payment method)."""
        with self._lock:
            cid = customer_id or "".join(secrets.choice(string.digits) for _ in range(9))
            created = now() - timedelta(days=days_ago)
            customer = CustomerRecord(cid, first_name, last_name, email, created, company, address)
            card = Card(new_id(7), cid, "1111", "Visa", created)
            self.cards[card.token] = card
            customer.cards.append(card.token)
            self.customers[cid] = customer
            return cid

    def add_sale(
        self,
        customer_id: str | None,
        amount: str,
        currency: str = "USD",
        *,
        status: str = "settled",
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        order_id: str | None = None,
        days_ago: float = 1,
        subscription_id: str | None = None,
    ) -> str:
        """A sale, with the status history Braintree would show for `status`.

        Without a customer ID it is a guest's payment, known by `email` alone.
        """
        with self._lock:
            when = now() - timedelta(days=days_ago)
            customer = self.customers.get(customer_id) if customer_id else None
            value = Decimal(amount)
            sale = TransactionRecord(
                id=new_id(),
                type="sale",
                amount=value,
                currency=currency,
                merchant_account_id=self._account_for(currency),
                status="authorized",
                created=when,
                updated=when,
                customer_id=customer.id if customer else None,
                first_name=customer.first_name if customer else first_name,
                last_name=customer.last_name if customer else last_name,
                email=customer.email if customer else email,
                token=customer.cards[0] if customer else None,
                order_id=order_id,
                subscription_id=subscription_id,
            )
            sale.history.append(Event("authorized", when, value))
            steps = {
                "authorized": [],
                "submitted_for_settlement": ["submitted_for_settlement"],
                "settling": ["submitted_for_settlement", "settling"],
                "settled": ["submitted_for_settlement", "settling", "settled"],
                "voided": ["voided"],
                "processor_declined": [],
            }[status]
            if status == "processor_declined":
                sale.status = "processor_declined"
                sale.processor_response = ("2001", "Insufficient Funds")
                sale.history = [Event("processor_declined", when, value)]
            for index, step in enumerate(steps):
                moment = when + timedelta(hours=index)
                sale.status, sale.updated = step, moment
                sale.history.append(Event(step, moment, value))
            self.transactions[sale.id] = sale
            return sale.id

    def add_subscription(
        self,
        customer_id: str,
        plan_id: str,
        *,
        price: str | None = None,
        cycle: int = 1,
        trial: bool = False,
        days_ago: int = 10,
    ) -> str:
        """An active subscription on the customer's card, in billing cycle `cycle`.

        Each billed cycle has its payment (settled); a trial (`cycle` 0) has none.
        """
        with self._lock:
            plan = self.plans[plan_id]
            customer = self.customers[customer_id]
            token = customer.cards[0]
            created = now() - timedelta(days=days_ago)
            sub = SubscriptionRecord(
                id=new_id(6),
                plan_id=plan_id,
                price=Decimal(price) if price is not None else plan.price,
                currency=plan.currency,
                merchant_account_id=self._account_for(plan.currency),
                token=token,
                status="Active",
                created=created,
                first_billing=(created if not trial else created + timedelta(days=14)).date(),
                current_cycle=0 if trial else cycle,
                billing_frequency=plan.billing_frequency,
                trial=trial,
            )
            sub.history.append(Event("Active", created, Decimal(0)))
            self.subscriptions[sub.id] = sub
            self.cards[token].subscriptions.append(sub.id)
            for billed in range(sub.current_cycle):
                start = _add_months(sub.first_billing, billed * plan.billing_frequency)
                age = (now().date() - start).days
                sale_id = self.add_sale(
                    customer_id,
                    amount_text(sub.price, sub.currency),
                    sub.currency,
                    days_ago=max(age, 0),
                    subscription_id=sub.id,
                )
                self.transactions[sale_id].plan_id = plan_id
                sub.transactions.insert(0, sale_id)  # newest first, as Braintree lists them
            return sub.id

    def add_dispute(
        self,
        transaction_id: str,
        *,
        amount: str | None = None,
        reason: str = "fraud",
        status: str = "open",
    ) -> str:
        with self._lock:
            sale = self.transactions[transaction_id]
            received = now().date()
            dispute = DisputeRecord(
                id=new_id(16),
                transaction_id=sale.id,
                amount=Decimal(amount) if amount is not None else sale.amount,
                currency=sale.currency,
                reason=reason,
                status=status,
                kind="chargeback",
                received=received,
                reply_by=received + timedelta(days=20),
                created=now(),
            )
            self.disputes[dispute.id] = dispute
            sale.disputes.append(dispute.id)
            return dispute.id

    def settle(self, transaction_id: str) -> None:
        """Settle a submitted (or settling) transaction, as Braintree's batch does overnight."""
        with self._lock:
            self._settle(self.transactions[transaction_id])

    def begin_settling(self, transaction_id: str) -> None:
        """Move a submitted transaction to `settling`, where it waits on the processor."""
        with self._lock:
            sale = self.transactions[transaction_id]
            if sale.status != "submitted_for_settlement":
                raise ValueError(f"{transaction_id} is {sale.status}")
            sale.move("settling", "recurring")

    def _settle(self, sale: TransactionRecord) -> None:
        if sale.status not in ("submitted_for_settlement", "settling", "settlement_pending"):
            raise Invalid("91575", "transaction")
        if sale.status == "submitted_for_settlement":
            sale.move("settling", "recurring")
        sale.move("settled", "recurring")

    def refund_outside(self, transaction_id: str, amount: str) -> str:
        """A refund made by a person in the Braintree Control Panel."""
        with self._lock:
            return self._refund(self.transactions[transaction_id], amount, None, "control_panel").id

    def void_outside(self, transaction_id: str) -> None:
        """A void made by a person in the Braintree Control Panel."""
        with self._lock:
            self._void(self.transactions[transaction_id], "control_panel")

    def cancel_outside(self, subscription_id: str) -> None:
        """A subscription cancelled by a person in the Braintree Control Panel."""
        with self._lock:
            self._cancel(self.subscriptions[subscription_id], "control_panel")

    def refunded(self, sale: TransactionRecord) -> Decimal:
        return sum(
            (
                self.transactions[r].amount
                for r in sale.refund_ids
                if self.transactions[r].status not in ("voided", "failed")
            ),
            Decimal(0),
        )

    # --- the rules Braintree applies -----------------------------------------------------

    def _amount(self, raw: Any, currency: str, on: str) -> Decimal | None:
        if raw in (None, ""):
            return None
        text = str(raw)
        if not re.fullmatch(r"-?\d+(\.\d+)?", text):
            raise Invalid("81503", on, "amount")
        value = Decimal(text)
        if value < 0:
            raise Invalid("81501", on, "amount")
        if value == 0:
            raise Invalid("81531", on, "amount")
        places = len(text.split(".")[1]) if "." in text else 0
        if places > decimals(currency) and value != value.quantize(
            Decimal(1).scaleb(-decimals(currency))
        ):
            raise Invalid("81503", on, "amount")
        return value

    def _refund(
        self, sale: TransactionRecord, amount: Any, order_id: str | None, source: str
    ) -> TransactionRecord:
        if sale.type == "credit":
            raise Invalid("91505", "transaction")
        value = self._amount(amount, sale.currency, "transaction")  # the request's form first
        settled = sale.status in ("settled", "settlement_confirmed")
        if not settled and not (sale.status == "settling" and self.settling_refunds):
            raise Invalid("91574" if sale.status == "settling" else "91506", "transaction")
        remaining = sale.amount - self.refunded(sale)
        if remaining <= 0:
            raise Invalid("91512", "transaction")
        value = remaining if value is None else value
        if value > remaining:
            raise Invalid("91521", "transaction", "amount")
        credit = TransactionRecord(
            id=new_id(),
            type="credit",
            amount=value,
            currency=sale.currency,
            merchant_account_id=sale.merchant_account_id,
            status="submitted_for_settlement",
            created=now(),
            updated=now(),
            customer_id=sale.customer_id,
            first_name=sale.first_name,
            last_name=sale.last_name,
            email=sale.email,
            token=sale.token,
            # Braintree gives a refund its sale's order ID unless the request names one.
            order_id=order_id or sale.order_id,
            refunded_transaction_id=sale.id,
        )
        credit.history.append(
            Event(
                "submitted_for_settlement",
                credit.created,
                value,
                source,
                "chargedesk_api" if source == "api" else "control_panel_user",
            )
        )
        self.transactions[credit.id] = credit
        sale.refund_ids.append(credit.id)
        sale.updated = now()
        return credit

    def _void(self, sale: TransactionRecord, source: str) -> None:
        if sale.status not in ("authorized", "submitted_for_settlement", "settlement_pending"):
            raise Invalid("91504", "transaction")
        sale.move("voided", source)

    def _cancel(self, sub: SubscriptionRecord, source: str) -> None:
        if sub.status in ("Canceled", "Expired"):
            raise Invalid("81905", "subscription")
        sub.status, sub.updated = "Canceled", now()
        sub.history.append(
            Event(
                "Canceled",
                sub.updated,
                Decimal(0),
                source,
                "chargedesk_api" if source == "api" else "control_panel_user",
            )
        )

    # --- XML views, as Braintree shows them ----------------------------------------------

    def transaction_xml(self, transaction_id: str) -> Json:
        t = self.transactions[transaction_id]
        card = self.cards.get(t.token) if t.token else None
        subscription = self.subscriptions.get(t.subscription_id) if t.subscription_id else None
        # Braintree sends the element for every transaction, with nil dates outside subscriptions.
        period: Json = {"billing_period_start_date": None, "billing_period_end_date": None}
        if subscription is not None:
            start, end = subscription.period()
            period = {"billing_period_start_date": start, "billing_period_end_date": end}
        return {
            "id": t.id,
            "status": t.status,
            "type": t.type,
            "currency_iso_code": t.currency,
            "amount": amount_text(t.amount, t.currency),
            "merchant_account_id": t.merchant_account_id,
            "sub_merchant_account_id": None,
            "master_merchant_account_id": None,
            "order_id": t.order_id,
            "created_at": t.created,
            "updated_at": t.updated,
            "customer": {
                "id": t.customer_id,
                "first_name": t.first_name,
                "last_name": t.last_name,
                "company": None,
                "email": t.email,
                "website": None,
                "phone": None,
                "fax": None,
            },
            "billing": {"id": None, "country_code_alpha2": None},
            "refund_id": t.refund_ids[-1] if t.refund_ids else None,
            "refund_ids": Array("item", list(t.refund_ids)),
            "refunded_transaction_id": t.refunded_transaction_id,
            "settlement_batch_id": (
                f"{t.updated:%Y-%m-%d}_chargedesk" if t.status == "settled" else None
            ),
            "custom_fields": "",
            "avs_error_response_code": None,
            "avs_postal_code_response_code": "M",
            "avs_street_address_response_code": "M",
            "cvv_response_code": "M",
            "gateway_rejection_reason": None,
            "processor_authorization_code": "A1B2C3" if t.type == "sale" else None,
            "processor_response_code": t.processor_response[0],
            "processor_response_text": t.processor_response[1],
            "processor_response_type": "approved"
            if t.processor_response[0] == "1000"
            else "soft_declined",
            "tax_amount": None,
            "tax_exempt": False,
            "purchase_order_number": None,
            "recurring": t.subscription_id is not None,
            "channel": None,
            "payment_instrument_type": "credit_card",
            "credit_card": {
                "token": t.token,
                "bin": "411111",
                "last_4": card.last_4 if card else "1111",
                "card_type": card.card_type if card else "Visa",
                "expiration_month": "12",
                "expiration_year": "2030",
                "customer_location": "US",
                "cardholder_name": None,
                "unique_number_identifier": "abc123uniq",
                "prepaid": "No",
                "debit": "No",
                "country_of_issuance": "USA",
            },
            "status_history": Array("status_event", [_event_xml(e) for e in t.history]),
            "plan_id": t.plan_id,
            "subscription_id": t.subscription_id,
            "subscription": period,
            "add_ons": Array("add_on", []),
            "discounts": Array("discount", []),
            "descriptor": {"name": None, "phone": None, "url": None},
            "disputes": Array("dispute", [self.dispute_xml(d) for d in t.disputes]),
            "authorization_adjustments": Array("authorization_adjustment", []),
            "escrow_status": None,
        }

    def address_xml(self, customer_id: str) -> Json:
        """The customer's one address (the emulator keeps one, as ChargeDesk reads the first)."""
        c = self.customers[customer_id]
        address = c.address or {}
        return {
            "id": "ad" + c.id[-4:],
            "customer_id": c.id,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "company": c.company,
            "street_address": address.get("line1"),
            "extended_address": address.get("line2"),
            "locality": address.get("city"),
            "region": address.get("state"),
            "postal_code": address.get("postal_code"),
            "country_code_alpha2": address.get("country"),
            "country_name": None,
            "created_at": c.created,
            "updated_at": c.created,
        }

    def customer_xml(self, customer_id: str) -> Json:
        c = self.customers[customer_id]
        addresses = [self.address_xml(customer_id)] if c.address else []
        return {
            "id": c.id,
            "merchant_id": self.merchant_id,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "company": c.company,
            "email": c.email,
            "phone": None,
            "fax": None,
            "website": None,
            "created_at": c.created,
            "updated_at": c.created,
            "credit_cards": Array("credit_card", [self.card_xml(t) for t in c.cards]),
            "addresses": Array("address", addresses),
            "paypal_accounts": Array("paypal_account", []),
            "apple_pay_cards": Array("apple_pay_card", []),
            "android_pay_cards": Array("android_pay_card", []),
            "venmo_accounts": Array("venmo_account", []),
            "us_bank_accounts": Array("us_bank_account", []),
        }

    def card_xml(self, token: str) -> Json:
        card = self.cards[token]
        return {
            "token": card.token,
            "customer_id": card.customer_id,
            "bin": "411111",
            "last_4": card.last_4,
            "card_type": card.card_type,
            "expiration_month": "12",
            "expiration_year": "2030",
            "expired": False,
            "default": self.customers[card.customer_id].cards[0] == token,
            "cardholder_name": None,
            "customer_location": "US",
            "unique_number_identifier": "abc123uniq",
            "image_url": "https://assets.braintreegateway.com/payment_method_logo/visa.png",
            "created_at": card.created,
            "updated_at": card.created,
            "subscriptions": Array(
                "subscription", [self.subscription_xml(s) for s in card.subscriptions]
            ),
            "verifications": Array("verification", []),
        }

    def subscription_xml(self, subscription_id: str) -> Json:
        s = self.subscriptions[subscription_id]
        start, end = s.period()
        live = s.status in ("Active", "Past Due", "Pending")
        next_bill = end + timedelta(days=1) if live and s.current_cycle else s.first_billing
        return {
            "id": s.id,
            "plan_id": s.plan_id,
            "price": amount_text(s.price, s.currency),
            "balance": amount_text(s.balance, s.currency),
            "status": s.status,
            "merchant_account_id": s.merchant_account_id,
            "payment_method_token": s.token,
            "current_billing_cycle": s.current_cycle,
            "number_of_billing_cycles": s.cycles,
            "never_expires": s.never_expires,
            "billing_day_of_month": s.first_billing.day,
            "billing_period_start_date": start if s.current_cycle else None,
            "billing_period_end_date": end if s.current_cycle else None,
            "first_billing_date": s.first_billing,
            "next_billing_date": next_bill if live else None,
            "paid_through_date": end if s.current_cycle else None,
            "next_billing_period_amount": amount_text(self._discounted(s), s.currency),
            "next_bill_amount": amount_text(self._discounted(s), s.currency),
            "days_past_due": None,
            "failure_count": 0,
            "trial_period": s.trial,
            "trial_duration": 14 if s.trial else None,
            "trial_duration_unit": "day" if s.trial else None,
            "description": None,
            "created_at": s.created,
            "updated_at": s.updated,
            "add_ons": Array("add_on", []),
            "discounts": Array(
                "discount", [self.discount_xml(self.discounts[d], s) for d in s.discounts]
            ),
            "descriptor": {"name": None, "phone": None, "url": None},
            "status_history": Array(
                "status_event",
                [
                    {
                        "timestamp": e.when,
                        "status": e.status,
                        "user": e.user,
                        "subscription_source": e.source,
                        "balance": amount_text(Decimal(0), s.currency),
                        "price": amount_text(s.price, s.currency),
                        "currency_iso_code": s.currency,
                        "plan_id": s.plan_id,
                    }
                    for e in reversed(s.history)  # newest first, as Braintree lists them
                ],
            ),
            "transactions": Array("transaction", [self.transaction_xml(t) for t in s.transactions]),
        }

    def dispute_xml(self, dispute_id: str) -> Json:
        d = self.disputes[dispute_id]
        sale = self.transactions[d.transaction_id]
        text = amount_text(d.amount, d.currency)
        return {
            "id": d.id,
            "amount": text,
            "amount_disputed": text,
            "amount_won": amount_text(Decimal(0), d.currency),
            "currency_iso_code": d.currency,
            "case_number": "CB" + d.id[:8].upper(),
            "kind": d.kind,
            "status": d.status,
            "reason": d.reason,
            "reason_code": "83",
            "reason_description": None,
            "received_date": d.received,
            "reply_by_date": d.reply_by,
            "date_opened": d.received,
            "date_won": None,
            "created_at": d.created,
            "updated_at": d.created,
            "merchant_account_id": sale.merchant_account_id,
            "processor_comments": None,
            "transaction": {
                "id": sale.id,
                "amount": amount_text(sale.amount, sale.currency),
                "created_at": sale.created,
                "order_id": sale.order_id,
                "purchase_order_number": None,
                "payment_instrument_subtype": "Visa",
            },
            "status_history": Array(
                "status_history",
                [{"status": d.status, "timestamp": d.created, "effective_date": d.received}],
            ),
            "evidence": Array("evidence", d.evidence),
        }

    # --- webhooks ------------------------------------------------------------------------

    def notification(
        self, kind: str, subject_id: str = "", *, timestamp: datetime | None = None
    ) -> dict[str, str]:
        """A signed notification, as Braintree POSTs it: `bt_signature` and `bt_payload`."""
        with self._lock:
            if kind.startswith("transaction_"):
                subject: Json = {"transaction": self.transaction_xml(subject_id)}
            elif kind.startswith("subscription_"):
                subject = {"subscription": self.subscription_xml(subject_id)}
            elif kind.startswith("dispute_"):
                subject = {"dispute": self.dispute_xml(subject_id)}
            elif kind == "check":
                subject = {"check": True}
            else:
                raise ValueError(f"the emulator does not send {kind} notifications")
        body = document(
            "notification", {"timestamp": timestamp or now(), "kind": kind, "subject": subject}
        )
        # Base64 in lines of 76 with a closing newline, as Braintree (and its SDKs) write it.
        payload = base64.encodebytes(body).decode()
        return {"bt_signature": self.signature(payload), "bt_payload": payload}

    def signature(self, payload: str) -> str:
        """`public_key|hex HMAC-SHA1` keyed with SHA-1 of the private key."""
        key = hashlib.sha1(self.private_key.encode()).digest()
        digest = hmac.new(key, payload.encode(), hashlib.sha1).hexdigest()
        return f"{self.public_key}|{digest}"

    def delivery(
        self, kind: str, subject_id: str = "", *, timestamp: datetime | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The POST Braintree makes to the webhook URL: form body and headers."""
        fields = self.notification(kind, subject_id, timestamp=timestamp)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return urlencode(fields).encode(), headers

    # --- handlers ------------------------------------------------------------------------

    def _find_customer(self, request: Request, _: Json) -> tuple[int, bytes]:
        customer_id = request.path_params["id"]
        if customer_id not in self.customers:
            raise Missing
        return 200, document("customer", self.customer_xml(customer_id))

    def _update_customer(self, request: Request, body: Json) -> tuple[int, bytes]:
        customer_id = request.path_params["id"]
        if customer_id not in self.customers:
            raise Missing
        c = self.customers[customer_id]
        params = _params(body, "customer")
        for name in ("first_name", "last_name", "company"):
            if name in params:
                setattr(c, name, params[name] or None)
        return 200, document("customer", self.customer_xml(customer_id))

    def _save_address(self, request: Request, body: Json) -> tuple[int, bytes]:
        """Create or update the customer's address (`/addresses` or `/addresses/{id}`)."""
        customer_id = request.path_params["id"]
        c = self.customers.get(customer_id)
        if c is None or request.path_params.get("address_id", "ad" + customer_id[-4:]) != (
            "ad" + customer_id[-4:]
        ):
            raise Missing
        params = _params(body, "address")
        fields = {"street_address": "line1", "extended_address": "line2", "locality": "city",
                  "region": "state", "postal_code": "postal_code",
                  "country_code_alpha2": "country"}  # fmt: skip
        address = dict(c.address or {})
        for theirs, ours in fields.items():
            if theirs in params:
                address[ours] = params[theirs] or None
        c.address = address
        return (201 if request.method == "POST" else 200), document(
            "address", self.address_xml(customer_id)
        )

    def _payment_method(self, request: Request, _: Json) -> tuple[int, bytes]:
        token = request.path_params["token"]
        if token not in self.cards:
            raise Missing
        return 200, document("credit_card", self.card_xml(token))

    def _customer_ids(self, request: Request, body: Json) -> tuple[int, bytes]:
        ids = [c.id for c in self._customers_matching(_criteria(body))]
        return 200, document("search_results", _ids(ids))

    def _customer_search(self, request: Request, body: Json) -> tuple[int, bytes]:
        found = self._customers_matching(_criteria(body))
        return 200, document(
            "customers", _collection("customer", [self.customer_xml(c.id) for c in found])
        )

    def _customers_matching(self, criteria: Json) -> list[CustomerRecord]:
        fields: dict[str, Callable[[CustomerRecord], Any]] = {
            "id": lambda c: c.id,
            "ids": lambda c: c.id,
            "email": lambda c: c.email,
            "first_name": lambda c: c.first_name,
            "last_name": lambda c: c.last_name,
            "company": lambda c: c.company,
            "created_at": lambda c: c.created,
        }
        return _newest_matching(self.customers.values(), criteria, fields)

    def _find_transaction(self, request: Request, _: Json) -> tuple[int, bytes]:
        transaction_id = request.path_params["id"]
        if transaction_id not in self.transactions:
            raise Missing
        return 200, document("transaction", self.transaction_xml(transaction_id))

    def _transaction_ids(self, request: Request, body: Json) -> tuple[int, bytes]:
        ids = [t.id for t in self._transactions_matching(_criteria(body))]
        return 200, document("search_results", _ids(ids))

    def _transaction_search(self, request: Request, body: Json) -> tuple[int, bytes]:
        found = [self.transaction_xml(t.id) for t in self._transactions_matching(_criteria(body))]
        return 200, document("credit_card_transactions", _collection("transaction", found))

    def _transactions_matching(self, criteria: Json) -> list[TransactionRecord]:
        fields: dict[str, Callable[[TransactionRecord], Any]] = {
            "id": lambda t: t.id,
            "ids": lambda t: t.id,
            "customer_id": lambda t: t.customer_id,
            "customer_email": lambda t: t.email,
            "order_id": lambda t: t.order_id,
            "type": lambda t: t.type,
            "status": lambda t: t.status,
            "created_at": lambda t: t.created,
        }
        return _newest_matching(self.transactions.values(), criteria, fields)

    def _transaction(self, request: Request) -> TransactionRecord:
        transaction_id = request.path_params["id"]
        if transaction_id not in self.transactions:
            raise Missing
        return self.transactions[transaction_id]

    def _refund_transaction(self, request: Request, body: Json) -> tuple[int, bytes]:
        sale = self._transaction(request)
        params = _params(body, "transaction")
        credit = self._refund(sale, params.get("amount"), params.get("order_id") or None, "api")
        return 201, document("transaction", self.transaction_xml(credit.id))

    def _void_transaction(self, request: Request, body: Json) -> tuple[int, bytes]:
        sale = self._transaction(request)
        self._void(sale, "api")
        return 200, document("transaction", self.transaction_xml(sale.id))

    def _submit_for_settlement(self, request: Request, body: Json) -> tuple[int, bytes]:
        sale = self._transaction(request)
        params = _params(body, "transaction")
        if sale.type != "sale" or sale.status != "authorized":
            raise Invalid("91507", "transaction")
        value = self._amount(params.get("amount"), sale.currency, "transaction")
        if value is not None and value > sale.amount:
            raise Invalid("91522", "transaction", "amount")
        if value is not None:
            sale.amount = value
        if params.get("order_id"):
            sale.order_id = str(params["order_id"])
        sale.move("submitted_for_settlement")
        return 200, document("transaction", self.transaction_xml(sale.id))

    def _create_sale(self, request: Request, body: Json) -> tuple[int, bytes]:
        """`Transaction.sale` on a vaulted card. As in the sandbox, an amount from 2000.00 to
        2999.99 is processor-declined with that amount as its response code."""
        params = _params(body, "transaction")
        if params.get("type") != "sale":
            raise Invalid("91509", "transaction", "type")
        card = self.cards.get(str(params.get("payment_method_token") or ""))
        if card is None:
            raise Invalid("91565", "transaction", "payment_method_token")
        customer = self.customers[card.customer_id]
        account = str(params.get("merchant_account_id") or "") or next(
            (a for a, (_, default) in self.merchant_accounts.items() if default),
            self._account_for("USD"),
        )
        currency = self.merchant_accounts[account][0]
        value = self._amount(params.get("amount"), currency, "transaction")
        if value is None:
            raise Invalid("81502", "transaction", "amount")
        sale = TransactionRecord(
            id=new_id(), type="sale", amount=value, currency=currency,
            merchant_account_id=account, status="authorized", created=now(), updated=now(),
            customer_id=customer.id, first_name=customer.first_name,
            last_name=customer.last_name, email=customer.email, token=card.token,
            order_id=str(params.get("order_id") or "") or None,
        )  # fmt: skip
        self.transactions[sale.id] = sale
        if Decimal(2000) <= value < Decimal(3000):
            sale.processor_response = (str(int(value)), "Insufficient Funds")
            sale.move("processor_declined")
            error = {"errors": {"errors": Array("error", [])}, "params": params,
                     "message": "Insufficient Funds", "transaction": self.transaction_xml(sale.id)}  # fmt: skip
            return 422, document("api_error_response", error)
        sale.history.append(Event("authorized", sale.created, value))
        options = params.get("options") if isinstance(params.get("options"), dict) else {}
        if str(options.get("submit_for_settlement")).lower() == "true":
            sale.move("submitted_for_settlement")
        return 201, document("transaction", self.transaction_xml(sale.id))

    def _settle_transaction(self, request: Request, body: Json) -> tuple[int, bytes]:
        sale = self._transaction(request)
        self._settle(sale)
        return 200, document("transaction", self.transaction_xml(sale.id))

    def _subscription(self, request: Request) -> SubscriptionRecord:
        subscription_id = request.path_params["id"]
        if subscription_id not in self.subscriptions:
            raise Missing
        return self.subscriptions[subscription_id]

    def _subscription_ids(self, request: Request, body: Json) -> tuple[int, bytes]:
        ids = [s.id for s in self._subscriptions_matching(_criteria(body))]
        return 200, document("search_results", _ids(ids))

    def _subscription_search(self, request: Request, body: Json) -> tuple[int, bytes]:
        found = [self.subscription_xml(s.id) for s in self._subscriptions_matching(_criteria(body))]
        return 200, document("subscriptions", _collection("subscription", found))

    def _subscriptions_matching(self, criteria: Json) -> list[SubscriptionRecord]:
        """`SubscriptionSearch`: by ID, plan, status (as Braintree spells it) or creation time."""
        fields: dict[str, Callable[[SubscriptionRecord], Any]] = {
            "id": lambda s: s.id,
            "ids": lambda s: s.id,
            "plan_id": lambda s: s.plan_id,
            "status": lambda s: s.status,
            "created_at": lambda s: s.created,
        }
        return _newest_matching(self.subscriptions.values(), criteria, fields)

    def _find_subscription(self, request: Request, _: Json) -> tuple[int, bytes]:
        return 200, document("subscription", self.subscription_xml(self._subscription(request).id))

    def _discounted(self, sub: SubscriptionRecord) -> Decimal:
        off = sum((self.discounts[d].amount for d in sub.discounts), Decimal(0))
        return max(sub.price - off, Decimal(0))

    def discount_xml(self, d: DiscountRecord, sub: SubscriptionRecord | None = None) -> Json:
        currency = sub.currency if sub is not None else "USD"
        value: Json = {
            "id": d.id, "kind": "discount", "name": d.name, "description": None,
            "amount": amount_text(d.amount, currency), "merchant_id": self.merchant_id,
            "never_expires": d.cycles is None, "number_of_billing_cycles": d.cycles,
            "created_at": d.created, "updated_at": d.created,
        }  # fmt: skip
        if sub is not None:
            value |= {"quantity": 1, "current_billing_cycle": sub.current_cycle}
        return value

    def _list_discounts(self, request: Request, _: Json) -> tuple[int, bytes]:
        return 200, document(
            "discounts", Array("discount", [self.discount_xml(d) for d in self.discounts.values()])
        )

    def _change_discounts(self, sub: SubscriptionRecord, change: Json) -> None:
        """`<discounts><add>` inherited from the account's, `<remove>` by ID."""
        added = change.get("add") or []
        removed = change.get("remove") or []
        for entry in added if isinstance(added, list) else [added]:
            found = entry.get("inherited_from_id") if isinstance(entry, dict) else None
            if found not in self.discounts:
                raise Invalid("92013", "subscription", "inherited_from_id")
            if found not in sub.discounts:
                sub.discounts.append(str(found))
        for gone in removed if isinstance(removed, list) else [removed]:
            if gone not in sub.discounts:
                raise Invalid("92016", "subscription", "discounts")
            sub.discounts.remove(str(gone))

    def _create_subscription(self, request: Request, body: Json) -> tuple[int, bytes]:
        """`POST /subscriptions`: a plan on a stored card; billed now unless it has a trial
        (`trial_period`, `trial_duration` days). A chosen `id` must be new."""
        params = _params(body, "subscription")
        plan = self.plans.get(str(params.get("plan_id")))
        if plan is None:
            raise Invalid("91904", "subscription", "plan_id")
        token = str(params.get("payment_method_token"))
        if token not in self.cards:
            raise Invalid("91903", "subscription", "payment_method_token")
        sub_id = str(params.get("id") or new_id(6))
        if sub_id in self.subscriptions:
            raise Invalid("81906", "subscription", "id")
        trial = str(params.get("trial_period")).lower() == "true"
        days = int(params.get("trial_duration") or 0) if trial else 0
        created = now()
        sub = SubscriptionRecord(
            id=sub_id, plan_id=plan.id, price=plan.price, currency=plan.currency,
            merchant_account_id=self._account_for(plan.currency), token=token, status="Active",
            created=created, first_billing=(created + timedelta(days=days)).date(),
            current_cycle=0 if trial else 1, billing_frequency=plan.billing_frequency,
            trial=trial,
        )  # fmt: skip
        sub.history.append(Event("Active", created, Decimal(0), "api", "chargedesk_api"))
        self.subscriptions[sub.id] = sub
        card = self.cards[token]
        card.subscriptions.append(sub.id)
        if not trial:
            sale_id = self.add_sale(
                card.customer_id, amount_text(sub.price, sub.currency), sub.currency,
                days_ago=0, subscription_id=sub.id,
            )  # fmt: skip
            self.transactions[sale_id].plan_id = plan.id
            sub.transactions.insert(0, sale_id)
        return 201, document("subscription", self.subscription_xml(sub.id))

    def _update_subscription(self, request: Request, body: Json) -> tuple[int, bytes]:
        sub = self._subscription(request)
        params = _params(body, "subscription")
        if sub.status in ("Canceled", "Expired"):
            raise Invalid("81901", "subscription")
        never = params.get("never_expires", sub.never_expires)
        cycles = params.get("number_of_billing_cycles", sub.cycles)
        if never and cycles is not None:
            raise Invalid("91908", "subscription", "number_of_billing_cycles")
        if cycles is not None and int(cycles) < sub.current_cycle:
            raise Invalid("91909", "subscription", "number_of_billing_cycles")
        if "plan_id" in params:
            if params["plan_id"] not in self.plans:
                raise Invalid("91904", "subscription", "plan_id")
            sub.plan_id = str(params["plan_id"])
        if "price" in params:
            price = self._amount(params["price"], sub.currency, "subscription")
            if price is not None and price != sub.price:
                options = params.get("options") if isinstance(params.get("options"), dict) else {}
                if str(options.get("prorate_charges")).lower() == "true":
                    self._prorate(sub, price - sub.price)
                sub.price = price
        sub.never_expires, sub.cycles = bool(never), int(cycles) if cycles is not None else None
        if isinstance(params.get("discounts"), dict):
            self._change_discounts(sub, params["discounts"])
        sub.updated = now()
        return 200, document("subscription", self.subscription_xml(sub.id))

    def _prorate(self, sub: SubscriptionRecord, difference: Decimal) -> None:
        """The difference for the days left in the billing cycle (today included): charged at
        once when the price rises, kept as the subscription's balance when it falls."""
        start, end = sub.period()
        today = now().date()
        if not sub.current_cycle or today > end:
            return
        part = difference * ((end - today).days + 1) / ((end - start).days + 1)
        cents = Decimal(10) ** -decimals(sub.currency)
        amount = abs(part).quantize(cents, rounding=ROUND_HALF_UP)
        if difference > 0 and amount > 0:
            card = self.cards[sub.token]
            sale_id = self.add_sale(
                card.customer_id, amount_text(amount, sub.currency), sub.currency,
                days_ago=0, subscription_id=sub.id,
            )  # fmt: skip
            self.transactions[sale_id].plan_id = sub.plan_id
            sub.transactions.insert(0, sale_id)
        elif difference < 0:
            sub.balance -= amount

    def _cancel_subscription(self, request: Request, body: Json) -> tuple[int, bytes]:
        sub = self._subscription(request)
        self._cancel(sub, "api")
        return 200, document("subscription", self.subscription_xml(sub.id))

    def _find_dispute(self, request: Request, _: Json) -> tuple[int, bytes]:
        dispute_id = request.path_params["id"]
        if dispute_id not in self.disputes:
            raise Missing
        return 200, document("dispute", self.dispute_xml(dispute_id))

    def _dispute_search(self, request: Request, body: Json) -> tuple[int, bytes]:
        fields: dict[str, Callable[[DisputeRecord], Any]] = {
            "id": lambda d: d.id,
            "ids": lambda d: d.id,
            "transaction_id": lambda d: d.transaction_id,
            "customer_id": lambda d: self.transactions[d.transaction_id].customer_id,
            "status": lambda d: d.status,
            "reason": lambda d: d.reason,
            "received_date": lambda d: d.received,
        }
        criteria = _criteria(body)
        found = [d for d in self.disputes.values() if _matches(d, criteria, fields)]
        found.sort(key=lambda d: d.created, reverse=True)
        page = max(int(request.query_params.get("page", "1") or 1), 1)
        chunk = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        value = {
            "current_page_number": page,
            "page_size": PAGE_SIZE,
            "total_items": len(found),
            "dispute": Many([self.dispute_xml(d.id) for d in chunk]),
        }
        return 200, document("disputes", value)

    def _merchant_account(self, request: Request, _: Json) -> tuple[int, bytes]:
        account_id = request.path_params["id"]
        if account_id not in self.merchant_accounts:
            raise Missing
        currency, default = self.merchant_accounts[account_id]
        value = {
            "id": account_id,
            "currency_iso_code": currency,
            "status": "active",
            "default": default,
        }
        return 200, document("merchant_account", value)

    def _find_plan(self, request: Request, _: Json) -> tuple[int, bytes]:
        plan_id = request.path_params["id"]
        if plan_id not in self.plans:
            raise Missing
        plan = self.plans[plan_id]
        value = {
            "id": plan.id,
            "merchant_id": self.merchant_id,
            "name": plan.name,
            "description": None,
            "price": amount_text(plan.price, plan.currency),
            "currency_iso_code": plan.currency,
            "billing_frequency": plan.billing_frequency,
            "billing_day_of_month": None,
            "number_of_billing_cycles": None,
            "trial_period": False,
            "trial_duration": None,
            "trial_duration_unit": None,
            "created_at": now(),
            "updated_at": now(),
            "add_ons": Array("add_on", []),
            "discounts": Array("discount", []),
        }
        return 200, document("plan", value)

    # --- disputes: accept, evidence, finalize --------------------------------------------

    def _open_dispute(self, request: Request, code: str) -> DisputeRecord:
        dispute = self.disputes.get(request.path_params["id"])
        if dispute is None:
            raise Missing
        if dispute.status != "open":
            raise Invalid(code, "dispute", "status")
        return dispute

    def _accept_dispute(self, request: Request, _: Json) -> tuple[int, bytes]:
        self._open_dispute(request, "95704").status = "accepted"
        return 200, b""

    def _finalize_dispute(self, request: Request, _: Json) -> tuple[int, bytes]:
        self._open_dispute(request, "95705").status = "disputed"
        return 200, b""

    def _add_evidence(self, request: Request, body: Json) -> tuple[int, bytes]:
        dispute = self._open_dispute(request, "95701")
        params = _params(body, "evidence")
        document_id = params.get("document_upload_id")
        if document_id is not None and str(document_id) not in self.document_uploads:
            raise Invalid("95703", "evidence", "document_upload_id")
        if document_id is None and not str(params.get("comments") or "").strip():
            raise Invalid("95708", "evidence", "comments")
        evidence = {
            "id": new_id(16),
            "comment": None if document_id is not None else str(params["comments"]),
            "category": params.get("category"),
            "sequence_number": params.get("sequence_number"),
            "created_at": now(),
            "sent_to_processor_at": None,
            "url": f"{self.base_url}/documents/{document_id}" if document_id is not None else None,
        }
        dispute.evidence.append(evidence)
        return 201, document("evidence", evidence)

    def _upload(self, request: Request, body: bytes) -> tuple[int, bytes]:
        """`POST /document_uploads`: multipart, a file of kind `evidence_document`."""
        if not self._authenticated(request):
            return 401, b""
        parts = {p.name: p for p in parse_form(request.headers.get("content-type", ""), body)}
        kind = parts.get("document_upload[kind]")
        upload = parts.get("file")
        if kind is None or kind.data != b"evidence_document":
            return 422, self._error_document(
                Invalid("84901", "document_upload", "kind"), request, {}
            )
        if upload is None or not upload.data:
            return 422, self._error_document(
                Invalid("84906", "document_upload", "file"), request, {}
            )
        upload_id = new_id(16)
        self.document_uploads[upload_id] = (upload.filename or "file", upload.data)
        value = {
            "id": upload_id,
            "kind": "evidence_document",
            "content_type": upload.content_type,
            "name": upload.filename,
            "size": len(upload.data),
        }
        return 201, document("document_upload", value)

    def _upload_endpoint(self) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._exchange(
                request, self._upload, lambda status: (status, b""), _xml_response
            )

        return endpoint

    # --- plumbing ------------------------------------------------------------------------

    def app(self) -> Starlette:
        base = "/merchants/{merchant_id}"
        routes: list[tuple[str, str, Handler]] = [
            ("/customers/advanced_search_ids", "POST", self._customer_ids),
            ("/customers/advanced_search", "POST", self._customer_search),
            ("/customers/{id}", "GET", self._find_customer),
            ("/customers/{id}", "PUT", self._update_customer),
            ("/customers/{id}/addresses", "POST", self._save_address),
            ("/customers/{id}/addresses/{address_id}", "PUT", self._save_address),
            ("/payment_methods/any/{token}", "GET", self._payment_method),
            ("/transactions/advanced_search_ids", "POST", self._transaction_ids),
            ("/transactions/advanced_search", "POST", self._transaction_search),
            ("/transactions", "POST", self._create_sale),
            ("/transactions/{id}", "GET", self._find_transaction),
            ("/transactions/{id}/refund", "POST", self._refund_transaction),
            ("/transactions/{id}/void", "PUT", self._void_transaction),
            ("/transactions/{id}/submit_for_settlement", "PUT", self._submit_for_settlement),
            ("/transactions/{id}/settle", "PUT", self._settle_transaction),
            ("/subscriptions/advanced_search_ids", "POST", self._subscription_ids),
            ("/subscriptions/advanced_search", "POST", self._subscription_search),
            ("/subscriptions", "POST", self._create_subscription),
            ("/subscriptions/{id}", "GET", self._find_subscription),
            ("/subscriptions/{id}", "PUT", self._update_subscription),
            ("/subscriptions/{id}/cancel", "PUT", self._cancel_subscription),
            ("/disputes/advanced_search", "POST", self._dispute_search),
            ("/disputes/{id}", "GET", self._find_dispute),
            ("/disputes/{id}/accept", "PUT", self._accept_dispute),
            ("/disputes/{id}/evidence", "POST", self._add_evidence),
            ("/disputes/{id}/finalize", "PUT", self._finalize_dispute),
            ("/merchant_accounts/{id}", "GET", self._merchant_account),
            ("/plans/{id}", "GET", self._find_plan),
            ("/discounts/", "GET", self._list_discounts),
        ]
        return Starlette(
            routes=[
                Route(base + path, self._endpoint(handler), methods=[method])
                for path, method, handler in routes
            ]
            + [Route(base + "/document_uploads", self._upload_endpoint(), methods=["POST"])]
        )

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._exchange(
                request,
                lambda request, body: self._answer(request, body, handler),
                lambda status: (status, b""),
                _xml_response,
            )

        return endpoint

    def _answer(self, request: Request, body: bytes, handler: Handler) -> tuple[int, bytes]:
        if not self._authenticated(request):
            return 401, b""
        try:
            version = int(request.headers.get("x-apiversion", "0"))
        except ValueError:
            version = 0
        if version < OLDEST_API_VERSION:
            return 426, b""
        try:
            root, value = read_xml(body)
        except ET.ParseError:
            return 400, b""
        parsed = {root: value} if root else {}
        try:
            return handler(request, parsed)
        except Missing:
            return 404, b""
        except Invalid as refused:
            return 422, self._error_document(refused, request, parsed)
        except NotImplementedError as unknown:  # loud: a call this emulator does not offer
            return 501, f"not emulated: {unknown}".encode()

    def _authenticated(self, request: Request) -> bool:
        if request.path_params.get("merchant_id") != self.merchant_id:
            return False
        expected = base64.b64encode(f"{self.public_key}:{self.private_key}".encode()).decode()
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Basic {expected}".encode())

    def _error_document(self, refused: Invalid, request: Request, parsed: Any) -> bytes:
        message = MESSAGES[refused.code]
        error = {"code": refused.code, "attribute": Symbol(refused.attribute), "message": message}
        params: Json = dict(parsed) if isinstance(parsed, dict) else {}
        if "id" in request.path_params:
            params["id"] = request.path_params["id"]
        params["merchant_id"] = self.merchant_id
        value = {
            "errors": {
                "errors": Array("error", []),
                refused.on: {"errors": Array("error", [error])},
            },
            "params": params,
            "message": message,
        }
        return document("api_error_response", value)

    def banner(self) -> list[str]:
        return [
            f"merchant id {self.merchant_id}, public key {self.public_key}, "
            f"private key {self.private_key},",
            f"Try: CHARGEDESK_BRAINTREE__MERCHANT_ID={self.merchant_id} "
            f"CHARGEDESK_BRAINTREE__PUBLIC_KEY={self.public_key} "
            f"CHARGEDESK_BRAINTREE__PRIVATE_KEY={self.private_key} "
            f"CHARGEDESK_BRAINTREE__BASE_URL={self.base_url} chargedesk shell",
        ]


def _xml_response(answer: tuple[int, bytes]) -> Response:
    status, body = answer
    return Response(body, status_code=status, media_type="application/xml")


def _event_xml(event: Event) -> Json:
    return {
        "timestamp": event.when,
        "status": event.status,
        "amount": str(event.amount),
        "user": event.user,
        "transaction_source": event.source,
    }


def _ids(ids: list[str]) -> Json:
    return {"page_size": PAGE_SIZE, "ids": Array("item", ids)}


def _collection(tag: str, items: list[Json]) -> Json:
    return {
        "current_page_number": 1,
        "page_size": PAGE_SIZE,
        "total_items": len(items),
        tag: Many(items),
    }


def _params(body: Json, root: str) -> Json:
    """The fields under a request's root element (`<transaction>`, `<subscription>`)."""
    value = body.get(root)
    return value if isinstance(value, dict) else {}


def _criteria(body: Json) -> Json:
    return _params(body, "search")


def _text_matches(value: Any, condition: Any) -> bool:
    text = "" if value is None else str(value).lower()
    if not isinstance(condition, dict):
        return text == str(condition).lower()
    checks = {
        "is": lambda wanted: text == wanted,
        "is_not": lambda wanted: text != wanted,
        "starts_with": text.startswith,
        "ends_with": text.endswith,
        "contains": lambda wanted: wanted in text,
    }
    for operator, wanted in condition.items():
        if operator not in checks:
            raise NotImplementedError(f"search operator {operator}")
        if not checks[operator](str(wanted).lower()):
            return False
    return True


def _range_matches(value: datetime | date, condition: Any) -> bool:
    """A range search (`min`, `max`); a day (a dispute's received date) against the bounds'
    days."""
    if not isinstance(condition, dict):
        return False

    def bound(text: Any) -> datetime | date:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        return moment if isinstance(value, datetime) else moment.date()

    low, high = condition.get("min"), condition.get("max")
    if low and value < bound(low):
        return False
    return not (high and value > bound(high))


R = TypeVar("R", CustomerRecord, TransactionRecord, SubscriptionRecord)


def _newest_matching(
    records: Iterable[R], criteria: Json, fields: dict[str, Callable[[R], Any]]
) -> list[R]:
    """The records a search finds, newest first (as Braintree lists search results)."""
    found = [r for r in records if _matches(r, criteria, fields)]
    return sorted(found, key=lambda r: r.created, reverse=True)


def _matches(record: Any, criteria: Json, fields: dict[str, Callable[[Any], Any]]) -> bool:
    for name, condition in criteria.items():
        if name not in fields:
            raise NotImplementedError(f"search on {name}")
        value = fields[name](record)
        if isinstance(condition, list):
            if value not in condition:
                return False
        elif name in ("created_at", "received_date"):
            if not _range_matches(value, condition):
                return False
        elif not _text_matches(value, condition):
            return False
    return True


def braintree_api(**options: Any) -> AbstractContextManager[BraintreeEmulator]:
    """Run an emulator on 127.0.0.1 with a free port, in a background thread."""
    return running(BraintreeEmulator(**options))


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Braintree merchant until interrupted; prints the settings for the bot."""
    command(BraintreeEmulator(), argv)


if __name__ == "__main__":
    main()
