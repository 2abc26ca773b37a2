"""An HTTP-level WooCommerce emulator (REST API v3, `/wp-json/wc/v3`) on 127.0.0.1:0.

It follows WooCommerce's published REST reference (shared/specs/woocommerce) and, where
the reference is silent, WooCommerce's own code:

- Authentication as `WC_REST_Authentication` does it: over HTTPS a consumer key and secret
  in Basic auth (or the `consumer_key`/`consumer_secret` query), then OAuth 1.0a one-legged;
  over plain HTTP OAuth only. The signature base string is rebuilt the way WooCommerce
  rebuilds it (the store's home URL, PHP's query parsing where a repeated name keeps its
  last value, parameters sorted by name), HMAC-SHA1 or HMAC-SHA256 with `secret&`, then the
  15-minute timestamp window and the nonces used within it (kept per key by timestamp,
  as WooCommerce keeps them). A read-only key cannot write.
- Errors in the WP REST shape `{"code", "message", "data": {"status"}}`; where WooCommerce
  builds its `WP_Error` with a bare number as data (order refunds), `data` is that number
  and the HTTP status is 500, as WordPress answers it.
- Lists page at 10 items unless `per_page` (1 to 100) asks otherwise, with `X-WP-Total`,
  `X-WP-TotalPages` and `Link` headers; order search matches the billing and shipping
  addresses (e-mail included), item names and the order ID, guest orders too.
- Refunds follow `wc_create_refund`: never more than what remains ("Invalid refund
  amount."), `api_refund` (default true) asks the order's payment gateway, which refuses
  when it does not exist or does not support refunds, and the refund is then deleted;
  meta data is saved after the refund, so a request that dies in between leaves a refund
  without it. A full refund sets the order `refunded`.
- Lists take WooCommerce's collection parameters the way `WC_REST_CRUD_Controller` builds its
  query: `after`/`before`/`modified_after`/`modified_before` are strict (`WP_Date_Query`
  is not inclusive), read in the store's timezone unless `dates_are_gmt`; `orderby` (`date`,
  `id`) and `order` (desc by default; customers: `id`, `name`, `registered_date`, asc);
  `include`, `parent`.
- `GET /refunds` (every refund, each with its order as `parent_id`) is the newer
  WooCommerce's (developer.woocommerce.com/docs/apis/rest-api/v3/refunds); `refunds_endpoint=
  False` is a store from before it (`rest_no_route`).
- WooCommerce Subscriptions (`/subscriptions`) can be switched off: its routes then answer
  404 `rest_no_route`. `transition_status` moves a subscription the way
  `WC_Subscription::update_status` does; a move it refuses throws, which WordPress turns
  into its "critical error" 500.
- Webhook deliveries are built as `WC_Webhook` sends them: the resource as the REST API
  shows it, `X-WC-Webhook-Signature` = base64 HMAC-SHA256 of the body with the secret.

State is seeded through Python methods (`add_customer`, `add_order`, `refund_in_dashboard`,
...), never over HTTP, so the gateway reaches nothing WooCommerce itself would not offer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.serve import command, running
from chargedesk_emulators.traffic import EmulatedAPI

Json = dict[str, Any]
PREFIX = "/wp-json/wc/v3"
ORDER_STATUSES = (
    "pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash",
)  # fmt: skip
SUBSCRIPTION_STATUSES = (
    "pending", "active", "on-hold", "cancelled", "switched", "expired", "pending-cancel",
)  # fmt: skip
# WooCommerce's window for OAuth timestamps and the nonces remembered within it.
OAUTH_WINDOW = 15 * 60
_OAUTH_REQUIRED = (
    "oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
    "oauth_signature_method",
)  # fmt: skip
_HEADER_PARAM = re.compile(r'(oauth_[a-z_-]*)=(:?"([^"]*)"|([^,]*))')
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CRITICAL = (
    '<p>There has been a critical error on this website.</p><p><a href="https://wordpress.org/'
    'documentation/article/faq-troubleshooting/">Learn more about troubleshooting WordPress.</a></p>'
)
_NO_ROUTE = "No route was found matching the URL and request method."


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def php_json(value: Any) -> bytes:
    """JSON as PHP's `wp_json_encode` writes it: compact, non-ASCII and slashes escaped."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


def rfc3986(value: str) -> str:
    """PHP's `rawurlencode` (WooCommerce's `wc_rest_urlencode_rfc3986`)."""
    return quote(value, safe="")


def php_empty(value: Any) -> bool:
    """PHP's `empty()` for request values: missing, "" and "0" are empty."""
    return value is None or value == "" or value == "0" or value == [] or value == {}


def php_query(raw: str) -> dict[str, Any]:
    """A query string as PHP's `$_GET` holds it.

    A repeated name keeps its last value, `name[]` collects a list, `name[key]` a map,
    and dots and spaces in a name become underscores.
    """
    parsed: dict[str, Any] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        base, bracket, rest = name.partition("[")
        base = base.replace(".", "_").replace(" ", "_")
        if not base:
            continue
        if bracket and rest.endswith("]"):
            inner = rest[:-1]
            if inner == "":
                existing = parsed.get(base)
                parsed[base] = [*existing, value] if isinstance(existing, list) else [value]
            else:
                existing = parsed.get(base)
                parsed[base] = (
                    {**existing, inner: value} if isinstance(existing, dict) else {inner: value}
                )
            continue
        parsed[base] = value
    return parsed


def _joined(params: dict[str, Any], out: list[str], prefix: str = "") -> list[str]:
    """`WC_REST_Authentication::join_with_equals_sign`: `key=value`, each encoded once more."""
    for key, value in params.items():
        name = f"{prefix}%5B{key}%5D" if prefix else key
        if isinstance(value, dict):
            _joined(value, out, name)
        elif isinstance(value, list):
            _joined({str(i): v for i, v in enumerate(value)}, out, name)
        else:
            out.append(rfc3986(f"{name}={value}"))
    return out


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return rfc3986(str(value))


def signature_base_string(method: str, url: str, params: dict[str, Any]) -> str:
    """What WooCommerce signs: `METHOD&encoded-url&encoded-sorted-params`."""
    ordered = {k: params[k] for k in sorted(params, key=lambda k: k.encode())}
    normalized = {rfc3986(k): _normalized(v) for k, v in ordered.items()}
    return f"{method.upper()}&{rfc3986(url)}&{'%26'.join(_joined(normalized, []))}"


def oauth_signature(base_string: str, secret: str, method: str) -> str:
    algorithm = hashlib.sha1 if method == "HMAC-SHA1" else hashlib.sha256
    digest = hmac.new(f"{secret}&".encode(), base_string.encode(), algorithm).digest()
    return base64.b64encode(digest).decode()


def parse_oauth_header(header: str) -> dict[str, str]:
    """`WC_REST_Authentication::parse_header`: the `oauth_*` pairs of an `OAuth ...` header."""
    if not header.startswith("OAuth "):
        return {}
    found: dict[str, str] = {}
    for name, _, quoted, bare in _HEADER_PARAM.findall(header):
        found[name] = unquote_plus(quoted or bare)
    return found


def decimal_of(raw: Any) -> Decimal | None:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


class WPError(Exception):
    """An error answer in the WP REST shape."""

    def __init__(self, code: str, message: str, status: int = 400, data: Any = None) -> None:
        super().__init__(f"{status} {code}")
        self.code = code
        self.message = message
        self.status = status
        self.data = {"status": status} if data is None else data

    def body(self) -> Json:
        return {"code": self.code, "message": self.message, "data": self.data}


def invalid_param(name: str, message: str, code: str = "rest_invalid_param") -> WPError:
    detail = {
        "code": "rest_out_of_bounds" if "between" in message else code,
        "message": message,
        "data": None,
    }
    return WPError(
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        400,
        {"status": 400, "params": {name: message}, "details": {name: detail}},
    )


def _refund_error(message: str) -> WPError:
    # WooCommerce builds these with `new WP_Error( code, message, 500 )`: data is the bare
    # number, so WordPress answers 500 whatever the number says.
    return WPError("woocommerce_rest_cannot_create_order_refund", message, 500, 500)


@dataclass
class ApiKey:
    consumer_key: str
    consumer_secret: str
    permissions: str  # read, write, read_write
    user_id: int
    manager: bool = True  # its user may read WooCommerce's settings (payment gateways)
    nonces: dict[int, str] = field(default_factory=dict)


@dataclass
class PaymentGateway:
    id: str
    title: str
    refunds: bool  # `$gateway->supports( 'refunds' )`
    cancels: bool = True  # supports( 'subscription_cancellation' )
    decline: str | None = None  # what process_refund answers instead of refunding


@dataclass
class CustomerRecord:
    id: int
    email: str
    first_name: str
    last_name: str
    username: str
    created: datetime
    billing: Json
    shipping: Json
    role: str = "customer"
    modified: datetime | None = None


@dataclass
class LineItem:
    id: int
    name: str
    product_id: int
    quantity: int
    total: Decimal


@dataclass
class OrderRecord:
    id: int
    kind: str  # shop_order or shop_subscription
    number: str
    status: str
    currency: str
    customer_id: int
    billing: Json
    shipping: Json
    payment_method: str
    payment_method_title: str
    items: list[LineItem]
    total: Decimal
    created: datetime
    modified: datetime
    paid: datetime | None
    transaction_id: str = ""
    order_key: str = field(default_factory=lambda: "wc_order_" + secrets.token_hex(6))
    parent_id: int = 0
    meta: list[Json] = field(default_factory=list)
    # Subscriptions only.
    billing_period: str = "month"
    billing_interval: int = 1
    start: datetime | None = None
    trial_end: datetime | None = None
    next_payment: datetime | None = None
    last_payment: datetime | None = None
    cancelled: datetime | None = None
    end: datetime | None = None


@dataclass
class RefundRecord:
    id: int
    order_id: int
    amount: Decimal
    reason: str
    created: datetime
    refunded_by: int
    refunded_payment: bool
    meta: list[Json] = field(default_factory=list)


@dataclass
class NoteRecord:
    id: int
    order_id: int
    note: str
    customer_note: bool
    author: str
    created: datetime


@dataclass
class _Answer:
    status: int
    body: Any  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


class WooCommerceEmulator(EmulatedAPI):
    """One WooCommerce store's REST API, stateful, in memory.

    `site_offset` is the store's timezone: the non-GMT dates WooCommerce also sends are
    that far from UTC, so a client must read the `_gmt` ones. `decimals` is the store's
    "Number of decimals" setting, the default `dp` of every amount. The switches match
    requests under `PREFIX` unless told another path.
    """

    name = "WooCommerce"
    path_root = PREFIX

    def __init__(
        self,
        *,
        consumer_key: str = "ck_" + "c0ffee" * 6 + "abcd",
        consumer_secret: str = "cs_" + "5ecre7" * 6 + "abcd",
        permissions: str = "read_write",
        webhook_secret: str = "wc-webhook-secret",
        subscriptions: bool = True,
        refunds_endpoint: bool = True,
        currency: str = "USD",
        decimals: int = 2,
        site_offset: timedelta = timedelta(hours=-3),
    ) -> None:
        super().__init__()  # base_url: the store's home URL, known once served
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.webhook_secret = webhook_secret
        self.subscriptions_enabled = subscriptions
        self.refunds_endpoint = refunds_endpoint
        self.currency = currency
        self.decimals = decimals
        self.site_offset = site_offset
        self.keys: dict[str, ApiKey] = {}
        self.add_key(consumer_key, consumer_secret, permissions)
        self.gateways: dict[str, PaymentGateway] = {}
        for gateway in (
            PaymentGateway("stripe", "Credit Card (Stripe)", True),
            PaymentGateway("ppcp-gateway", "PayPal", True),
            PaymentGateway("bacs", "Direct bank transfer", False),
            PaymentGateway("cod", "Cash on delivery", False),
            PaymentGateway("cheque", "Check payments", False),
        ):
            self.gateways[gateway.id] = gateway
        self.customers: dict[int, CustomerRecord] = {}
        self.orders: dict[int, OrderRecord] = {}  # orders and subscriptions share the IDs
        self.refunds: dict[int, RefundRecord] = {}
        self.notes: dict[int, NoteRecord] = {}
        self.gateway_refunds: list[tuple[int, Decimal]] = []  # what reached a payment gateway
        self._next_id = 700
        self._next_user = 20
        self._next_meta = 13100
        self._races: list[Decimal] = []
        self._die_before_meta = 0

    # --- test switches -------------------------------------------------------------------

    def add_key(
        self, consumer_key: str, consumer_secret: str, permissions: str, *, manager: bool = True
    ) -> None:
        """Another REST API key (Read, Write or Read/Write): of the admin user, or (not
        `manager`) of a user who may handle orders but not read the store's settings."""
        with self._lock:
            self.keys[consumer_key] = ApiKey(
                consumer_key,
                consumer_secret,
                permissions,
                user_id=1 if manager else 2,
                manager=manager,
            )

    def set_subscriptions(self, enabled: bool) -> None:
        """Activate or deactivate the WooCommerce Subscriptions extension."""
        with self._lock:
            self.subscriptions_enabled = enabled

    def race_next_refund(self, amount: str) -> None:
        """Just before the next refund request is handled, a shop manager refunds `amount`
        of the same order in WooCommerce's admin."""
        with self._lock:
            self._races.append(Decimal(amount))

    def die_before_refund_meta(self, count: int = 1) -> None:
        """The next `count` refund requests die (PHP fatal, 500) after the refund is saved and
        the payment gateway asked, before the request's meta data is saved."""
        with self._lock:
            self._die_before_meta += count

    # --- seeding -------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_customer(
        self, email: str, first_name: str = "Jane", last_name: str = "Doe", *, country: str = "US"
    ) -> int:
        with self._lock:
            self._next_user += 1
            billing = _address(first_name, last_name, country) | {"email": email, "phone": ""}
            record = CustomerRecord(
                id=self._next_user,
                email=email,
                first_name=first_name,
                last_name=last_name,
                username=email.split("@")[0],
                created=now() - timedelta(days=400),
                billing=billing,
                shipping=_address(first_name, last_name, country),
            )
            self.customers[record.id] = record
            return record.id

    def add_order(
        self,
        total: str,
        *,
        customer_id: int = 0,
        email: str | None = None,
        name: tuple[str, str] = ("Jane", "Doe"),
        currency: str | None = None,
        status: str = "processing",
        payment_method: str = "stripe",
        paid: bool = True,
        days_ago: float = 0,
        items: list[tuple[str, str]] | None = None,
        number: str | None = None,
    ) -> int:
        """An order (a guest's without `customer_id`), its billing e-mail the customer's."""
        with self._lock:
            customer = self.customers.get(customer_id)
            billing_email = email or (customer.email if customer else "guest@example.com")
            first, last = (customer.first_name, customer.last_name) if customer else name
            order_id = self._new_id()
            when = now() - timedelta(days=days_ago)
            lines = items or [("Woo Album #1", total)]
            gateway = self.gateways.get(payment_method)
            record = OrderRecord(
                id=order_id,
                kind="shop_order",
                number=number or str(order_id),
                status=status,
                currency=currency or self.currency,
                customer_id=customer_id,
                billing=_address(first, last, "US") | {"email": billing_email, "phone": ""},
                shipping=_address(first, last, "US"),
                payment_method=payment_method,
                payment_method_title=gateway.title if gateway else payment_method,
                items=[self._line(n, t) for n, t in lines],
                total=Decimal(total),
                created=when,
                modified=when,
                paid=when if paid else None,
                transaction_id=("ch_" + secrets.token_hex(8))
                if paid and gateway and gateway.refunds
                else "",
            )
            self.orders[order_id] = record
            return order_id

    def _line(self, name: str, total: str) -> LineItem:
        self._next_id += 1
        return LineItem(
            id=self._next_id,
            name=name,
            product_id=90 + len(self.orders),
            quantity=1,
            total=Decimal(total),
        )

    def add_subscription(
        self,
        customer_id: int,
        total: str,
        *,
        product: str = "Pro plan",
        period: str = "month",
        interval: int = 1,
        status: str = "active",
        days_ago: float = 10,
        trial_days: int = 0,
    ) -> int:
        """A subscription with its parent order, renewing `interval` `period`s after it started."""
        with self._lock:
            parent = self.add_order(
                total, customer_id=customer_id, days_ago=days_ago, items=[(product, total)]
            )
            customer = self.customers[customer_id]
            sub_id = self._new_id()
            start = now() - timedelta(days=days_ago)
            record = OrderRecord(
                id=sub_id,
                kind="shop_subscription",
                number=str(sub_id),
                status=status,
                currency=self.orders[parent].currency,
                customer_id=customer_id,
                billing=dict(self.orders[parent].billing),
                shipping=_address(customer.first_name, customer.last_name, "US"),
                payment_method="stripe",
                payment_method_title=self.gateways["stripe"].title,
                items=[self._line(product, total)],
                total=Decimal(total),
                created=start,
                modified=start,
                paid=start,
                parent_id=parent,
                billing_period=period,
                billing_interval=interval,
                start=start,
                trial_end=start + timedelta(days=trial_days) if trial_days else None,
                next_payment=_after(start, period, interval),
                last_payment=start,
            )
            self.orders[sub_id] = record
            return sub_id

    def touch(self, resource_id: int) -> None:
        """Someone saved the order, subscription or customer just now (`date_modified`)."""
        with self._lock:
            if resource_id in self.orders:
                self.orders[resource_id].modified = now()
            else:
                self.customers[resource_id].modified = now()

    def refund_in_dashboard(
        self, order_id: int, amount: str, *, reason: str = "", api_refund: bool = True
    ) -> int:
        """A refund made by a shop manager in WooCommerce's admin ("Refund via ..." or
        "Refund manually"), outside the REST API."""
        with self._lock:
            refund = self._create_refund(
                self.orders[order_id], Decimal(amount), reason, api_refund, user_id=1, meta=[]
            )
            return refund.id

    # --- webhooks ------------------------------------------------------------------------

    def webhook(
        self,
        topic: str,
        resource_id: int,
        *,
        secret: str | None = None,
        webhook_id: int = 11,
        delivery_id: str | None = None,
        body: bytes | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """One delivery as `WC_Webhook::deliver` sends it: the resource, signed."""
        resource, _, event = topic.partition(".")
        with self._lock:
            if body is None:
                if event == "deleted":
                    payload: Json = {"id": resource_id}
                elif resource in ("order", "subscription"):
                    payload = self.order_json(resource_id)
                elif resource == "customer":
                    payload = self.customer_json(resource_id)
                else:
                    raise ValueError(f"no {resource} payloads here")
                body = php_json(payload)
        digest = hmac.new((secret or self.webhook_secret).encode(), body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.7.0 Hookshot (WordPress/6.7.2)",
            "X-WC-Webhook-Source": f"{self.base_url}/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-WC-Webhook-ID": str(webhook_id),
            "X-WC-Webhook-Delivery-ID": delivery_id or secrets.token_hex(16),
        }
        return body, headers

    def ping(self, webhook_id: int = 11) -> tuple[bytes, dict[str, str]]:
        """What WooCommerce sends when a webhook is saved: a form body, no signature."""
        return f"webhook_id={webhook_id}".encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "WooCommerce/9.7.0 Hookshot (WordPress/6.7.2)",
            "X-WC-Webhook-Source": f"{self.base_url}/",
        }

    # --- JSON views ----------------------------------------------------------------------

    def _money(self, value: Decimal, dp: int | None = None) -> str:
        """`wc_format_decimal( $value, $dp )`: rounded half up to the store's decimals."""
        places = self.decimals if dp is None else dp
        return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))

    def _dates(self, name: str, moment: datetime | None) -> Json:
        if moment is None:
            return {name: None, f"{name}_gmt": None}
        return {
            name: (moment + self.site_offset).strftime("%Y-%m-%dT%H:%M:%S"),
            f"{name}_gmt": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    def _link(self, path: str) -> list[Json]:
        return [{"href": f"{self.base_url}{PREFIX}/{path}"}]

    def customer_json(self, customer_id: int) -> Json:
        c = self.customers[customer_id]
        paying = any(o.customer_id == c.id and o.paid for o in self.orders.values())
        return {
            "id": c.id,
            **self._dates("date_created", c.created),
            **self._dates("date_modified", c.modified or c.created),
            "email": c.email,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "role": c.role,
            "username": c.username,
            "billing": dict(c.billing),
            "shipping": dict(c.shipping),
            "is_paying_customer": paying,
            "avatar_url": "https://secure.gravatar.com/avatar/"
            + hashlib.md5(c.email.encode(), usedforsecurity=False).hexdigest()
            + "?s=96",
            "meta_data": [],
            "_links": {
                "self": self._link(f"customers/{c.id}"),
                "collection": self._link("customers"),
            },
        }

    def order_json(self, order_id: int, dp: int | None = None) -> Json:
        o = self.orders[order_id]
        base = "subscriptions" if o.kind == "shop_subscription" else "orders"
        data: Json = {
            "id": o.id,
            "parent_id": o.parent_id,
            "number": o.number,
            "order_key": o.order_key,
            "created_via": "checkout",
            "version": "9.7.0",
            "status": o.status,
            "currency": o.currency,
            **self._dates("date_created", o.created),
            **self._dates("date_modified", o.modified),
            "discount_total": self._money(Decimal(0), dp),
            "discount_tax": self._money(Decimal(0), dp),
            "shipping_total": self._money(Decimal(0), dp),
            "shipping_tax": self._money(Decimal(0), dp),
            "cart_tax": self._money(Decimal(0), dp),
            "total": self._money(o.total, dp),
            "total_tax": self._money(Decimal(0), dp),
            "prices_include_tax": False,
            "customer_id": o.customer_id,
            "customer_ip_address": "",
            "customer_user_agent": "",
            "customer_note": "",
            "billing": dict(o.billing),
            "shipping": dict(o.shipping),
            "payment_method": o.payment_method,
            "payment_method_title": o.payment_method_title,
            "transaction_id": o.transaction_id,
            **self._dates("date_paid", o.paid),
            **self._dates("date_completed", o.modified if o.status == "completed" else None),
            "cart_hash": "",
            "meta_data": [dict(m) for m in o.meta],
            "line_items": [
                {
                    "id": i.id,
                    "name": i.name,
                    "product_id": i.product_id,
                    "variation_id": 0,
                    "quantity": i.quantity,
                    "tax_class": "",
                    "subtotal": self._money(i.total, dp),
                    "subtotal_tax": self._money(Decimal(0), dp),
                    "total": self._money(i.total, dp),
                    "total_tax": self._money(Decimal(0), dp),
                    "taxes": [],
                    "meta_data": [],
                    "sku": "",
                    "price": float(i.total / i.quantity),
                }
                for i in o.items
            ],
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": [
                {"id": r.id, "reason": r.reason, "total": self._money(-r.amount, dp)}
                for r in sorted(self._refunds_of(o.id), key=lambda r: -r.id)
            ],
            "_links": {"self": self._link(f"{base}/{o.id}"), "collection": self._link(base)},
        }
        if o.customer_id:
            data["_links"]["customer"] = self._link(f"customers/{o.customer_id}")
        if o.kind == "shop_subscription":
            for key in ("transaction_id", "refunds", "cart_hash"):
                data.pop(key)
            gmt = "%Y-%m-%dT%H:%M:%S"
            data |= {
                "billing_period": o.billing_period,
                "billing_interval": str(o.billing_interval),
                "start_date_gmt": o.start.strftime(gmt) if o.start else "",
                "trial_end_date_gmt": o.trial_end.strftime(gmt) if o.trial_end else "",
                "next_payment_date_gmt": o.next_payment.strftime(gmt) if o.next_payment else "",
                "last_payment_date_gmt": o.last_payment.strftime(gmt) if o.last_payment else "",
                "cancelled_date_gmt": o.cancelled.strftime(gmt) if o.cancelled else "",
                "end_date_gmt": o.end.strftime(gmt) if o.end else "",
                "resubscribed_from": "",
                "resubscribed_subscription": "",
                "removed_line_items": [],
            }
        return data

    def refund_json(self, refund_id: int, dp: int | None = None) -> Json:
        r = self.refunds[refund_id]
        path = f"orders/{r.order_id}/refunds"
        return {
            "id": r.id,
            **self._dates("date_created", r.created),
            "amount": self._money(r.amount, dp),
            "reason": r.reason,
            "refunded_by": r.refunded_by,
            "refunded_payment": r.refunded_payment,
            "meta_data": [dict(m) for m in r.meta],
            "line_items": [],
            "shipping_lines": [],
            "tax_lines": [],
            "fee_lines": [],
            "_links": {
                "self": self._link(f"{path}/{r.id}"),
                "collection": self._link(path),
                "up": self._link(f"orders/{r.order_id}"),
            },
        }

    def note_json(self, note_id: int) -> Json:
        n = self.notes[note_id]
        path = f"orders/{n.order_id}/notes"
        return {
            "id": n.id,
            "author": n.author,
            **self._dates("date_created", n.created),
            "note": n.note,
            "customer_note": n.customer_note,
            "_links": {
                "self": self._link(f"{path}/{n.id}"),
                "collection": self._link(path),
                "up": self._link(f"orders/{n.order_id}"),
            },
        }

    # --- money ---------------------------------------------------------------------------

    def _refunds_of(self, order_id: int) -> list[RefundRecord]:
        return [r for r in self.refunds.values() if r.order_id == order_id]

    def refunded(self, order_id: int) -> Decimal:
        return sum((r.amount for r in self._refunds_of(order_id)), Decimal(0))

    def _create_refund(
        self,
        order: OrderRecord,
        amount: Decimal,
        reason: str,
        api_refund: bool,
        *,
        user_id: int,
        meta: list[Json],
    ) -> RefundRecord:
        """`wc_create_refund`, then the REST controller's meta data."""
        remaining = order.total - self.refunded(order.id)
        places = Decimal(1).scaleb(-self.decimals)
        if amount < 0 or amount.quantize(places) > remaining.quantize(places):
            raise _refund_error("Invalid refund amount.")
        if api_refund:
            gateway = self.gateways.get(order.payment_method)
            if gateway is None:
                raise _refund_error("The payment gateway for this order does not exist.")
            if not gateway.refunds:
                raise _refund_error(
                    "The payment gateway for this order does not support automatic refunds."
                )
            if gateway.decline:
                raise _refund_error(gateway.decline)
            self.gateway_refunds.append((order.id, amount))
        refund = RefundRecord(
            id=self._new_id(),
            order_id=order.id,
            amount=amount,
            reason=reason,
            created=now(),
            refunded_by=user_id,
            refunded_payment=api_refund,
        )
        self.refunds[refund.id] = refund
        order.modified = now()
        if self.refunded(order.id) >= order.total:
            self._note(order.id, f"Order status changed from {_title(order.status)} to Refunded.")
            order.status = "refunded"
        if self._die_before_meta:
            self._die_before_meta -= 1
            raise WPError("internal_server_error", _CRITICAL, 500)
        for item in meta:
            self._next_meta += 1
            refund.meta.append(
                {"id": self._next_meta, "key": str(item.get("key")), "value": item.get("value")}
            )
        return refund

    def _note(
        self, order_id: int, text: str, *, customer_note: bool = False, author: str = "system"
    ) -> NoteRecord:
        note = NoteRecord(self._new_id(), order_id, text, customer_note, author, now())
        self.notes[note.id] = note
        return note

    # --- HTTP ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/wp-json/{rest:path}",
                    self._endpoint,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ]
        )

    async def _endpoint(self, request: Request) -> Response:
        return await self._exchange(
            request,
            lambda request, body: self._answer(
                request.method, request.url.path, request.url.query, request.headers, body
            ),
            _failure,
            _response,
        )

    @property
    def https(self) -> bool:
        """Whether the store is served over HTTPS (where WooCommerce takes Basic auth)."""
        return self.base_url.startswith("https://")

    def banner(self) -> list[str]:
        return [
            f"consumer key {self.consumer_key}, consumer secret {self.consumer_secret}, "
            f"webhook secret {self.webhook_secret},",
            f"Try: CHARGEDESK_WOOCOMMERCE__STORE_URL={self.base_url} "
            f"CHARGEDESK_WOOCOMMERCE__CONSUMER_KEY={self.consumer_key} "
            f"CHARGEDESK_WOOCOMMERCE__CONSUMER_SECRET={self.consumer_secret} chargedesk shell",
        ]

    def _answer(self, method: str, path: str, raw_query: str, headers: Any, body: bytes) -> _Answer:
        query = php_query(raw_query)
        form = (
            php_query(body.decode("latin-1"))
            if "x-www-form-urlencoded" in headers.get("content-type", "")
            else {}
        )
        try:
            key = self._authenticate(method, path, query, form, headers)
            if key is not None:
                self._check_key_permissions(key, method)
            handler, args = self._route(method, path)
            if key is None:
                raise _forbidden(method, args)
            payload = self._json_body(body, headers) if method in ("POST", "PUT", "PATCH") else {}
            return handler(key, query, payload, path, *args)
        except WPError as error:
            return _Answer(error.status, error.body())

    # --- authentication (WC_REST_Authentication) -----------------------------------------

    def _authenticate(
        self, method: str, path: str, query: dict[str, Any], form: dict[str, Any], headers: Any
    ) -> ApiKey | None:
        """The key the request authenticates as; None for none; WPError for a failed attempt."""
        error: WPError | None = None
        if self.https:
            key, error = self._basic(query, headers.get("authorization", ""))
            if key is not None:
                return key
        key, oauth_error = self._oauth(method, path, query, form, headers.get("authorization", ""))
        if oauth_error is not None:
            raise oauth_error
        if key is None and error is not None:
            raise error
        return key

    def _basic(self, query: dict[str, Any], header: str) -> tuple[ApiKey | None, WPError | None]:
        consumer_key = consumer_secret = ""
        if not php_empty(query.get("consumer_key")) and not php_empty(query.get("consumer_secret")):
            consumer_key, consumer_secret = (
                str(query["consumer_key"]),
                str(query["consumer_secret"]),
            )
        if not consumer_key and header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except ValueError:
                decoded = ""
            user, _, password = decoded.partition(":")
            if user and password:
                consumer_key, consumer_secret = user, password
        if not consumer_key or not consumer_secret:
            return None, None
        key = self.keys.get(consumer_key)
        if key is None:
            return None, None
        if not hmac.compare_digest(key.consumer_secret.encode(), consumer_secret.encode()):
            return None, WPError(
                "woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401
            )
        return key, None

    def _oauth(
        self, method: str, path: str, query: dict[str, Any], form: dict[str, Any], header: str
    ) -> tuple[ApiKey | None, WPError | None]:
        params: dict[str, Any] = {**query, **form}
        header = header.strip()
        if header:
            params.update(parse_oauth_header(header))
        missing = [name for name in _OAUTH_REQUIRED if php_empty(params.get(name))]
        if len(missing) == len(_OAUTH_REQUIRED):
            return None, None  # not trying OAuth at all
        if missing:
            word = "parameter" if len(missing) == 1 else "parameters"
            return None, WPError(
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth {word} {', '.join(missing)}",
                401,
            )
        key = self.keys.get(str(params["oauth_consumer_key"]))
        if key is None:
            return None, _auth_error("Consumer key is invalid.")
        given = unquote(str(params.pop("oauth_signature")).replace(" ", "+"))
        signing_method = str(params["oauth_signature_method"])
        # The store's home URL, in the scheme of this request: never the Host header.
        base_string = signature_base_string(method, self.base_url + path, params)
        if signing_method not in ("HMAC-SHA1", "HMAC-SHA256"):
            return None, _auth_error("Invalid signature - signature method is invalid.")
        expected = oauth_signature(base_string, key.consumer_secret, signing_method)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return None, _auth_error("Invalid signature - provided signature does not match.")
        try:
            stamp = int(str(params["oauth_timestamp"]))
        except ValueError:
            return None, _auth_error("Invalid timestamp.")
        moment = int(time.time())
        if stamp < moment - OAUTH_WINDOW or stamp > moment + OAUTH_WINDOW:
            return None, _auth_error("Invalid timestamp.")
        nonce = str(params["oauth_nonce"])
        if nonce in key.nonces.values():
            return None, _auth_error("Invalid nonce - nonce has already been used.")
        key.nonces[stamp] = nonce  # by timestamp, as WooCommerce keeps them
        for old in [t for t in key.nonces if t < moment - OAUTH_WINDOW]:
            del key.nonces[old]
        return key, None

    @staticmethod
    def _check_key_permissions(key: ApiKey, method: str) -> None:
        if method in ("GET", "HEAD") and key.permissions not in ("read", "read_write"):
            raise _auth_error("The API key provided does not have read permissions.")
        if method in ("POST", "PUT", "PATCH", "DELETE") and key.permissions not in (
            "write",
            "read_write",
        ):
            raise _auth_error("The API key provided does not have write permissions.")

    # --- routing -------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[Callable[..., _Answer], tuple[Any, ...]]:
        if not path.startswith(PREFIX + "/"):
            raise WPError("rest_no_route", _NO_ROUTE, 404)
        rest = path[len(PREFIX) + 1 :].rstrip("/")
        table: list[tuple[str, str, Callable[..., _Answer], bool]] = [
            ("GET", r"customers", self._list_customers, False),
            ("GET", r"customers/(\d+)", self._get_customer, False),
            ("PUT", r"customers/(\d+)", self._update_customer, False),
            ("GET", r"orders", self._list_orders, False),
            ("GET", r"orders/(\d+)", self._get_order, False),
            ("GET", r"orders/(\d+)/refunds", self._list_refunds, False),
            ("GET", r"refunds", self._list_all_refunds, False),
            ("POST", r"orders/(\d+)/refunds", self._create_refund_endpoint, False),
            ("GET", r"orders/(\d+)/refunds/(\d+)", self._get_refund, False),
            ("GET", r"orders/(\d+)/notes", self._list_notes, False),
            ("POST", r"orders/(\d+)/notes", self._create_note, False),
            ("GET", r"payment_gateways/([\w-]+)", self._get_payment_gateway, False),
            ("GET", r"subscriptions", self._list_subscriptions, True),
            ("GET", r"subscriptions/(\d+)", self._get_subscription, True),
            ("GET", r"subscriptions/(\d+)/orders", self._subscription_orders, True),
            ("PUT", r"subscriptions/(\d+)", self._update_subscription, True),
            ("POST", r"subscriptions/(\d+)", self._update_subscription, True),
            ("PATCH", r"subscriptions/(\d+)", self._update_subscription, True),
        ]
        for verb, pattern, handler, extension in table:
            if extension and not self.subscriptions_enabled:
                continue
            if handler == self._list_all_refunds and not self.refunds_endpoint:
                continue
            found = re.fullmatch(pattern, rest)
            if found and verb == method:
                return handler, tuple(int(g) if g.isdigit() else g for g in found.groups())
        raise WPError("rest_no_route", _NO_ROUTE, 404)

    @staticmethod
    def _json_body(body: bytes, headers: Any) -> Json:
        if not body:
            return {}
        if "json" not in headers.get("content-type", ""):
            return dict(php_query(body.decode("latin-1")))
        try:
            data = json.loads(body)
        except ValueError:
            raise WPError("rest_invalid_json", "Invalid JSON body passed.", 400) from None
        if not isinstance(data, dict):
            return {}
        return data

    # --- paging --------------------------------------------------------------------------

    def _page(
        self, items: list[Any], query: dict[str, Any], path: str, render: Callable[[Any], Json]
    ) -> _Answer:
        per_page = _int_param(query, "per_page", 10, 1, 100)
        page = _int_param(query, "page", 1, 1, None)
        offset = _int_param(query, "offset", 0, 0, None) if "offset" in query else None
        total = len(items)
        pages = math.ceil(total / per_page) if total else 0
        start = offset if offset is not None else (page - 1) * per_page
        shown = [render(i) for i in items[start : start + per_page]]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        links = []
        base = f"{self.base_url}{path}"
        if page > 1:
            links.append(
                f'<{base}?{urlencode({**_flat(query), "page": min(page - 1, max(pages, 1))})}>; rel="prev"'
            )
        if pages > page:
            links.append(f'<{base}?{urlencode({**_flat(query), "page": page + 1})}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return _Answer(200, shown, headers)

    def _dp(self, query: dict[str, Any]) -> int | None:
        return _int_param(query, "dp", self.decimals, 0, None) if "dp" in query else None

    # --- customers -----------------------------------------------------------------------

    def _list_customers(self, key: ApiKey, query: dict[str, Any], body: Json, path: str) -> _Answer:
        role = str(query.get("role") or "customer")
        roles = (
            "all",
            "administrator",
            "editor",
            "author",
            "contributor",
            "subscriber",
            "customer",
            "shop_manager",
        )
        if role not in roles:
            raise invalid_param("role", f"role is not one of {', '.join(roles)}.")
        found = list(self.customers.values())
        if role != "all":
            found = [c for c in found if c.role == role]
        if "email" in query:
            email = str(query["email"])
            if not _EMAIL.match(email):
                raise invalid_param("email", "Invalid email address.", "rest_invalid_email")
            found = [c for c in found if c.email.lower() == email.lower()]
        if not php_empty(query.get("search")):
            found = [c for c in found if _user_matches(c, str(query["search"]).lower())]
        orderby = _choice(query, "orderby", ("name", "id", "include", "registered_date"), "name")
        keys: dict[str, Callable[[CustomerRecord], Any]] = {
            "name": lambda c: (f"{c.first_name} {c.last_name}".lower(), c.id),
            "registered_date": lambda c: (c.created, c.id),
        }
        found.sort(key=keys.get(orderby, lambda c: c.id))
        if _choice(query, "order", ("asc", "desc"), "asc") == "desc":
            found.reverse()
        return self._page(found, query, path, lambda c: self.customer_json(c.id))

    def _get_customer(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, customer_id: int
    ) -> _Answer:
        if customer_id not in self.customers:
            raise WPError("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
        return _Answer(200, self.customer_json(customer_id))

    def _update_customer(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, customer_id: int
    ) -> _Answer:
        """`PUT /customers/{id}`: the names and the billing fields given; others stay."""
        if customer_id not in self.customers:
            raise WPError("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
        c = self.customers[customer_id]
        c.first_name = str(body.get("first_name", c.first_name))
        c.last_name = str(body.get("last_name", c.last_name))
        billing = body.get("billing")
        if isinstance(billing, dict):
            c.billing = {**c.billing, **{k: str(v) for k, v in billing.items()}}
        c.modified = now()
        return _Answer(200, self.customer_json(customer_id))

    # --- orders --------------------------------------------------------------------------

    def _statuses(self, query: dict[str, Any], allowed: tuple[str, ...]) -> set[str] | None:
        raw = query.get("status", "any")
        values = raw if isinstance(raw, list) else [v for v in str(raw).split(",") if v]
        for value in values:
            if value != "any" and value not in allowed:
                raise invalid_param(
                    "status",
                    f"status[{values.index(value)}] is not one of any, {', '.join(allowed)}.",
                )
        return None if "any" in values or not values else set(values)

    def _list_orders(self, key: ApiKey, query: dict[str, Any], body: Json, path: str) -> _Answer:
        statuses = self._statuses(query, ORDER_STATUSES)
        found = [o for o in self.orders.values() if o.kind == "shop_order"]
        found = [o for o in found if (o.status in statuses if statuses else o.status != "trash")]
        if "customer" in query:
            customer = _int_param(query, "customer", 0, 0, None)
            found = [o for o in found if o.customer_id == customer]
        if not php_empty(query.get("search")):
            term = str(query["search"]).lower()
            found = [o for o in found if _matches(o, term)]
        found = self._collection(found, query)
        dp = self._dp(query)
        return self._page(found, query, path, lambda o: self.order_json(o.id, dp))

    def _collection(self, found: list[OrderRecord], query: dict[str, Any]) -> list[OrderRecord]:
        """`WC_REST_CRUD_Controller::prepare_objects_query`'s dates, IDs and ordering."""
        gmt = str(query.get("dates_are_gmt", "")).lower() in ("1", "true")
        shift = timedelta(0) if gmt else self.site_offset
        for name, attr, later in (
            ("after", "created", True),
            ("before", "created", False),
            ("modified_after", "modified", True),
            ("modified_before", "modified", False),
        ):
            if name not in query:
                continue
            bound = _date_param(query, name)
            found = [
                o for o in found
                if ((getattr(o, attr) + shift) > bound if later else (getattr(o, attr) + shift) < bound)
            ]  # fmt: skip
        for name, attr in (("include", "id"), ("parent", "parent_id")):
            if name in query:
                wanted = _ids_param(query, name)
                found = [o for o in found if getattr(o, attr) in wanted]
        orderby = _choice(query, "orderby", ("date", "id", "include", "title", "slug"), "date")
        found.sort(
            key=(lambda o: o.id) if orderby in ("id", "include") else (lambda o: (o.created, o.id))
        )
        if _choice(query, "order", ("asc", "desc"), "desc") == "desc":
            found.reverse()
        return found

    def _order(self, order_id: int) -> OrderRecord:
        order = self.orders.get(order_id)
        if order is None or order.kind != "shop_order":
            raise WPError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        return order

    def _get_order(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, order_id: int
    ) -> _Answer:
        return _Answer(200, self.order_json(self._order(order_id).id, self._dp(query)))

    # --- refunds -------------------------------------------------------------------------

    def _list_refunds(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, order_id: int
    ) -> _Answer:
        order = self._order(order_id)
        found = sorted(self._refunds_of(order.id), key=lambda r: (r.created, r.id), reverse=True)
        dp = self._dp(query)
        return self._page(found, query, path, lambda r: self.refund_json(r.id, dp))

    def _list_all_refunds(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str
    ) -> _Answer:
        """`GET /refunds`: every order's refunds, newest first, each with `parent_id`."""
        found = list(self.refunds.values())
        if "include" in query:
            wanted = _ids_param(query, "include")
            found = [r for r in found if r.id in wanted]
        if "parent" in query:
            parents = _ids_param(query, "parent")
            found = [r for r in found if r.order_id in parents]
        found.sort(key=lambda r: (r.created, r.id), reverse=True)
        dp = self._dp(query)
        return self._page(
            found, query, path, lambda r: {"id": r.id, "parent_id": r.order_id}
            | {k: v for k, v in self.refund_json(r.id, dp).items() if k != "id"},
        )  # fmt: skip

    def _get_refund(
        self,
        key: ApiKey,
        query: dict[str, Any],
        body: Json,
        path: str,
        order_id: int,
        refund_id: int,
    ) -> _Answer:
        if order_id not in self.orders:
            raise WPError("woocommerce_rest_invalid_order_id", "Invalid order ID.", 500, 404)
        refund = self.refunds.get(refund_id)
        if refund is None or refund.order_id != order_id:
            raise WPError(
                "woocommerce_rest_invalid_order_refund_id", "Invalid order refund ID.", 500, 404
            )
        return _Answer(200, self.refund_json(refund_id, self._dp(query)))

    def _create_refund_endpoint(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, order_id: int
    ) -> _Answer:
        for name, kind in (
            ("amount", str),
            ("reason", str),
            ("api_refund", bool),
            ("api_restock", bool),
            ("meta_data", list),
            ("line_items", list),
        ):
            if name in body and body[name] is not None and not isinstance(body[name], kind):
                type_name = {str: "string", bool: "boolean", list: "array"}[kind]
                raise invalid_param(
                    name, f"{name} is not of type {type_name}.", "rest_invalid_type"
                )
        order = self.orders.get(order_id)
        if order is None or order.kind != "shop_order":
            raise WPError("woocommerce_rest_invalid_order_id", "Invalid order ID.", 500, 404)
        if self._races:
            self._create_refund(order, self._races.pop(0), "", True, user_id=1, meta=[])
        amount = decimal_of(body.get("amount") or "0")
        if amount is None:
            # PHP 8 compares a non-numeric string with the remaining amount as text: refused.
            raise _refund_error("Invalid refund amount.")
        if amount < 0:
            raise WPError(
                "woocommerce_rest_invalid_order_refund",
                "Refund amount must be greater than zero.",
                500,
                400,
            )
        api_refund = body.get("api_refund")
        meta = [m for m in body.get("meta_data") or [] if isinstance(m, dict) and "key" in m]
        refund = self._create_refund(
            order,
            amount,
            str(body.get("reason") or ""),
            api_refund if isinstance(api_refund, bool) else True,
            user_id=key.user_id,
            meta=meta,
        )
        headers = {"Location": f"{self.base_url}{path}/{refund.id}"}
        return _Answer(201, self.refund_json(refund.id, self._dp(query)), headers)

    # --- notes ---------------------------------------------------------------------------

    def _list_notes(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, order_id: int
    ) -> _Answer:
        order = self.orders.get(order_id)
        if order is None or order.kind != "shop_order":
            raise WPError("woocommerce_rest_order_invalid_id", "Invalid order ID.", 404)
        kind = str(query.get("type") or "any")
        found = [n for n in self.notes.values() if n.order_id == order_id]
        if kind == "customer":
            found = [n for n in found if n.customer_note]
        elif kind == "internal":
            found = [n for n in found if not n.customer_note]
        found.sort(key=lambda n: (n.created, n.id), reverse=True)
        return _Answer(200, [self.note_json(n.id) for n in found])

    def _create_note(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, order_id: int
    ) -> _Answer:
        order = self.orders.get(order_id)
        if order is None:
            raise WPError("woocommerce_rest_order_invalid_id", "Invalid order ID.", 404)
        if php_empty(body.get("note")):
            raise WPError(
                "rest_missing_callback_param",
                "Missing parameter(s): note",
                400,
                {"status": 400, "params": ["note"]},
            )
        by_user = body.get("added_by_user") is True
        note = self._note(
            order_id,
            str(body["note"]),
            customer_note=body.get("customer_note") is True,
            author="admin" if by_user else "system",
        )
        return _Answer(
            201, self.note_json(note.id), {"Location": f"{self.base_url}{path}/{note.id}"}
        )

    # --- payment gateways ----------------------------------------------------------------

    def _get_payment_gateway(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, gateway_id: str
    ) -> _Answer:
        if not key.manager:  # wc_rest_check_manager_permissions, for a logged-in user: 403
            raise WPError(
                "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.", 403
            )
        gateway = self.gateways.get(str(gateway_id))
        if gateway is None:
            raise WPError(
                "woocommerce_rest_payment_gateway_invalid", "Resource does not exist.", 404
            )
        return _Answer(
            200,
            {
                "id": gateway.id,
                "title": gateway.title,
                "description": "",
                "order": "",
                "enabled": True,
                "method_title": gateway.title,
                "method_description": "",
                "method_supports": ["products", "refunds"] if gateway.refunds else ["products"],
                "settings": {},
                "_links": {
                    "self": self._link(f"payment_gateways/{gateway.id}"),
                    "collection": self._link("payment_gateways"),
                },
            },
        )

    # --- subscriptions (WooCommerce Subscriptions) --------------------------------------

    def _subscription(self, subscription_id: int) -> OrderRecord:
        sub = self.orders.get(subscription_id)
        if sub is None or sub.kind != "shop_subscription":
            raise WPError("woocommerce_rest_shop_subscription_invalid_id", "Invalid ID.", 404)
        return sub

    def _list_subscriptions(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str
    ) -> _Answer:
        statuses = self._statuses(query, SUBSCRIPTION_STATUSES)
        found = [o for o in self.orders.values() if o.kind == "shop_subscription"]
        if statuses:
            found = [o for o in found if o.status in statuses]
        if "customer" in query:
            customer = _int_param(query, "customer", 0, 0, None)
            found = [o for o in found if o.customer_id == customer]
        found = self._collection(found, query)
        dp = self._dp(query)
        return self._page(found, query, path, lambda o: self.order_json(o.id, dp))

    def _get_subscription(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, subscription_id: int
    ) -> _Answer:
        return _Answer(
            200, self.order_json(self._subscription(subscription_id).id, self._dp(query))
        )

    def _subscription_orders(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, subscription_id: int
    ) -> _Answer:
        """The subscription's related orders (here its parent order), newest first."""
        sub = self._subscription(subscription_id)
        related = [o for o in self.orders.values() if o.id == sub.parent_id]
        related.sort(key=lambda o: (o.created, o.id), reverse=True)
        dp = self._dp(query)
        return _Answer(200, [self.order_json(o.id, dp) for o in related])

    def _update_subscription(
        self, key: ApiKey, query: dict[str, Any], body: Json, path: str, subscription_id: int
    ) -> _Answer:
        sub = self._subscription(subscription_id)
        for name in ("status", "transition_status"):
            value = body.get(name)
            if value is not None and value not in SUBSCRIPTION_STATUSES:
                raise invalid_param(
                    name, f"{name} is not one of {', '.join(SUBSCRIPTION_STATUSES)}."
                )
        if body.get("transition_status"):
            self._transition(sub, str(body["transition_status"]))
        elif body.get("status"):
            sub.status = str(body["status"])  # `set_status`: no hooks, no dates
        sub.modified = now()
        return _Answer(200, self.order_json(sub.id, self._dp(query)))

    def _transition(self, sub: OrderRecord, status: str) -> None:
        """`WC_Subscription::update_status`, for the moves ChargeDesk makes."""
        ended = ("cancelled", "trash", "expired", "switched", "pending-cancel")
        moment, before = now(), sub.status
        gateway = self.gateways.get(sub.payment_method)
        if status in ("cancelled", "pending-cancel") and (gateway is None or not gateway.cancels):
            raise WPError("internal_server_error", _CRITICAL, 500, {"status": 500})
        if status == "cancelled" and (sub.status == "pending-cancel" or sub.status not in ended):
            sub.status, sub.cancelled, sub.end, sub.next_payment = "cancelled", moment, moment, None
        elif status == "pending-cancel" and sub.status == "active":
            sub.status, sub.cancelled = "pending-cancel", moment
            sub.end, sub.next_payment = sub.next_payment or moment, None
        elif (sub.status, status) in (("active", "on-hold"), ("on-hold", "active")):
            sub.status = status  # suspend, reactivate: the schedule stays as it was
        elif status == sub.status:
            return
        else:
            # update_status throws a plain Exception the REST controller does not catch:
            # WordPress's fatal error handler answers.
            raise WPError("internal_server_error", _CRITICAL, 500, {"status": 500})
        self._note(sub.id, f"Status changed from {_title(before)} to {_title(status)}.")


def _response(answer: _Answer) -> Response:
    raw = isinstance(answer.body, bytes)
    return Response(
        answer.body if raw else php_json(answer.body),
        status_code=answer.status,
        headers=answer.headers,
        media_type="text/html; charset=UTF-8" if raw else "application/json; charset=UTF-8",
    )


def _auth_error(message: str) -> WPError:
    return WPError("woocommerce_rest_authentication_error", message, 401)


def _forbidden(method: str, args: tuple[Any, ...]) -> WPError:
    """The permission callback's answer to a request without a user (401: not logged in)."""
    if method == "GET":
        message = (
            "Sorry, you cannot view this resource." if args else "Sorry, you cannot list resources."
        )
        return WPError("woocommerce_rest_cannot_view", message, 401)
    if method == "POST" and len(args) <= 1:
        return WPError(
            "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.", 401
        )
    return WPError(
        "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.", 401
    )


def _failure(status: int) -> _Answer:
    if status == 200:  # a cache or security plugin answering in WordPress's place
        return _Answer(200, b"<!DOCTYPE html><html><body><h1>Just a moment...</h1></body></html>")
    if status == 429:
        return _Answer(
            429, b"<html><body><h1>429 Too Many Requests</h1></body></html>", {"Retry-After": "1"}
        )
    if status in (502, 503, 504):
        return _Answer(
            status, f"<html><body><h1>{status} Service Unavailable</h1></body></html>".encode()
        )
    return _Answer(
        status,
        {
            "code": "internal_server_error",
            "message": _CRITICAL,
            "data": {"status": status},
            "additional_errors": [],
        },
    )


def _int_param(query: dict[str, Any], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise invalid_param(name, f"{name} is not of type integer.", "rest_invalid_type") from None
    if value < low or (high is not None and value > high):
        bound = (
            f"between {low} (inclusive) and {high} (inclusive)"
            if high is not None
            else f"greater than or equal to {low}"
        )
        raise invalid_param(name, f"{name} must be {bound}")
    return value


def _choice(query: dict[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    value = str(query.get(name) or default)
    if value not in options:
        raise invalid_param(name, f"{name} is not one of {', '.join(options)}.")
    return value


def _ids_param(query: dict[str, Any], name: str) -> set[int]:
    """An array of IDs as WordPress reads it: `include[]=1&include[]=2` or `include=1,2`."""
    raw = query.get(name)
    values = raw if isinstance(raw, list) else str(raw or "").split(",")
    try:
        return {int(str(v).strip()) for v in values if str(v).strip()}
    except ValueError:
        raise invalid_param(
            name, f"{name}[0] is not of type integer.", "rest_invalid_type"
        ) from None


def _date_param(query: dict[str, Any], name: str) -> datetime:
    """`rest_parse_date`: RFC 3339, the offset optional; compared at whole seconds as MySQL
    holds them (a value without offset is in the timezone the column is)."""
    text = str(query.get(name) or "")
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:\d{2})?)?", text
    ):
        raise invalid_param(name, "Invalid date.")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=UTC, microsecond=0)


def _flat(query: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in query.items() if isinstance(v, str)}


def _user_matches(customer: CustomerRecord, term: str) -> bool:
    """`WP_User_Query` searching `*term*` as the customers endpoint asks it: with an @ the
    e-mail only; otherwise the login, e-mail and display name (WooCommerce sets it to the
    first and last name)."""
    if "@" in term:
        return term in customer.email.lower()
    names = (customer.username, customer.email, f"{customer.first_name} {customer.last_name}")
    return any(term in value.lower() for value in names)


def _matches(order: OrderRecord, term: str) -> bool:
    """`wc_order_search`: the address indexes (e-mail and phone included), item names, the ID,
    and the order number (as Sequential Order Numbers adds it)."""
    fields = [*order.billing.values(), *order.shipping.values(), *(i.name for i in order.items)]
    if any(term in str(value).lower() for value in fields):
        return True
    return term == str(order.id) or term == order.number.lower()


def _address(first: str, last: str, country: str) -> Json:
    return {
        "first_name": first, "last_name": last, "company": "", "address_1": "969 Market",
        "address_2": "", "city": "San Francisco", "state": "CA", "postcode": "94103",
        "country": country,
    }  # fmt: skip


def _after(start: datetime, period: str, interval: int) -> datetime:
    days = {"day": 1, "week": 7, "month": 30, "year": 365}[period]
    moment = start + timedelta(days=days * interval)
    while moment < now():
        moment += timedelta(days=days * interval)
    return moment


def _title(status: str) -> str:
    return status.replace("-", " ").capitalize()


def woocommerce_api(
    *, certfile: Path | None = None, keyfile: Path | None = None, **options: Any
) -> AbstractContextManager[WooCommerceEmulator]:
    """Run an emulated store on 127.0.0.1 with a free port, in a background thread (over
    HTTPS when given a certificate and its key)."""
    return running(WooCommerceEmulator(**options), certfile=certfile, keyfile=keyfile)


def main(argv: list[str] | None = None) -> None:
    """Serve an empty store over plain HTTP (OAuth 1.0a) until interrupted; prints the
    settings that point the bot at it."""
    command(WooCommerceEmulator(), argv)


if __name__ == "__main__":
    main()
