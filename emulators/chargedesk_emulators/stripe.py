"""A stateful Stripe API emulator at the HTTP level, driven by the real stripe SDK.

A Starlette app served by uvicorn in a background thread on 127.0.0.1 (port 0
unless told). It reads what the SDK sends (Bearer auth, form-encoded bodies
with `items[0][price]=...` keys, `Idempotency-Key`) and answers with objects
built from Stripe's own example objects (data/stripe/fixtures.json, MIT, see
the LICENSE beside it); test_stripe_api.py holds every answer to those
fixtures' keys and JSON types, so the emulator cannot drift from Stripe's shapes.
Unknown parameters are refused like Stripe does, so the gateway cannot drift either.

It covers what localstripe lacks: customer search, refund limits with Stripe's
own errors, idempotent replays (`Idempotent-Replayed: true`) and
`idempotency_error`, manual capture (partial) and cancel of payment intents,
subscriptions (create with a price, cancel now or at period end, discounts),
disputes, coupons and promotion codes, tax IDs, invoice finalize and send with
PDF links, Billing Portal sessions with a page to open (or Stripe's refusal
when the portal was never configured), signed webhook deliveries, and faults
on demand (fail, lose the answer to, or delay the next requests).

Standalone, for the shell demo:
    python -m chargedesk_emulators.stripe --port 12111 --seed
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from babel.numbers import format_currency
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from chargedesk_emulators.multipart import parse_form
from chargedesk_emulators.serve import ServerThread, wait_for_interrupt

FIXTURES_PATH = Path(__file__).parent / "data" / "stripe" / "fixtures.json"
API_VERSION = "2026-10-28.endive"
DEFAULT_API_KEY = "sk_test_chargedesk_emulator"

# The emulator keeps its own table, written from docs.stripe.com/currencies, so
# that it checks the gateway's conversion instead of sharing it.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

# Stripe's test payment methods this emulator knows, by what they do.
DECLINING_CARDS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"})
# Declined with a decline code of their own; and a card whose bank always wants 3-D Secure.
DECLINE_CODES = {"pm_card_visa_chargeDeclinedInsufficientFunds": "insufficient_funds"}
AUTHENTICATING_CARDS = frozenset({"pm_card_authenticationRequired"})
DISPUTING_CARDS = frozenset({"pm_card_createDispute"})

REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
# Dispute evidence fields that name an uploaded file, and what a file may be uploaded for.
DISPUTE_FILE_FIELDS = frozenset({
    "cancellation_policy", "customer_communication", "customer_signature",
    "duplicate_charge_documentation", "receipt", "refund_policy", "service_documentation",
    "shipping_documentation", "uncategorized_file",
})  # fmt: skip
FILE_PURPOSES = frozenset({"dispute_evidence", "identity_document", "additional_verification",
                           "business_icon", "business_logo", "customer_signature"})  # fmt: skip
CANCELABLE_INTENTS = frozenset(
    {
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    }
)
TAX_ID_FORMATS = {
    "eu_vat": r"(AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)[0-9A-Z]{2,13}",
    "gb_vat": r"GB\d{9}(\d{3})?",
    "au_abn": r"\d{11}",
    "ch_vat": r"CHE-?\d{3}\.?\d{3}\.?\d{3} ?(MWST|TVA|IVA)",
    "no_vat": r"\d{9}MVA",
    "nz_gst": r"\d{8,9}",
    "us_ein": r"\d{2}-\d{7}",
    "ca_bn": r"\d{9}",
}
LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand"})
# What Stripe answers a portal session before the account saved its portal settings.
PORTAL_NOT_CONFIGURED = (
    "You can’t create a portal session in test mode until you save your customer portal "
    "settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
)


def new_id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{prefix}_{''.join(secrets.choice(alphabet) for _ in range(24))}"


def load_fixtures() -> dict[str, dict[str, Any]]:
    return json.loads(FIXTURES_PATH.read_text())["resources"]


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A `Stripe-Signature` header: `t=<time>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def format_amount(value: int, currency: str) -> str:
    """What Stripe prints in messages: `€150.00`, `¥500`."""
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return format_currency(Decimal(value).scaleb(-digits), currency.upper(), locale="en_US")


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`items[0][price]=p&expand[0]=x` into `{"items": [{"price": "p"}], "expand": ["x"]}`."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node = root
        for depth, part in enumerate(path):
            name = part or str(len(node))  # `a[]=x` appends
            if depth == len(path) - 1:
                node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = node[name] = {}
                node = child
    return _listify(root)


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if value and all(k.isdigit() for k in value):
        return [_listify(value[k]) for k in sorted(value, key=int)]
    return {k: _listify(v) for k, v in value.items()}


class ApiError(Exception):
    """An error answer, shaped like Stripe's `{"error": {...}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "type": kind}
        if code is not None:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.body["param"] = param
        self.body.update(extra)

    def payload(self) -> dict[str, Any]:
        return {"error": dict(self.body)}


def missing(kind: str, object_id: str, param: str = "id") -> ApiError:
    return ApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


# --- parameters --------------------------------------------------------------------------


def _allowed(params: dict[str, Any], allowed: frozenset[str] | set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise ApiError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def _str(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    if not isinstance(value, str):
        raise ApiError(
            400, f"Invalid string: {value!r}", code="parameter_invalid_string", param=name
        )
    return value


def _int(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    raw = _str(params, name, required=required)
    if raw is None:
        return None
    if not re.fullmatch(r"-?\d+", raw):
        raise ApiError(400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def _positive(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = _int(params, name, required=required)
    if value is not None and value <= 0:
        raise ApiError(
            400,
            "This value must be greater than or equal to 1.",
            code="parameter_invalid_integer",
            param=name,
        )
    return value


def _bool(params: dict[str, Any], name: str) -> bool | None:
    raw = _str(params, name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiError(400, f"Invalid boolean: {raw}", code="parameter_invalid_boolean", param=name)
    return raw == "true"


def _float(params: dict[str, Any], name: str) -> float | None:
    raw = _str(params, name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ApiError(
            400, f"Invalid decimal: {raw}", code="parameter_invalid_decimal", param=name
        ) from None


def _dict(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"Invalid object: {name}", param=name)
    return value


def _items(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"Invalid array: {name}", param=name)
    return value


def _currency(params: dict[str, Any], name: str = "currency") -> str:
    value = _str(params, name, required=True) or ""
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ApiError(
            400, f"Invalid currency: {value}", code="parameter_invalid_string", param=name
        )
    return value.lower()


def _merge_metadata(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Stripe merges metadata keys; an empty value deletes its key."""
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        elif len(str(value)) > 500:
            raise ApiError(
                400,
                f"Metadata values can have up to 500 characters, but you passed in a value that is {len(str(value))} characters.",
                param=f"metadata[{key}]",
            )
        else:
            merged[key] = str(value)
    return merged


# --- requests, faults --------------------------------------------------------------------


@dataclass
class Fault:
    status: int | None  # None: only a delay
    after: bool = False  # run the request, then answer with the failure (a lost answer)
    delay: float = 0.0
    path: str | None = None  # only requests whose path starts with this


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int = 0
    replayed: bool = False


@dataclass
class _Saved:
    method: str
    path: str
    params: str
    status: int
    body: dict[str, Any]
    request_id: str


@dataclass
class _Context:
    request_id: str | None = None
    idempotency_key: str | None = None


Handler = Callable[..., dict[str, Any]]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    allowed: frozenset[str] = field(default_factory=frozenset)


# --- the emulator ------------------------------------------------------------------------


class StripeEmulator:
    """State, HTTP app, seeding methods and fault injection; one per test or demo."""

    def __init__(
        self,
        api_key: str | None = DEFAULT_API_KEY,
        *,
        search: bool = True,
        search_lag: float = 0.0,
        billing_portal: bool = True,
    ) -> None:
        self.api_key = api_key  # None: any sk_test_/rk_test_ key will do (the demo)
        self.search = search  # False: /v1/customers/search is missing, like some accounts
        self.search_lag = search_lag  # seconds before a new customer shows up in search
        # False: the account never saved its customer portal settings, so sessions are refused.
        self.billing_portal = billing_portal
        self.portal_configuration = new_id("bpc")  # the account's default portal configuration
        self.portal_card_updates: list[str] = []  # customers who saved a card on a portal page
        self.url = ""
        self.requests: list[Recorded] = []
        self.events: list[dict[str, Any]] = []
        self.sent_invoices: list[str] = []
        self.file_contents: dict[str, bytes] = {}  # uploaded file ID -> the bytes sent
        self._uploads: dict[str, tuple[str, bytes]] = {}  # sha256 -> (filename, bytes)
        self._fixtures = load_fixtures()
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._order: dict[str, int] = {}
        self._counter = itertools.count()
        self._saved: dict[str, _Saved] = {}
        self._faults: list[Fault] = []
        self._context = _Context()
        self._server: ServerThread | None = None
        self._routes = self._route_table()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = ServerThread(self.app(), "Stripe emulator", host=host, port=port)
        self.url = self._server.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> StripeEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()
            self._order.clear()
            self._saved.clear()
            self._faults.clear()
            self.requests.clear()
            self.events.clear()
            self.sent_invoices.clear()
            self.portal_card_updates.clear()
            self.file_contents.clear()
            self._uploads.clear()

    # --- faults ----------------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, status: int = 500, *, after: bool = False, path: str | None = None
    ) -> None:
        """Answer the next `count` requests (under `path`) with `status`; `after`: run them first."""
        with self._lock:
            self._faults.extend(Fault(status, after=after, path=path) for _ in range(count))

    def delay_next(self, seconds: float, count: int = 1, *, path: str | None = None) -> None:
        """Hold the next `count` requests for `seconds` before running them."""
        with self._lock:
            self._faults.extend(Fault(None, delay=seconds, path=path) for _ in range(count))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.path is None or path.startswith(fault.path):
                    return self._faults.pop(index)
        return None

    # --- HTTP ------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/_emulator/invoices/{invoice_id}/pdf", self._invoice_pdf),
                Route("/_emulator/invoices/{invoice_id}", self._invoice_page),
                Route(
                    "/_emulator/billing_portal/session/{secret}",
                    self._portal_page,
                    methods=["GET", "POST"],
                ),
                Route("/{path:path}", self._endpoint, methods=["GET", "POST", "DELETE"]),
            ]
        )

    async def _endpoint(self, request: Request) -> Response:
        request_id = new_id("req")
        path = request.url.path
        method = request.method
        key = request.headers.get("idempotency-key")
        content_type = request.headers.get("content-type", "")
        if method == "POST" and content_type.startswith("multipart/form-data"):
            pairs = self._form_pairs(content_type, await request.body())  # a file upload
        elif method == "POST":
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        else:
            pairs = parse_qsl(request.url.query, keep_blank_values=True)
        params = unflatten(pairs)
        record = Recorded(method, path, params, key)
        with self._lock:
            self.requests.append(record)
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if key and method == "POST":
            headers["Idempotency-Key"] = key

        def answer(
            status: int, body: dict[str, Any], extra: dict[str, str] | None = None
        ) -> Response:
            record.status = status
            return JSONResponse(body, status_code=status, headers={**headers, **(extra or {})})

        denied = self._authenticate(request.headers.get("authorization", ""))
        if denied is not None:
            return answer(denied.status, denied.payload())
        fault = self._take_fault(path)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None and not fault.after:
            return answer(fault.status, _fault_body(fault.status))
        with self._lock:
            saved = self._saved.get(key) if key and method == "POST" else None
            canonical = json.dumps(params, sort_keys=True)
            if saved is not None:
                if (saved.method, saved.path) != (method, path):
                    error = ApiError(
                        400,
                        f"Keys for idempotent requests can only be used for the same endpoint they were first used for ('{saved.method} {saved.path}' vs '{method} {path}'). Try using a key other than '{key}' if you meant to execute a different request.",
                        kind="idempotency_error",
                    )
                    return answer(400, error.payload())
                if saved.params != canonical:
                    error = ApiError(
                        400,
                        f"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request.",
                        kind="idempotency_error",
                    )
                    return answer(400, error.payload())
                record.replayed = True
                return answer(
                    saved.status,
                    saved.body,
                    {"Idempotent-Replayed": "true", "Original-Request": saved.request_id},
                )
            status, body = self._dispatch(method, path, params, request_id, key)
            # Stripe keeps the result of whatever ran, but not of a request that
            # failed validation before running.
            invalid = str(body.get("error", {}).get("code", "")).startswith("parameter_")
            if key and method == "POST" and not invalid:
                self._saved[key] = _Saved(method, path, canonical, status, body, request_id)
        if fault is not None and fault.status is not None:
            return answer(fault.status, _fault_body(fault.status))
        return answer(status, body)

    def _authenticate(self, header: str) -> ApiError | None:
        scheme, _, key = header.partition(" ")
        if scheme != "Bearer" or not key:
            return ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        good = key == self.api_key if self.api_key else key.startswith(("sk_test_", "rk_test_"))
        if not good:
            return ApiError(401, f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}")
        return None

    def _dispatch(
        self, method: str, path: str, params: dict[str, Any], request_id: str, key: str | None
    ) -> tuple[int, dict[str, Any]]:
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if route.method != method or match is None:
                continue
            self._context = _Context(request_id, key if method == "POST" else None)
            try:
                if route.allowed:
                    _allowed(params, route.allowed)
                return 200, route.handler(params, *match.groups())
            except ApiError as exc:
                return exc.status, exc.payload()
            finally:
                self._context = _Context()
        error = ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )
        return 404, error.payload()

    def _route_table(self) -> list[_Route]:
        """Method, path, handler and the parameters it takes (a list's paging ones: `+list`)."""
        h = self
        table: list[tuple[str, str, Handler, str]] = [
            ("GET", "/v1/customers/search", h._h_search_customers, "query limit page"),
            ("GET", "/v1/customers", h._h_list_customers, "+list email created"),
            ("POST", "/v1/customers", h._h_create_customer, "email name description metadata "
             "payment_method invoice_settings phone"),
            ("GET", "/v1/customers/{id}", h._h_get_customer, ""),
            ("POST", "/v1/customers/{id}", h._h_update_customer, "email name description "
             "metadata invoice_settings phone address"),
            ("DELETE", "/v1/customers/{id}", h._h_delete_customer, ""),
            ("DELETE", "/v1/customers/{id}/discount", h._h_delete_customer_discount, ""),
            ("GET", "/v1/customers/{id}/tax_ids", h._h_list_tax_ids, "+list"),
            ("POST", "/v1/customers/{id}/tax_ids", h._h_create_tax_id, "type value"),
            ("GET", "/v1/customers/{id}/tax_ids/{id}", h._h_get_tax_id, ""),
            ("DELETE", "/v1/customers/{id}/tax_ids/{id}", h._h_delete_tax_id, ""),
            ("GET", "/v1/charges", h._h_list_charges, "+list customer payment_intent created"),
            ("GET", "/v1/charges/{id}", h._h_get_charge, ""),
            ("POST", "/v1/charges/{id}/capture", h._h_capture_charge, "amount"),
            ("GET", "/v1/payment_intents", h._h_list_intents, "+list customer"),
            ("POST", "/v1/payment_intents", h._h_create_intent, "amount currency customer "
             "payment_method capture_method confirm metadata description payment_method_types "
             "off_session"),
            ("GET", "/v1/payment_intents/{id}", h._h_get_intent, ""),
            ("POST", "/v1/payment_intents/{id}/capture", h._h_capture_intent,
             "amount_to_capture metadata"),
            ("POST", "/v1/payment_intents/{id}/cancel", h._h_cancel_intent, "cancellation_reason"),
            ("GET", "/v1/refunds", h._h_list_refunds, "+list charge payment_intent"),
            ("POST", "/v1/refunds", h._h_create_refund, "charge payment_intent amount reason "
             "metadata"),
            ("GET", "/v1/refunds/{id}", h._h_get_refund, ""),
            ("GET", "/v1/disputes", h._h_list_disputes, "+list charge payment_intent"),
            ("GET", "/v1/disputes/{id}", h._h_get_dispute, ""),
            ("POST", "/v1/disputes/{id}", h._h_update_dispute, "evidence metadata submit"),
            ("POST", "/v1/disputes/{id}/close", h._h_close_dispute, ""),
            ("POST", "/v1/files", h._h_create_file, "file purpose file_link_data"),
            ("POST", "/v1/coupons", h._h_create_coupon, "id name percent_off amount_off currency "
             "duration duration_in_months max_redemptions metadata"),
            ("GET", "/v1/coupons/{id}", h._h_get_coupon, ""),
            ("DELETE", "/v1/subscriptions/{id}/discount", h._h_delete_subscription_discount, ""),
            ("GET", "/v1/promotion_codes", h._h_list_promotion_codes, "+list code active coupon "
             "customer"),
            ("POST", "/v1/promotion_codes", h._h_create_promotion_code, "code promotion coupon "
             "active metadata"),
            ("GET", "/v1/promotion_codes/{id}", h._h_get_promotion_code, ""),
            ("POST", "/v1/products", h._h_create_product, "name description metadata"),
            ("POST", "/v1/prices", h._h_create_price, "product product_data unit_amount currency "
             "recurring nickname lookup_key metadata"),
            ("GET", "/v1/prices/{id}", h._h_get_price, ""),
            ("GET", "/v1/subscriptions", h._h_list_subscriptions, "+list customer status price"),
            ("POST", "/v1/subscriptions", h._h_create_subscription, "customer items discounts "
             "metadata payment_behavior collection_method days_until_due trial_period_days"),
            ("GET", "/v1/subscriptions/{id}", h._h_get_subscription, ""),
            ("POST", "/v1/subscriptions/{id}", h._h_update_subscription, "cancel_at_period_end "
             "cancellation_details metadata discounts items proration_behavior proration_date "
             "payment_behavior pause_collection"),
            ("POST", "/v1/invoices/create_preview", h._h_preview_invoice, "customer subscription "
             "subscription_details"),
            ("POST", "/v1/subscription_schedules", h._h_create_schedule, "from_subscription "
             "metadata"),
            ("GET", "/v1/subscription_schedules/{id}", h._h_get_schedule, ""),
            ("POST", "/v1/subscription_schedules/{id}", h._h_update_schedule, "phases "
             "end_behavior metadata proration_behavior"),
            ("POST", "/v1/subscription_schedules/{id}/release", h._h_release_schedule,
             "preserve_cancel_date"),
            ("DELETE", "/v1/subscriptions/{id}", h._h_cancel_subscription, "cancellation_details "
             "invoice_now prorate"),
            ("GET", "/v1/invoices/search", h._h_search_invoices, "query limit page"),
            ("GET", "/v1/invoices", h._h_list_invoices, "+list customer subscription status"),
            ("POST", "/v1/invoices", h._h_create_invoice, "customer collection_method "
             "days_until_due auto_advance description metadata pending_invoice_items_behavior "
             "currency"),
            ("GET", "/v1/invoices/{id}", h._h_get_invoice, ""),
            ("GET", "/v1/invoice_payments", h._h_list_invoice_payments, "+list invoice"),
            ("POST", "/v1/invoices/{id}/finalize", h._h_finalize_invoice, "auto_advance"),
            ("POST", "/v1/invoices/{id}/send", h._h_send_invoice, ""),
            ("POST", "/v1/invoiceitems", h._h_create_invoice_item, "customer amount currency "
             "description invoice metadata"),
            ("GET", "/v1/customers/{id}/payment_methods", h._h_list_payment_methods, "+list type"),
            ("POST", "/v1/checkout/sessions", h._h_create_checkout_session, "mode customer "
             "line_items metadata payment_intent_data success_url cancel_url expires_at "
             "client_reference_id"),
            ("GET", "/v1/checkout/sessions/{id}", h._h_get_checkout_session, ""),
            ("POST", "/v1/checkout/sessions/{id}/expire", h._h_expire_checkout_session, ""),
            ("POST", "/v1/billing_portal/sessions", h._h_create_portal_session, "customer "
             "return_url configuration locale"),
            ("GET", "/v1/events", h._h_list_events, "+list type"),
            ("GET", "/v1/events/{id}", h._h_get_event, ""),
        ]  # fmt: skip
        routes = []
        for method, path, handler, names in table:
            allowed = set(names.split()) | {"expand"}
            if "+list" in allowed:
                allowed = (allowed - {"+list"}) | LIST_PARAMS
            pattern = re.compile(path.replace("{id}", r"([^/]+)"))
            routes.append(_Route(method, pattern, handler, frozenset(allowed)))
        return routes

    # --- objects ---------------------------------------------------------------------------

    def _new(
        self, kind: str, prefix: str | None, object_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """An object from Stripe's example of its kind, with our fields set (known keys only)."""
        obj = copy.deepcopy(self._fixtures[kind])
        for name in fields:
            if not name.startswith("_") and name not in obj:
                raise KeyError(f"Stripe's {kind} has no field {name!r}")
        obj.update(fields)
        obj["id"] = object_id or new_id(prefix or kind)
        if "created" in obj and "created" not in fields:
            obj["created"] = int(time.time())
        if "livemode" in obj:
            obj["livemode"] = False
        if "metadata" in obj and "metadata" not in fields:
            obj["metadata"] = {}
        self._objects[obj["id"]] = obj
        self._order[obj["id"]] = next(self._counter)
        return obj

    def _get(self, object_id: str, kind: str, param: str = "id") -> dict[str, Any]:
        obj = self._objects.get(object_id)
        if obj is None or obj.get("object") != kind:
            raise missing(
                kind.replace("_", " ") if kind != "payment_intent" else "payment_intent",
                object_id,
                param,
            )
        return obj

    def _render(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def _refund_list(self, charge_id: str) -> dict[str, Any]:
        """A charge's `refunds`, which Stripe includes only when asked (`expand`)."""
        refunds = self._sorted(
            r
            for r in self._objects.values()
            if r.get("object") == "refund" and r.get("charge") == charge_id
        )
        return {
            "object": "list",
            "data": [self._render(r) for r in refunds],
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        }

    def _sorted(
        self, objs: Iterator[dict[str, Any]] | list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return sorted(
            objs, key=lambda o: (o.get("created") or 0, self._order.get(o["id"], 0)), reverse=True
        )

    def _expand(self, value: Any, parts: list[str]) -> Any:
        if not parts or value is None:
            return value
        if isinstance(value, list):
            return [self._expand(v, parts) for v in value]
        head, rest = parts[0], parts[1:]
        if head == "refunds" and isinstance(value, dict) and value.get("object") == "charge":
            value["refunds"] = self._expand(self._refund_list(value["id"]), rest)
            return value
        if not isinstance(value, dict) or head not in value:
            raise ApiError(400, f"This property cannot be expanded ({head}).", param="expand")
        inner = value[head]
        if isinstance(inner, str) and inner in self._objects:
            inner = self._render(self._objects[inner])
        elif isinstance(inner, list):
            inner = [
                self._render(self._objects[v]) if isinstance(v, str) and v in self._objects else v
                for v in inner
            ]
        value[head] = self._expand(inner, rest)
        return value

    def _out(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        rendered = self._render(obj)
        for path in _items(params, "expand"):
            rendered = self._expand(rendered, str(path).split("."))
        return rendered

    def _page(self, objs: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
        limit = _int(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise ApiError(400, "Invalid limit: must be between 1 and 100", param="limit")
        ordered = self._sorted(objs)
        after, before = _str(params, "starting_after"), _str(params, "ending_before")
        ids = [o["id"] for o in ordered]
        if after is not None:
            if after not in ids:
                raise missing("object", after, "starting_after")
            ordered = ordered[ids.index(after) + 1 :]
            page, has_more = ordered[:limit], len(ordered) > limit
        elif before is not None:
            if before not in ids:
                raise missing("object", before, "ending_before")
            newer = ordered[: ids.index(before)]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = ordered[:limit], len(ordered) > limit
        listing = {
            "object": "list",
            "data": [self._render(o) for o in page],
            "has_more": has_more,
            "url": url,
        }
        for path in _items(params, "expand"):
            parts = str(path).split(".")
            if parts[0] != "data":
                raise ApiError(
                    400, f"This property cannot be expanded ({parts[0]}).", param="expand"
                )
            listing["data"] = [self._expand(item, parts[1:]) for item in listing["data"]]
        return listing

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [
            o for o in self._objects.values() if o.get("object") == kind and not o.get("deleted")
        ]

    def _emit(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        context = self._context
        event = self._new(
            "event",
            "evt",
            api_version=API_VERSION,
            data={"object": self._render(obj)},
            pending_webhooks=0,
            request={"id": context.request_id, "idempotency_key": context.idempotency_key},
            type=event_type,
        )
        self.events.append(event)
        return event

    # --- customers -------------------------------------------------------------------------

    def _create_customer(
        self,
        email: str | None,
        name: str | None,
        *,
        description: str | None = None,
        payment_method: str | None = None,
        metadata: dict[str, Any] | None = None,
        phone: str | None = None,
    ) -> dict[str, Any]:
        customer = self._new(
            "customer",
            "cus",
            address=None,
            balance=0,
            currency=None,
            default_source=None,
            delinquent=False,
            description=description,
            discount=None,
            email=email,
            invoice_prefix=secrets.token_hex(4).upper(),
            invoice_settings={
                "custom_fields": None,
                "default_payment_method": payment_method,
                "footer": None,
                "rendering_options": None,
            },
            metadata=_merge_metadata({}, metadata or {}),
            name=name,
            next_invoice_sequence=1,
            phone=phone,
            preferred_locales=[],
            shipping=None,
            tax_exempt="none",
            test_clock=None,
        )
        customer["_indexed_at"] = time.time()
        self._emit("customer.created", customer)
        return customer

    def _h_create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        settings = _dict(params, "invoice_settings")
        customer = self._create_customer(
            _str(params, "email"),
            _str(params, "name"),
            description=_str(params, "description"),
            payment_method=_str(params, "payment_method")
            or _str(settings, "default_payment_method"),
            metadata=_dict(params, "metadata"),
            phone=_str(params, "phone"),
        )
        return self._out(customer, params)

    def _h_get_customer(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        customer = self._objects.get(customer_id)
        if customer is None or customer.get("object") != "customer":
            raise missing("customer", customer_id)
        if customer.get("deleted"):
            return {"id": customer_id, "object": "customer", "deleted": True}
        return self._out(customer, params)

    def _live_customer(self, customer_id: str, param: str = "id") -> dict[str, Any]:
        customer = self._get(customer_id, "customer", param)
        if customer.get("deleted"):
            raise missing("customer", customer_id, param)
        return customer

    def _h_update_customer(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        customer = self._live_customer(customer_id)
        for name in ("email", "name", "description", "phone"):
            if name in params:
                customer[name] = _str(params, name)
        if "metadata" in params:
            customer["metadata"] = _merge_metadata(customer["metadata"], _dict(params, "metadata"))
        if "address" in params:  # Stripe replaces the given keys; "" clears one
            given = _dict(params, "address")
            old = customer["address"] or dict.fromkeys(_ADDRESS_KEYS)
            customer["address"] = {k: (given[k] or None) if k in given else old.get(k)
                                   for k in _ADDRESS_KEYS}  # fmt: skip
        if "invoice_settings" in params:
            pm = _str(_dict(params, "invoice_settings"), "default_payment_method")
            customer["invoice_settings"]["default_payment_method"] = pm
        self._emit("customer.updated", customer)
        return self._out(customer, params)

    def _h_delete_customer(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        customer = self._live_customer(customer_id)
        customer["deleted"] = True
        self._emit("customer.deleted", customer)
        return {"id": customer_id, "object": "customer", "deleted": True}

    def _h_list_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        email = _str(params, "email")
        found = [c for c in self._of("customer") if email is None or c.get("email") == email]
        return self._page(found, params, "/v1/customers")

    def _h_search_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._search("customer", ("email", "name", "phone"), params)

    def _search(self, kind: str, fields: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/<kind>s/search`: what matches, newest first; new objects after `search_lag`."""
        url = f"/v1/{kind}s/search"
        if not self.search:
            raise ApiError(
                404,
                f"Unrecognized request URL (GET: {url}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        query = _str(params, "query", required=True) or ""
        limit = _int(params, "limit") or 10
        matches = _search_matcher(query, fields, kind)
        visible_before = time.time() - self.search_lag
        found = [
            o
            for o in self._sorted(self._of(kind))
            if matches(o) and o.get("_indexed_at", 0) <= visible_before
        ]
        return {
            "object": "search_result",
            "data": [self._render(o) for o in found[:limit]],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": url,
        }

    # --- tax IDs ---------------------------------------------------------------------------

    def _create_tax_id(
        self, customer_id: str, kind: str, value: str, verified: bool | None = None
    ) -> dict[str, Any]:
        self._live_customer(customer_id)
        if kind not in TAX_ID_FORMATS:
            raise ApiError(
                400,
                f"Invalid type: must be one of {', '.join(sorted(TAX_ID_FORMATS))}",
                code="parameter_invalid_string",
                param="type",
            )
        if not re.fullmatch(TAX_ID_FORMATS[kind], value):
            raise ApiError(400, f"Invalid value for {kind}.", code="tax_id_invalid", param="value")
        country = {"gb_vat": "GB", "au_abn": "AU", "ch_vat": "CH", "no_vat": "NO"}.get(kind)
        if kind == "eu_vat":
            country = "GR" if value.startswith("EL") else value[:2]
        status = "pending" if verified is None else "verified" if verified else "unverified"
        return self._new(
            "tax_id",
            "txi",
            country=country,
            customer=customer_id,
            customer_account=None,
            owner={"customer": customer_id, "type": "customer", "customer_account": None},
            type=kind,
            value=value,
            verification={"status": status, "verified_address": None, "verified_name": None},
        )

    def _h_create_tax_id(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        tax_id = self._create_tax_id(
            customer_id,
            _str(params, "type", required=True) or "",
            _str(params, "value", required=True) or "",
        )
        return self._out(tax_id, params)

    def _h_list_tax_ids(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        self._live_customer(customer_id)
        found = [t for t in self._of("tax_id") if t["customer"] == customer_id]
        return self._page(found, params, f"/v1/customers/{customer_id}/tax_ids")

    def _customer_tax_id(self, customer_id: str, tax_id: str) -> dict[str, Any]:
        found = self._objects.get(tax_id)
        if found is None or found.get("customer") != customer_id or found.get("deleted"):
            raise missing("tax_id", tax_id)
        return found

    def _h_get_tax_id(
        self, params: dict[str, Any], customer_id: str, tax_id: str
    ) -> dict[str, Any]:
        return self._out(self._customer_tax_id(customer_id, tax_id), params)

    def _h_delete_tax_id(
        self, params: dict[str, Any], customer_id: str, tax_id: str
    ) -> dict[str, Any]:
        self._customer_tax_id(customer_id, tax_id)["deleted"] = True
        return {"id": tax_id, "object": "tax_id", "deleted": True}

    # --- payments --------------------------------------------------------------------------

    def _create_intent(
        self,
        amount: int,
        currency: str,
        customer_id: str | None,
        *,
        payment_method: str | None,
        manual: bool,
        confirm: bool,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        off_session: bool = False,
    ) -> dict[str, Any]:
        if customer_id is not None:
            self._live_customer(customer_id, "customer")
        if amount < 1:
            raise ApiError(
                400,
                "This value must be greater than or equal to 1.",
                code="parameter_invalid_integer",
                param="amount",
            )
        intent = self._new(
            "payment_intent",
            "pi",
            amount=amount,
            amount_capturable=0,
            amount_details={"tip": {}},
            amount_received=0,
            automatic_payment_methods=None,
            canceled_at=None,
            cancellation_reason=None,
            capture_method="manual" if manual else "automatic",
            confirmation_method="automatic",
            currency=currency,
            customer=customer_id,
            customer_account=None,
            description=description,
            excluded_payment_method_types=None,
            last_payment_error=None,
            latest_charge=None,
            metadata=_merge_metadata({}, metadata or {}),
            next_action=None,
            payment_method=payment_method,
            payment_method_configuration_details=None,
            payment_method_options={},
            payment_method_types=["card"],
            processing=None,
            shipping=None,
            source=None,
            status="requires_payment_method" if payment_method is None else "requires_confirmation",
            transfer_data=None,
        )
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(12)}"
        self._emit("payment_intent.created", intent)
        if confirm:
            if payment_method is None:
                raise ApiError(
                    400,
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    code="payment_intent_unexpected_state",
                    payment_intent=self._render(intent),
                )
            self._confirm(intent, off_session=off_session)
        return intent

    def _confirm(self, intent: dict[str, Any], *, off_session: bool = False) -> None:
        manual = intent["capture_method"] == "manual"
        method = intent["payment_method"]
        if method in AUTHENTICATING_CARDS and not off_session:
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            self._emit("payment_intent.requires_action", intent)
            return
        decline_code = DECLINE_CODES.get(method, "generic_decline")
        error_code = "card_declined"
        if method in AUTHENTICATING_CARDS:  # off session: nobody is there to authenticate
            decline_code = error_code = "authentication_required"
        declined = (
            method in DECLINING_CARDS or method in DECLINE_CODES or error_code != "card_declined"
        )
        charge = self._new_charge(intent, declined=declined, captured=not manual)
        intent["latest_charge"] = charge["id"]
        if declined:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "charge": charge["id"],
                "code": error_code,
                "decline_code": decline_code,
                "message": "Your card was declined.",
                "type": "card_error",
            }
            self._emit("charge.failed", charge)
            self._emit("payment_intent.payment_failed", intent)
            raise ApiError(
                402,
                "Your card was declined.",
                kind="card_error",
                code=error_code,
                decline_code=decline_code,
                charge=charge["id"],
                payment_intent=self._render(intent),
            )
        if manual:
            intent["status"] = "requires_capture"
            intent["amount_capturable"] = intent["amount"]
            self._emit("charge.succeeded", charge)
            self._emit("payment_intent.amount_capturable_updated", intent)
            return
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]
        self._emit("charge.succeeded", charge)
        self._emit("payment_intent.succeeded", intent)
        if intent["payment_method"] in DISPUTING_CARDS:
            self._create_dispute(charge["id"], "fraudulent")

    def _new_charge(
        self, intent: dict[str, Any], *, declined: bool, captured: bool
    ) -> dict[str, Any]:
        template = self._fixtures["charge"]
        amount = intent["amount"]
        card = copy.deepcopy(template["payment_method_details"])
        card["card"]["amount_authorized"] = None if declined else amount
        card["card"]["overcapture"]["maximum_amount_capturable"] = amount
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network" if declined else "approved_by_network",
            "reason": "generic_decline" if declined else None,
            "seller_message": (
                "The bank did not return any further details with this decline."
                if declined
                else "Payment complete."
            ),
            "type": "issuer_declined" if declined else "authorized",
        }
        customer = self._objects.get(intent["customer"] or "")
        billing = copy.deepcopy(template["billing_details"])
        billing["email"] = customer.get("email") if customer else None
        billing["name"] = customer.get("name") if customer else None
        charge = self._new(
            "charge",
            "ch",
            amount=amount,
            amount_captured=amount if captured and not declined else 0,
            amount_refunded=0,
            balance_transaction=None if declined or not captured else new_id("txn"),
            billing_details=billing,
            calculated_statement_descriptor="CHARGEDESK",
            captured=captured and not declined,
            currency=intent["currency"],
            customer=intent["customer"],
            description=intent["description"],
            disputed=False,
            failure_code="card_declined" if declined else None,
            failure_message="Your card was declined." if declined else None,
            outcome=outcome,
            paid=not declined,
            payment_intent=intent["id"],
            payment_method=intent["payment_method"],
            payment_method_details=card,
            receipt_url=None,
            refunded=False,
            shipping=None,
            source=None,
            status="failed" if declined else "succeeded",
            transfer_data=None,
        )
        del charge["refunds"]  # included only when expanded
        return charge

    def _h_create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        capture_method = _str(params, "capture_method") or "automatic"
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise ApiError(400, f"Invalid capture_method: {capture_method}", param="capture_method")
        intent = self._create_intent(
            _positive(params, "amount", required=True) or 0,
            _currency(params),
            _str(params, "customer"),
            payment_method=_str(params, "payment_method"),
            manual=capture_method == "manual",
            confirm=bool(_bool(params, "confirm")),
            description=_str(params, "description"),
            metadata=_dict(params, "metadata"),
            off_session=bool(_bool(params, "off_session")),
        )
        return self._out(intent, params)

    def _h_get_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        return self._out(self._get(intent_id, "payment_intent"), params)

    def _h_list_intents(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = _str(params, "customer")
        found = [i for i in self._of("payment_intent") if customer in (None, i["customer"])]
        return self._page(found, params, "/v1/payment_intents")

    def _capture(self, charge: dict[str, Any], amount: int | None, param: str) -> None:
        """Take `amount` of an authorization; the rest goes back as a refund, as at Stripe."""
        if amount is None:
            amount = charge["amount"]
        if amount > charge["amount"]:
            raise ApiError(
                400,
                f"The amount to capture ({amount}) must be less than or equal to the amount that can be captured ({charge['amount']}).",
                code="amount_too_large",
                param=param,
            )
        charge["captured"] = True
        charge["amount_captured"] = amount
        charge["balance_transaction"] = new_id("txn")
        rest = charge["amount"] - amount
        if rest:
            self._new_refund(charge, rest, None, {})
        self._emit("charge.captured", charge)

    def _h_capture_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        intent = self._get(intent_id, "payment_intent")
        if intent["status"] != "requires_capture":
            raise ApiError(
                400,
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
                payment_intent=self._render(intent),
            )
        amount = _positive(params, "amount_to_capture")
        if amount is not None and amount > intent["amount_capturable"]:
            raise ApiError(
                400,
                f"The amount to capture ({amount}) must be less than or equal to the amount capturable ({intent['amount_capturable']}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        charge = self._objects[intent["latest_charge"]]
        self._capture(charge, amount, "amount_to_capture")
        intent["amount_received"] = charge["amount_captured"]
        intent["amount_capturable"] = 0
        intent["status"] = "succeeded"
        intent["metadata"] = _merge_metadata(intent["metadata"], _dict(params, "metadata"))
        self._emit("payment_intent.succeeded", intent)
        return self._out(intent, params)

    def _h_cancel_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        intent = self._get(intent_id, "payment_intent")
        if intent["status"] not in CANCELABLE_INTENTS:
            raise ApiError(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a PaymentIntent with one of the following statuses may be canceled: {', '.join(sorted(CANCELABLE_INTENTS))}.",
                code="payment_intent_unexpected_state",
                payment_intent=self._render(intent),
            )
        reason = _str(params, "cancellation_reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer", "abandoned"):
            raise ApiError(
                400, f"Invalid cancellation_reason: {reason}", param="cancellation_reason"
            )
        intent["status"] = "canceled"
        intent["canceled_at"] = int(time.time())
        intent["cancellation_reason"] = reason
        intent["amount_capturable"] = 0
        charge = self._objects.get(intent["latest_charge"] or "")
        if charge is not None and not charge["captured"] and charge["status"] == "succeeded":
            # The hold is released: Stripe marks the uncaptured charge refunded in full.
            charge["refunded"] = True
            charge["amount_refunded"] = charge["amount"]
        self._emit("payment_intent.canceled", intent)
        return self._out(intent, params)

    def _h_get_charge(self, params: dict[str, Any], charge_id: str) -> dict[str, Any]:
        return self._out(self._get(charge_id, "charge"), params)

    def _h_list_charges(self, params: dict[str, Any]) -> dict[str, Any]:
        customer, intent = _str(params, "customer"), _str(params, "payment_intent")
        found = [
            c
            for c in self._of("charge")
            if customer in (None, c["customer"]) and intent in (None, c["payment_intent"])
        ]
        return self._page(found, params, "/v1/charges")

    def _h_capture_charge(self, params: dict[str, Any], charge_id: str) -> dict[str, Any]:
        charge = self._get(charge_id, "charge")
        if charge["payment_intent"]:
            raise ApiError(
                400,
                "This charge was created by a PaymentIntent: capture the PaymentIntent instead.",
            )
        if charge["captured"] or charge["refunded"]:
            raise ApiError(
                400,
                f"Charge {charge_id} has already been captured.",
                code="charge_already_captured",
            )
        self._capture(charge, _positive(params, "amount"), "amount")
        return self._out(charge, params)

    # --- refunds and disputes --------------------------------------------------------------

    def _new_refund(
        self, charge: dict[str, Any], amount: int, reason: str | None, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        refund = self._new(
            "refund",
            "re",
            amount=amount,
            balance_transaction=new_id("txn"),
            charge=charge["id"],
            currency=charge["currency"],
            customer=charge["customer"],
            customer_account=None,
            destination_details={"card": {"type": "refund"}, "type": "card"},
            metadata=_merge_metadata({}, metadata),
            payment_intent=charge["payment_intent"],
            payment_method=charge["payment_method"],
            reason=reason,
            receipt_number=None,
            source_transfer_reversal=None,
            status="succeeded",
            transfer_reversal=None,
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit("refund.created", refund)
        self._emit("charge.refunded", charge)
        return refund

    def _refund(
        self,
        charge: dict[str, Any],
        amount: int | None,
        reason: str | None,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        if charge["status"] == "failed":
            raise ApiError(400, f"Charge {charge['id']} has failed: there is nothing to refund.")
        if charge["disputed"] and any(
            d["charge"] == charge["id"] and d["status"] not in ("won", "warning_closed")
            for d in self._of("dispute")
        ):
            raise ApiError(
                400,
                f"Charge {charge['id']} has been charged back; cannot issue a refund.",
                code="charge_disputed",
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise ApiError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        if not charge["captured"]:
            if amount is not None and amount != charge["amount"]:
                raise ApiError(
                    400,
                    "You cannot partially refund an uncaptured charge. Instead, capture the charge for an amount less than the original amount",
                    param="amount",
                )
            return self._new_refund(charge, charge["amount"], reason, metadata)
        if amount is None:
            amount = remaining
        if amount > remaining:
            # Stripe's own answer: no error code, just the message on `amount`.
            currency = charge["currency"]
            raise ApiError(
                400,
                f"Refund amount ({format_amount(amount, currency)}) is greater than unrefunded amount on charge ({format_amount(remaining, currency)})",
                param="amount",
            )
        return self._new_refund(charge, amount, reason, metadata)

    def _h_create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        # Parameters are checked before anything is looked up, as at Stripe.
        amount = _positive(params, "amount")
        reason = _str(params, "reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise ApiError(
                400,
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                code="parameter_invalid_string",
                param="reason",
            )
        charge_id, intent_id = _str(params, "charge"), _str(params, "payment_intent")
        if charge_id is None and intent_id is None:
            raise ApiError(
                400, "One of `charge` or `payment_intent` is required.", code="parameter_missing"
            )
        if charge_id is None:
            intent = self._get(intent_id or "", "payment_intent", "payment_intent")
            if not intent["latest_charge"]:
                raise ApiError(
                    400, f"PaymentIntent {intent_id} does not have a successful charge to refund."
                )
            charge_id = intent["latest_charge"]
        charge = self._get(charge_id, "charge", "charge")
        refund = self._refund(charge, amount, reason, _dict(params, "metadata"))
        return self._out(refund, params)

    def _h_get_refund(self, params: dict[str, Any], refund_id: str) -> dict[str, Any]:
        return self._out(self._get(refund_id, "refund"), params)

    def _h_list_refunds(self, params: dict[str, Any]) -> dict[str, Any]:
        charge, intent = _str(params, "charge"), _str(params, "payment_intent")
        if charge is not None:
            self._get(charge, "charge", "charge")
        found = [
            r
            for r in self._of("refund")
            if charge in (None, r["charge"]) and intent in (None, r["payment_intent"])
        ]
        return self._page(found, params, "/v1/refunds")

    def _create_dispute(
        self, charge_id: str, reason: str, status: str = "needs_response"
    ) -> dict[str, Any]:
        charge = self._get(charge_id, "charge")
        evidence_details = copy.deepcopy(self._fixtures["dispute"]["evidence_details"])
        evidence_details.update(
            {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False, "past_due": False}
        )
        dispute = self._new(
            "dispute",
            "dp",
            amount=charge["amount_captured"],
            balance_transactions=[],
            charge=charge_id,
            currency=charge["currency"],
            evidence_details=evidence_details,
            is_charge_refundable=False,
            payment_intent=charge["payment_intent"],
            reason=reason,
            status=status,
        )
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute)
        return dispute

    def _h_get_dispute(self, params: dict[str, Any], dispute_id: str) -> dict[str, Any]:
        return self._out(self._get(dispute_id, "dispute"), params)

    def _h_list_disputes(self, params: dict[str, Any]) -> dict[str, Any]:
        charge, intent = _str(params, "charge"), _str(params, "payment_intent")
        found = [
            d
            for d in self._of("dispute")
            if charge in (None, d["charge"]) and intent in (None, d["payment_intent"])
        ]
        return self._page(found, params, "/v1/disputes")

    def _h_update_dispute(self, params: dict[str, Any], dispute_id: str) -> dict[str, Any]:
        """Evidence, and with `submit=true` the answer: once submitted it cannot change."""
        dispute = self._get(dispute_id, "dispute")
        if dispute["status"] not in ("needs_response", "warning_needs_response"):
            raise ApiError(
                400,
                f"This dispute is {dispute['status']}: its evidence was already submitted or "
                "it is closed, so it can no longer be updated.",
            )
        evidence = params.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise ApiError(400, "Invalid object", code="parameter_invalid_object", param="evidence")
        for name, value in evidence.items():
            if name not in dispute["evidence"] or name == "enhanced_evidence":
                raise ApiError(400, f"Received unknown parameter: evidence[{name}]",
                               code="parameter_unknown", param=f"evidence[{name}]")  # fmt: skip
            if name in DISPUTE_FILE_FIELDS:
                upload = self._objects.get(str(value))
                if upload is None or upload.get("object") != "file":
                    raise missing("file", str(value), f"evidence[{name}]")
                if upload["purpose"] != "dispute_evidence":
                    raise ApiError(400, f"The file {value} was not uploaded for dispute evidence.",
                                   param=f"evidence[{name}]")  # fmt: skip
            dispute["evidence"][name] = value
        if "metadata" in params:
            dispute["metadata"] = {**dispute["metadata"], **(params["metadata"] or {})}
        details = dispute["evidence_details"]
        details["has_evidence"] = details["has_evidence"] or bool(evidence)
        if _bool(params, "submit"):
            details["submission_count"] += 1
            dispute["status"] = dispute["status"].replace("needs_response", "under_review")
        self._emit("charge.dispute.updated", dispute)
        return self._out(dispute, params)

    def _h_close_dispute(self, params: dict[str, Any], dispute_id: str) -> dict[str, Any]:
        """Accepting a dispute: lost, irreversibly."""
        dispute = self._get(dispute_id, "dispute")
        if dispute["status"] not in ("needs_response", "warning_needs_response"):
            raise ApiError(
                400, f"This dispute is already {dispute['status']} and cannot be closed."
            )
        dispute["status"] = "lost"
        self._emit("charge.dispute.closed", dispute)
        return self._out(dispute, params)

    def _form_pairs(self, content_type: str, body: bytes) -> list[tuple[str, str]]:
        """A multipart body's fields; each file part is kept aside and named by its digest."""
        pairs = []
        for part in parse_form(content_type, body):
            if part.filename is None:
                pairs.append((part.name, part.data.decode()))
                continue
            digest = hashlib.sha256(part.data).hexdigest()
            with self._lock:
                self._uploads[digest] = (part.filename, part.data)
            pairs.append((part.name, f"upload:{digest}"))
        return pairs

    def _h_create_file(self, params: dict[str, Any]) -> dict[str, Any]:
        purpose = _str(params, "purpose", required=True)
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid purpose: {purpose}", code="parameter_invalid_string",
                           param="purpose")  # fmt: skip
        upload = self._uploads.get(str(_str(params, "file", required=True)).removeprefix("upload:"))
        if upload is None:
            raise ApiError(400, "The file must be sent as multipart/form-data.", param="file")
        filename, data = upload
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else None
        created = self._new("file", "file", filename=filename, purpose=purpose, size=len(data),
                            title=None, type=extension, expires_at=None)  # fmt: skip
        created["links"] = {"object": "list", "data": [], "has_more": False,
                            "url": f"/v1/file_links?file={created['id']}"}  # fmt: skip
        created["url"] = f"{self.url}/v1/files/{created['id']}/contents"
        self.file_contents[created["id"]] = data
        return self._out(created, params)

    # --- coupons, promotion codes, discounts -----------------------------------------------

    def _create_coupon(
        self,
        coupon_id: str | None,
        *,
        duration: str,
        percent_off: float | None = None,
        amount_off: int | None = None,
        currency: str | None = None,
        duration_in_months: int | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        if (percent_off is None) == (amount_off is None):
            raise ApiError(
                400, "You must pass exactly one of percent_off or amount_off.", param="percent_off"
            )
        if amount_off is not None and currency is None:
            raise ApiError(400, "You must pass currency when passing amount_off.", param="currency")
        if duration not in ("forever", "once", "repeating"):
            raise ApiError(400, f"Invalid duration: {duration}", param="duration")
        if (duration == "repeating") != (duration_in_months is not None):
            raise ApiError(
                400,
                "duration_in_months goes with a repeating duration, and only then.",
                param="duration_in_months",
            )
        if coupon_id is not None and coupon_id in self._objects:
            raise ApiError(
                400, "Coupon already exists.", code="resource_already_exists", param="id"
            )
        return self._new(
            "coupon",
            None,
            coupon_id or secrets.token_hex(4).upper(),
            amount_off=amount_off,
            currency=currency,
            duration=duration,
            duration_in_months=duration_in_months,
            max_redemptions=None,
            name=name,
            percent_off=percent_off,
            redeem_by=None,
            times_redeemed=0,
            valid=True,
        )

    def _h_create_coupon(self, params: dict[str, Any]) -> dict[str, Any]:
        coupon = self._create_coupon(
            _str(params, "id"),
            duration=_str(params, "duration") or "once",
            percent_off=_float(params, "percent_off"),
            amount_off=_positive(params, "amount_off"),
            currency=_currency(params) if "currency" in params else None,
            duration_in_months=_positive(params, "duration_in_months"),
            name=_str(params, "name"),
        )
        return self._out(coupon, params)

    def _h_get_coupon(self, params: dict[str, Any], coupon_id: str) -> dict[str, Any]:
        return self._out(self._get(coupon_id, "coupon"), params)

    def _create_promotion_code(self, coupon_id: str, code: str | None) -> dict[str, Any]:
        self._get(coupon_id, "coupon", "promotion[coupon]")
        template = self._fixtures["promotion_code"]
        return self._new(
            "promotion_code",
            "promo",
            active=True,
            code=code or secrets.token_hex(4).upper(),
            customer=None,
            customer_account=None,
            expires_at=None,
            max_redemptions=None,
            promotion={"coupon": coupon_id, "type": "coupon"},
            restrictions=copy.deepcopy(template["restrictions"]),
            times_redeemed=0,
        )

    def _h_create_promotion_code(self, params: dict[str, Any]) -> dict[str, Any]:
        promotion = _dict(params, "promotion")
        coupon_id = _str(promotion, "coupon") or _str(params, "coupon")
        if coupon_id is None:
            raise ApiError(
                400,
                "Missing required param: promotion[coupon].",
                code="parameter_missing",
                param="promotion[coupon]",
            )
        return self._out(self._create_promotion_code(coupon_id, _str(params, "code")), params)

    def _h_get_promotion_code(self, params: dict[str, Any], promo_id: str) -> dict[str, Any]:
        return self._out(self._get(promo_id, "promotion_code"), params)

    def _h_list_promotion_codes(self, params: dict[str, Any]) -> dict[str, Any]:
        code, active, coupon = _str(params, "code"), _bool(params, "active"), _str(params, "coupon")
        found = [
            p
            for p in self._of("promotion_code")
            if (code is None or p["code"].lower() == code.lower())
            and active in (None, p["active"])
            and coupon in (None, p["promotion"]["coupon"])
        ]
        return self._page(found, params, "/v1/promotion_codes")

    def _new_discount(
        self,
        coupon: dict[str, Any],
        promotion_code: str | None,
        *,
        customer: str,
        subscription: str | None,
    ) -> dict[str, Any]:
        start = int(time.time())
        months = coupon["duration_in_months"] if coupon["duration"] == "repeating" else None
        coupon["times_redeemed"] += 1
        return self._new(
            "discount",
            "di",
            checkout_session=None,
            customer=customer,
            customer_account=None,
            end=start + months * 30 * 86400 if months else None,
            invoice=None,
            invoice_item=None,
            promotion_code=promotion_code,
            source={"coupon": coupon["id"], "type": "coupon"},
            start=start,
            subscription=subscription,
            subscription_item=None,
        )

    def _deleted_discount(self, discount_id: str, owner: str) -> dict[str, Any]:
        """A discount removed, as Stripe answers its DELETE: the discount, `deleted: true`."""
        discount = self._objects.pop(discount_id, None)
        if discount is None:
            raise ApiError(404, f"No active discount for {owner}", code="resource_missing")
        return {**self._render(discount), "deleted": True}

    def _h_delete_customer_discount(
        self, params: dict[str, Any], customer_id: str
    ) -> dict[str, Any]:
        customer = self._get(customer_id, "customer")
        discount = customer.get("discount")
        customer["discount"] = None
        found = discount.get("id") if isinstance(discount, dict) else discount
        return self._deleted_discount(str(found or ""), f"customer {customer_id}")

    def _h_delete_subscription_discount(
        self, params: dict[str, Any], sub_id: str
    ) -> dict[str, Any]:
        """Every discount of the subscription goes; the answer is the first of them."""
        sub = self._get(sub_id, "subscription")
        ids = list(sub.get("discounts") or [])
        sub["discounts"] = []
        for later in ids[1:]:
            self._objects.pop(later, None)
        return self._deleted_discount(ids[0] if ids else "", f"subscription {sub_id}")

    def _discounts(self, sub: dict[str, Any], wanted: list[Any]) -> list[str]:
        """`discounts` as Stripe takes it (`[{coupon|promotion_code|discount}]`) into discount IDs."""
        ids: list[str] = []
        for index, entry in enumerate(wanted):
            entry = entry if isinstance(entry, dict) else {}
            param = f"discounts[{index}]"
            if _str(entry, "discount"):
                discount = self._get(entry["discount"], "discount", f"{param}[discount]")
                ids.append(discount["id"])
            elif _str(entry, "promotion_code"):
                promo = self._get(
                    entry["promotion_code"], "promotion_code", f"{param}[promotion_code]"
                )
                if not promo["active"]:
                    raise ApiError(
                        400,
                        f"This promotion code is inactive: {promo['code']}",
                        param=f"{param}[promotion_code]",
                    )
                promo["times_redeemed"] += 1
                coupon = self._objects[promo["promotion"]["coupon"]]
                ids.append(
                    self._new_discount(
                        coupon, promo["id"], customer=sub["customer"], subscription=sub["id"]
                    )["id"]
                )
            elif _str(entry, "coupon"):
                coupon = self._get(entry["coupon"], "coupon", f"{param}[coupon]")
                ids.append(
                    self._new_discount(
                        coupon, None, customer=sub["customer"], subscription=sub["id"]
                    )["id"]
                )
            else:
                raise ApiError(
                    400,
                    f"Each discount needs a coupon, promotion_code or discount: {param}",
                    param=param,
                )
        if len(set(ids)) != len(ids):
            raise ApiError(400, "The same discount cannot be applied twice.", param="discounts")
        return ids

    # --- products, prices, subscriptions ---------------------------------------------------

    def _create_price(
        self,
        unit_amount: int,
        currency: str,
        *,
        interval: str | None = "month",
        nickname: str | None = None,
        product: str | None = None,
        product_name: str | None = None,
    ) -> dict[str, Any]:
        if product is None:
            product = self._create_product(product_name or nickname or "Service")["id"]
        else:
            self._get(product, "product", "product")
        recurring = None
        if interval is not None:
            recurring = {
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "usage_type": "licensed",
                "trial_period_days": None,
            }
        return self._new(
            "price",
            "price",
            active=True,
            billing_scheme="per_unit",
            currency=currency,
            custom_unit_amount=None,
            lookup_key=None,
            nickname=nickname,
            product=product,
            recurring=recurring,
            tax_behavior="unspecified",
            tiers_mode=None,
            transform_quantity=None,
            type="recurring" if recurring else "one_time",
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
        )

    def _create_product(self, name: str, description: str | None = None) -> dict[str, Any]:
        return self._new(
            "product",
            "prod",
            active=True,
            default_price=None,
            description=description,
            images=[],
            marketing_features=[],
            name=name,
            package_dimensions=None,
            shippable=None,
            statement_descriptor=None,
            tax_code=None,
            type="service",
            unit_label=None,
            updated=int(time.time()),
            url=None,
        )

    def _h_create_product(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _str(params, "name", required=True) or ""
        return self._out(self._create_product(name, _str(params, "description")), params)

    def _h_create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        recurring = _dict(params, "recurring")
        price = self._create_price(
            _int(params, "unit_amount", required=True) or 0,
            _currency(params),
            interval=_str(recurring, "interval") if recurring else None,
            nickname=_str(params, "nickname"),
            product=_str(params, "product"),
            product_name=_str(_dict(params, "product_data"), "name"),
        )
        return self._out(price, params)

    def _h_get_price(self, params: dict[str, Any], price_id: str) -> dict[str, Any]:
        return self._out(self._get(price_id, "price"), params)

    def _plan_of(self, price: dict[str, Any]) -> dict[str, Any]:
        """The legacy `plan` view of a recurring price, as subscription items still carry it."""
        plan = copy.deepcopy(self._fixtures["plan"])
        recurring = price["recurring"] or {"interval": "month", "interval_count": 1}
        plan.update(
            active=price["active"],
            amount=price["unit_amount"],
            amount_decimal=price["unit_amount_decimal"],
            billing_scheme="per_unit",
            created=price["created"],
            currency=price["currency"],
            id=price["id"],
            interval=recurring["interval"],
            interval_count=recurring["interval_count"],
            livemode=False,
            metadata={},
            meter=None,
            nickname=price["nickname"],
            product=price["product"],
            tiers_mode=None,
            transform_usage=None,
            trial_period_days=None,
            usage_type="licensed",
        )
        return plan

    def _create_subscription(
        self,
        customer_id: str,
        items: list[tuple[str, int]],
        *,
        metadata: dict[str, Any] | None = None,
        collection_method: str = "charge_automatically",
        days_until_due: int | None = None,
        bill: bool = True,
        trial_days: int | None = None,
    ) -> dict[str, Any]:
        customer = self._live_customer(customer_id, "customer")
        if not items:
            raise ApiError(
                400, "Missing required param: items.", code="parameter_missing", param="items"
            )
        prices = [
            (self._get(price_id, "price", "items[0][price]"), quantity)
            for price_id, quantity in items
        ]
        currencies = {p["currency"] for p, _ in prices}
        if len(currencies) != 1 or any(p["recurring"] is None for p, _ in prices):
            raise ApiError(
                400,
                "All prices on a subscription must be recurring and in one currency.",
                param="items",
            )
        now = int(time.time())
        sub_id = new_id("sub")
        trial_end = now + trial_days * 86400 if trial_days else None
        sub_items = []
        for price, quantity in prices:
            item = copy.deepcopy(self._fixtures["subscription_item"])
            item.update(
                billing_thresholds=None,
                created=now,
                current_period_end=trial_end or _period_end(now, price["recurring"]["interval"]),
                current_period_start=now,
                discounts=[],
                id=new_id("si"),
                metadata={},
                plan=self._plan_of(price),
                price=self._render(price),
                quantity=quantity,
                subscription=sub_id,
                tax_rates=[],
            )
            sub_items.append(item)
        sub = self._new(
            "subscription",
            "sub",
            sub_id,
            application=None,
            application_fee_percent=None,
            billing_cycle_anchor=now,
            billing_cycle_anchor_config=None,
            billing_schedules=[],
            billing_thresholds=None,
            cancel_at=None,
            cancel_at_period_end=False,
            canceled_at=None,
            cancellation_details={"comment": None, "feedback": None, "reason": None},
            collection_method=collection_method,
            currency=currencies.pop(),
            customer=customer_id,
            customer_account=None,
            days_until_due=days_until_due,
            default_payment_method=None,
            default_source=None,
            default_tax_rates=[],
            description=None,
            discounts=[],
            ended_at=None,
            items={
                "object": "list",
                "data": sub_items,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            latest_invoice=None,
            metadata=_merge_metadata({}, metadata or {}),
            next_pending_invoice_item_invoice=None,
            on_behalf_of=None,
            pause_collection=None,
            pending_invoice_item_interval=None,
            pending_setup_intent=None,
            pending_update=None,
            schedule=None,
            start_date=now,
            status="trialing" if trial_end else "active",
            test_clock=None,
            transfer_data=None,
            trial_end=trial_end,
            trial_start=now if trial_end else None,
        )
        if bill:
            # A trial's first invoice is for nothing (Stripe: "Trial period for Pro").
            prices = [(dict(p, unit_amount=0) if trial_end else p, q) for p, q in prices]
            total = sum(p["unit_amount"] * q for p, q in prices)
            invoice = self._create_invoice(
                customer_id,
                sub["currency"],
                collection_method=collection_method,
                days_until_due=days_until_due,
                subscription=sub_id,
                lines=[(p["unit_amount"] * q, p["nickname"] or p["id"]) for p, q in prices],
            )
            sub["latest_invoice"] = invoice["id"]
            self._finalize(invoice, auto_advance=True)
            payment_method = customer["invoice_settings"]["default_payment_method"]
            if collection_method == "charge_automatically" and total > 0:
                if payment_method is None:
                    sub["status"] = "incomplete"
                else:
                    self._pay(invoice, payment_method)
                    if invoice["status"] != "paid":
                        sub["status"] = "incomplete"
        self._emit("customer.subscription.created", sub)
        return sub

    def _h_create_subscription(self, params: dict[str, Any]) -> dict[str, Any]:
        items = []
        for index, entry in enumerate(_items(params, "items")):
            entry = entry if isinstance(entry, dict) else {}
            _allowed(entry, {"price", "plan", "quantity", "metadata"})
            price = _str(entry, "price") or _str(entry, "plan")
            if price is None:
                raise ApiError(
                    400,
                    f"Missing required param: items[{index}][price].",
                    code="parameter_missing",
                    param=f"items[{index}][price]",
                )
            items.append((price, _positive(entry, "quantity") or 1))
        collection = _str(params, "collection_method") or "charge_automatically"
        sub = self._create_subscription(
            _str(params, "customer", required=True) or "",
            items,
            metadata=_dict(params, "metadata"),
            collection_method=collection,
            days_until_due=_positive(params, "days_until_due"),
            trial_days=_positive(params, "trial_period_days"),
        )
        if "discounts" in params:
            sub["discounts"] = self._discounts(sub, _items(params, "discounts"))
        return self._out(sub, params)

    def _h_get_subscription(self, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
        return self._out(self._get(sub_id, "subscription"), params)

    def _h_list_subscriptions(self, params: dict[str, Any]) -> dict[str, Any]:
        customer, status, price = (
            _str(params, "customer"),
            _str(params, "status"),
            _str(params, "price"),
        )
        if customer is not None:
            self._get(customer, "customer", "customer")

        def wanted(sub: dict[str, Any]) -> bool:
            if status is None:
                if sub["status"] in ("canceled", "incomplete_expired"):
                    return False
            elif status != "all" and sub["status"] != status:
                return False
            if price is not None and all(i["price"]["id"] != price for i in sub["items"]["data"]):
                return False
            return customer in (None, sub["customer"])

        return self._page(
            [s for s in self._of("subscription") if wanted(s)], params, "/v1/subscriptions"
        )

    def _h_update_subscription(self, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
        sub = self._get(sub_id, "subscription")
        if sub["status"] == "canceled" and set(params) - {
            "metadata",
            "cancellation_details",
            "expand",
        }:
            raise ApiError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        if "metadata" in params:
            sub["metadata"] = _merge_metadata(sub["metadata"], _dict(params, "metadata"))
        details = _dict(params, "cancellation_details")
        for name in ("comment", "feedback"):
            if name in details:
                sub["cancellation_details"][name] = _str(details, name)
        at_period_end = _bool(params, "cancel_at_period_end")
        if at_period_end is not None:
            sub["cancel_at_period_end"] = at_period_end
            period_end = max(i["current_period_end"] for i in sub["items"]["data"])
            sub["cancel_at"] = period_end if at_period_end else None
            sub["canceled_at"] = int(time.time()) if at_period_end else None
            sub["cancellation_details"]["reason"] = (
                "cancellation_requested" if at_period_end else None
            )
        if "discounts" in params:
            sub["discounts"] = self._discounts(sub, _items(params, "discounts"))
        if "pause_collection" in params:
            sub["pause_collection"] = _pause_collection(params["pause_collection"])
        if "items" in params:
            self._change_items(sub, params)
        self._emit("customer.subscription.updated", sub)
        return self._out(sub, params)

    # --- plan changes: prorations and their preview (Stripe's proration per item) ------

    def _item_changes(
        self, sub: dict[str, Any], entries: list[Any]
    ) -> list[tuple[dict[str, Any], dict[str, Any], int]]:
        """(item, new price, new quantity) for each `items[n]` naming an item by `id`."""
        changes = []
        for index, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            _allowed(entry, {"id", "price", "plan", "quantity"})
            item_id = _str(entry, "id", required=True)
            item = next((i for i in sub["items"]["data"] if i["id"] == item_id), None)
            if item is None:
                raise missing("subscription item", item_id or "", f"items[{index}][id]")
            price_id = _str(entry, "price") or _str(entry, "plan") or item["price"]["id"]
            price = self._get(price_id, "price", f"items[{index}][price]")
            if price["recurring"] is None or price["currency"].lower() != sub["currency"].lower():
                raise ApiError(
                    400,
                    "All prices on a subscription must be recurring and in one currency.",
                    param=f"items[{index}][price]",
                )
            changes.append((item, price, _positive(entry, "quantity") or item["quantity"]))
        return changes

    def _proration_lines(
        self, changes: list[tuple[dict[str, Any], dict[str, Any], int]], at: int
    ) -> list[tuple[int, str]]:
        """Unused time on the old price credited, remaining time on the new one charged."""
        lines = []
        for item, price, quantity in changes:
            start, end = item["current_period_start"], item["current_period_end"]
            left = end - min(max(at, start), end)
            if left <= 0 or end <= start:
                continue
            old = item["price"]["unit_amount"] * item["quantity"]
            new = price["unit_amount"] * quantity
            name_old = item["price"]["nickname"] or item["price"]["id"]
            name_new = price["nickname"] or price["id"]
            lines.append((-_half_up(old * left, end - start), f"Unused time on {name_old}"))
            lines.append((_half_up(new * left, end - start), f"Remaining time on {name_new}"))
        return lines

    def _prorate(
        self, sub: dict[str, Any], details: dict[str, Any], *, store: bool
    ) -> dict[str, Any] | None:
        """The invoice a change of items bills now (`always_invoice`), stored or as a preview."""
        behavior = _str(details, "proration_behavior") or "create_prorations"
        if behavior not in ("create_prorations", "always_invoice", "none"):
            raise ApiError(
                400, f"Invalid proration_behavior: {behavior}", param="proration_behavior"
            )
        changes = self._item_changes(sub, _items(details, "items"))
        at = _int(details, "proration_date") or int(time.time())
        if behavior == "none" or sub["status"] == "trialing":
            lines: list[tuple[int, str]] = []
        else:
            lines = self._proration_lines(changes, at)
        events = len(self.events)
        invoice = self._create_invoice(
            sub["customer"], sub["currency"], collection_method=sub["collection_method"],
            days_until_due=sub["days_until_due"], subscription=sub["id"], lines=lines,
        )  # fmt: skip
        invoice["billing_reason"] = "subscription_update"
        for item, price, quantity in changes if store else ():
            item.update(plan=self._plan_of(price), price=self._render(price), quantity=quantity)
        if not store:  # a preview is never kept: no object, no event
            for event in self.events[events:]:
                self._objects.pop(event["id"], None)
            del self.events[events:]
            self._objects.pop(invoice["id"], None)
            invoice = copy.deepcopy(invoice)
            invoice["id"] = f"upcoming_{invoice['id']}"
            invoice["amount_due"] = invoice["amount_remaining"] = max(0, invoice["total"])
            return invoice
        if behavior != "always_invoice" or not lines:
            self._objects.pop(invoice["id"], None)
            return None
        total = invoice["total"]
        invoice["amount_due"] = invoice["amount_remaining"] = max(0, total)
        customer = self._objects[sub["customer"]]
        if total < 0:  # a credit goes to the customer's balance, used by the next invoice
            customer["balance"] += total
        sub["latest_invoice"] = invoice["id"]
        self._finalize(invoice, auto_advance=True)
        payment_method = customer["invoice_settings"]["default_payment_method"]
        if invoice["status"] != "paid" and payment_method is not None:
            self._pay(invoice, payment_method)
        return invoice

    def _change_items(self, sub: dict[str, Any], params: dict[str, Any]) -> None:
        self._prorate(sub, params, store=True)

    def _h_preview_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        sub_id = _str(params, "subscription", required=True) or ""
        sub = self._get(sub_id, "subscription", "subscription")
        customer = _str(params, "customer")
        if customer is not None and customer != sub["customer"]:
            raise ApiError(
                400, "The subscription does not belong to this customer.", param="customer"
            )
        details = _dict(params, "subscription_details")
        _allowed(details, {"items", "proration_behavior", "proration_date"})
        preview = self._prorate(sub, details, store=False)
        assert preview is not None
        return self._out(preview, params)

    def _h_cancel_subscription(self, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
        sub = self._get(sub_id, "subscription")
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise ApiError(400, f"This subscription has already been canceled: {sub_id}")
        now = int(time.time())
        details = _dict(params, "cancellation_details")
        sub["status"] = "canceled"
        sub["canceled_at"] = now
        sub["ended_at"] = now
        sub["cancel_at"] = None
        sub["cancellation_details"] = {
            "comment": _str(details, "comment"),
            "feedback": _str(details, "feedback"),
            "reason": "cancellation_requested",
        }
        if sub["schedule"]:  # a canceled subscription's schedule is canceled with it
            self._objects[sub["schedule"]].update(
                status="canceled", canceled_at=now, current_phase=None
            )
        self._emit("customer.subscription.deleted", sub)
        return self._out(sub, params)

    # --- subscription schedules: phases that change a subscription at a set time ------------

    def _phase(
        self, sub: dict[str, Any], items: list[tuple[dict[str, Any], int]], start: int,
        end: int, metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A schedule phase in Stripe's shape: its items name their prices by ID."""
        phase = copy.deepcopy(self._fixtures["subscription_schedule"]["phases"][0])
        phase.update(
            add_invoice_items=[], application_fee_percent=None, billing_cycle_anchor=None,
            billing_thresholds=None, collection_method=None, currency=sub["currency"],
            default_payment_method=None, default_tax_rates=[], description=None, discounts=[],
            end_date=end, invoice_settings=None, metadata=metadata or {}, on_behalf_of=None,
            proration_behavior="create_prorations", start_date=start, transfer_data=None,
            trial_end=None,
        )  # fmt: skip
        phase["items"] = [
            {"billing_thresholds": None, "discounts": [], "metadata": {}, "plan": price["id"],
             "price": price["id"], "quantity": quantity, "tax_rates": []}
            for price, quantity in items
        ]  # fmt: skip
        return phase

    def _h_create_schedule(self, params: dict[str, Any]) -> dict[str, Any]:
        sub_id = _str(params, "from_subscription")
        if sub_id is None:
            # Only the migration of a live subscription is emulated.
            raise ApiError(
                400, "Missing required param: from_subscription.", code="parameter_missing",
                param="from_subscription",
            )  # fmt: skip
        sub = self._get(sub_id, "subscription", "from_subscription")
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise ApiError(
                400, f"The subscription {sub_id} is canceled.", param="from_subscription"
            )
        if sub["schedule"]:
            raise ApiError(
                400,
                "You cannot migrate a subscription that is already attached to a schedule: "
                f"`{sub['schedule']}`.",
                param="from_subscription",
            )
        items = sub["items"]["data"]
        start = min(i["current_period_start"] for i in items)
        end = max(i["current_period_end"] for i in items)
        prices = [(self._objects[i["price"]["id"]], i["quantity"]) for i in items]
        fixture = self._fixtures["subscription_schedule"]
        settings = copy.deepcopy(fixture["default_settings"])
        settings.update(
            collection_method=sub["collection_method"], on_behalf_of=None, transfer_data=None,
            billing_thresholds=None,
        )  # fmt: skip
        schedule = self._new(
            "subscription_schedule", "sub_sched",
            application=None, billing_mode=copy.deepcopy(fixture["billing_mode"]),
            canceled_at=None, completed_at=None, current_phase={"start_date": start, "end_date": end},
            customer=sub["customer"], customer_account=None, default_settings=settings,
            end_behavior="release", metadata=_merge_metadata({}, _dict(params, "metadata")),
            phases=[self._phase(sub, prices, start, end)], released_at=None,
            released_subscription=None, status="active", subscription=sub_id, test_clock=None,
        )  # fmt: skip
        sub["schedule"] = schedule["id"]
        self._emit("subscription_schedule.created", schedule)
        return self._out(schedule, params)

    def _h_get_schedule(self, params: dict[str, Any], schedule_id: str) -> dict[str, Any]:
        return self._out(self._get(schedule_id, "subscription_schedule"), params)

    def _live_schedule(self, schedule_id: str) -> dict[str, Any]:
        schedule = self._get(schedule_id, "subscription_schedule")
        if schedule["status"] not in ("not_started", "active"):
            raise ApiError(
                400,
                f"You cannot update a subscription schedule that is currently in the "
                f"`{schedule['status']}` status. It must be in one of the following statuses: "
                "`not_started`, `active`.",
            )
        return schedule

    def _h_update_schedule(self, params: dict[str, Any], schedule_id: str) -> dict[str, Any]:
        schedule = self._live_schedule(schedule_id)
        sub = self._objects[schedule["subscription"]]
        behavior = _str(params, "end_behavior")
        if behavior is not None and behavior not in ("release", "cancel"):
            raise ApiError(400, f"Invalid end_behavior: {behavior}", param="end_behavior")
        proration = _str(params, "proration_behavior")
        if proration not in (None, "create_prorations", "always_invoice", "none"):
            raise ApiError(
                400, f"Invalid proration_behavior: {proration}", param="proration_behavior"
            )
        phases = (
            self._phases(schedule, sub, _items(params, "phases")) if "phases" in params else None
        )
        if phases is not None:
            schedule["phases"] = phases
        if behavior is not None:
            schedule["end_behavior"] = behavior
        if "metadata" in params:
            schedule["metadata"] = _merge_metadata(schedule["metadata"], _dict(params, "metadata"))
        self._emit("subscription_schedule.updated", schedule)
        return self._out(schedule, params)

    def _phases(
        self, schedule: dict[str, Any], sub: dict[str, Any], entries: list[Any]
    ) -> list[dict[str, Any]]:
        """New phases: the current one keeps its start; each next starts where the last ends,
        lasting until its `end_date` or for its `duration`; a last one with neither lasts one
        period of its price."""
        if not entries:
            raise ApiError(400, "Missing required param: phases.", code="parameter_missing",
                           param="phases")  # fmt: skip
        phases: list[dict[str, Any]] = []
        start = schedule["current_phase"]["start_date"]
        for index, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            _allowed(
                entry,
                {"items", "start_date", "end_date", "duration", "metadata", "proration_behavior"},
            )
            given = _int(entry, "start_date")
            if index == 0 and given is not None and given != start:
                raise ApiError(
                    400, "You can not modify the start date of the current phase.",
                    param="phases[0][start_date]",
                )  # fmt: skip
            items = []
            for n, item in enumerate(_items(entry, "items")):
                item = item if isinstance(item, dict) else {}
                _allowed(item, {"price", "plan", "quantity", "metadata"})
                param = f"phases[{index}][items][{n}][price]"
                price = self._get(_str(item, "price") or _str(item, "plan") or "", "price", param)
                if (
                    price["recurring"] is None
                    or price["currency"].lower() != sub["currency"].lower()
                ):
                    raise ApiError(
                        400, "All prices on a subscription must be recurring and in one currency.",
                        param=param,
                    )  # fmt: skip
                items.append((price, _positive(item, "quantity") or 1))
            if not items:
                raise ApiError(
                    400, f"Missing required param: phases[{index}][items].",
                    code="parameter_missing", param=f"phases[{index}][items]",
                )  # fmt: skip
            end = _int(entry, "end_date")
            duration = _dict(entry, "duration")
            if duration and end is not None:
                raise ApiError(
                    400, "You may only specify one of these parameters: duration, end_date.",
                    param=f"phases[{index}][duration]",
                )  # fmt: skip
            if duration:
                unit = _str(duration, "interval", required=True) or ""
                if unit not in ("day", "week", "month", "year"):
                    raise ApiError(
                        400, f"Invalid duration interval: {unit}",
                        param=f"phases[{index}][duration][interval]",
                    )  # fmt: skip
                end = start
                for _ in range(_positive(duration, "interval_count") or 1):
                    end = _period_end(end, unit)
            if end is None and index < len(entries) - 1:
                raise ApiError(
                    400, "Every phase but the last needs an end_date.",
                    param=f"phases[{index}][end_date]",
                )  # fmt: skip
            end = end or _period_end(start, items[0][0]["recurring"]["interval"])
            if end <= start:
                raise ApiError(
                    400, "A phase must end after it starts.", param=f"phases[{index}][end_date]"
                )
            phases.append(self._phase(sub, items, start, end, _dict(entry, "metadata")))
            start = end
        return phases

    def _release(self, schedule: dict[str, Any], now: int) -> None:
        """The subscription goes on as it stands, without its schedule."""
        sub = self._objects[schedule["subscription"]]
        sub["schedule"] = None
        schedule.update(
            status="released", released_at=now, released_subscription=sub["id"],
            subscription=None, current_phase=None,
        )  # fmt: skip
        self._emit("subscription_schedule.released", schedule)

    def _h_release_schedule(self, params: dict[str, Any], schedule_id: str) -> dict[str, Any]:
        schedule = self._live_schedule(schedule_id)
        self._release(schedule, int(time.time()))
        return self._out(schedule, params)

    def _advance(self, schedule: dict[str, Any], now: int) -> None:
        """Every phase ended by `now` gives way to the next: the subscription takes its items
        for a new period (billed at the new price), or, after the last, the schedule ends."""
        while schedule["status"] == "active" and schedule["current_phase"]["end_date"] <= now:
            ended = schedule["current_phase"]["end_date"]
            following = [p for p in schedule["phases"] if p["start_date"] >= ended]
            sub = self._objects[schedule["subscription"]]
            if not following:
                if schedule["end_behavior"] == "cancel":
                    sub.update(status="canceled", canceled_at=ended, ended_at=ended)
                    schedule.update(status="completed", completed_at=ended, current_phase=None)
                    self._emit("customer.subscription.deleted", sub)
                else:
                    self._release(schedule, ended)
                return
            phase = following[0]
            prices = [(self._objects[i["price"]], i["quantity"]) for i in phase["items"]]
            first = sub["items"]["data"][0]
            first.update(
                plan=self._plan_of(prices[0][0]), price=self._render(prices[0][0]),
                quantity=prices[0][1], current_period_start=phase["start_date"],
                current_period_end=_period_end(
                    phase["start_date"], prices[0][0]["recurring"]["interval"]
                ),
            )  # fmt: skip
            schedule["current_phase"] = {
                "start_date": phase["start_date"],
                "end_date": phase["end_date"],
            }
            invoice = self._create_invoice(
                sub["customer"], sub["currency"], collection_method=sub["collection_method"],
                days_until_due=sub["days_until_due"], subscription=sub["id"],
                lines=[(p["unit_amount"] * q, p["nickname"] or p["id"]) for p, q in prices],
            )  # fmt: skip
            invoice["billing_reason"] = "subscription_cycle"
            sub["latest_invoice"] = invoice["id"]
            self._finalize(invoice, auto_advance=True)
            payment_method = self._objects[sub["customer"]]["invoice_settings"][
                "default_payment_method"
            ]
            if payment_method is not None and invoice["status"] != "paid":
                self._pay(invoice, payment_method)
            self._emit("customer.subscription.updated", sub)

    # --- invoices --------------------------------------------------------------------------

    def _create_invoice(
        self,
        customer_id: str,
        currency: str,
        *,
        collection_method: str = "send_invoice",
        days_until_due: int | None = None,
        subscription: str | None = None,
        lines: list[tuple[int, str]] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        customer = self._live_customer(customer_id, "customer")
        if collection_method not in ("send_invoice", "charge_automatically"):
            raise ApiError(
                400, f"Invalid collection_method: {collection_method}", param="collection_method"
            )
        if collection_method == "send_invoice" and days_until_due is None:
            days_until_due = 30
        now = int(time.time())
        template = self._fixtures["invoice"]
        invoice = self._new(
            "invoice",
            "in",
            account_country="DE",
            account_name="ChargeDesk Demo",
            account_tax_ids=None,
            amount_due=0,
            amount_overpaid=0,
            amount_paid=0,
            amount_remaining=0,
            amount_shipping=0,
            application=None,
            attempt_count=0,
            attempted=False,
            auto_advance=False,
            automatic_tax=copy.deepcopy(template["automatic_tax"]),
            automatically_finalizes_at=None,
            billing_reason="subscription_create" if subscription else "manual",
            collection_method=collection_method,
            currency=currency,
            custom_fields=None,
            customer=customer_id,
            customer_account=None,
            customer_address=None,
            customer_email=customer["email"],
            customer_name=customer["name"],
            customer_phone=customer["phone"],
            customer_shipping=None,
            customer_tax_exempt="none",
            customer_tax_ids=[],
            default_payment_method=None,
            default_source=None,
            default_tax_rates=[],
            description=description,
            discounts=[],
            due_date=now + days_until_due * 86400 if days_until_due else None,
            effective_at=None,
            ending_balance=None,
            footer=None,
            from_invoice=None,
            hosted_invoice_url=None,
            invoice_pdf=None,
            last_finalization_error=None,
            latest_revision=None,
            lines={"object": "list", "data": [], "has_more": False, "url": ""},
            next_payment_attempt=None,
            number=None,
            on_behalf_of=None,
            parent=(
                {
                    "quote_details": None,
                    "subscription_details": {"metadata": {}, "subscription": subscription},
                    "type": "subscription_details",
                }
                if subscription
                else None
            ),
            period_end=now,
            period_start=now,
            receipt_number=None,
            shipping_cost=None,
            shipping_details=None,
            starting_balance=0,
            statement_descriptor=None,
            status="draft",
            status_transitions={
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            subscription=subscription,
            subtotal=0,
            subtotal_excluding_tax=0,
            test_clock=None,
            total=0,
            total_discount_amounts=[],
            total_excluding_tax=0,
            total_pretax_credit_amounts=[],
            total_taxes=[],
            webhooks_delivered_at=None,
        )
        invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
        for amount, line_description in lines or []:
            self._add_line(invoice, amount, line_description)
        self._emit("invoice.created", invoice)
        return invoice

    def _add_line(self, invoice: dict[str, Any], amount: int, description: str) -> None:
        line = copy.deepcopy(self._fixtures["line_item"])
        line.update(
            amount=amount,
            currency=invoice["currency"],
            description=description,
            discount_amounts=[],
            discountable=True,
            discounts=[],
            id=new_id("il"),
            invoice=invoice["id"],
            livemode=False,
            metadata={},
            parent={
                "invoice_item_details": {
                    "invoice_item": new_id("ii"),
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": invoice["subscription"],
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            },
            period={"end": invoice["period_end"], "start": invoice["period_start"]},
            pretax_credit_amounts=[],
            pricing={"type": "price_details", "unit_amount_decimal": str(amount)},
            quantity=1,
            quantity_decimal="1",
            subscription=invoice["subscription"],
            subtotal=amount,
            taxes=[],
        )
        invoice["lines"]["data"].append(line)
        total = sum(item["amount"] for item in invoice["lines"]["data"])
        for name in (
            "amount_due",
            "amount_remaining",
            "subtotal",
            "subtotal_excluding_tax",
            "total",
            "total_excluding_tax",
        ):
            invoice[name] = total

    def _finalize(self, invoice: dict[str, Any], *, auto_advance: bool) -> None:
        if invoice["status"] != "draft":
            raise ApiError(
                400,
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_not_editable",
            )
        customer = self._objects[invoice["customer"]]
        invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        invoice["status"] = "open"
        invoice["auto_advance"] = auto_advance
        invoice["effective_at"] = invoice["status_transitions"]["finalized_at"] = int(time.time())
        invoice["hosted_invoice_url"] = f"{self.url}/_emulator/invoices/{invoice['id']}"
        invoice["invoice_pdf"] = f"{self.url}/_emulator/invoices/{invoice['id']}/pdf"
        self._emit("invoice.finalized", invoice)
        if invoice["amount_due"] == 0:
            self._mark_paid(invoice)

    def _mark_paid(self, invoice: dict[str, Any]) -> None:
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = int(time.time())
        self._emit("invoice.paid", invoice)

    def _pay(self, invoice: dict[str, Any], payment_method: str) -> None:
        invoice["attempted"] = True
        invoice["attempt_count"] += 1
        try:
            intent = self._create_intent(
                invoice["amount_due"],
                invoice["currency"],
                invoice["customer"],
                payment_method=payment_method,
                manual=False,
                confirm=True,
                description=f"Invoice {invoice['number']}",
            )
        except ApiError:
            self._emit("invoice.payment_failed", invoice)
            return
        self._mark_paid(invoice)
        # How an invoice names what paid it since API 2025-03-31: `GET /v1/invoice_payments`.
        paid_at = invoice["status_transitions"]["paid_at"]
        self._new(
            "invoice_payment", "inpay", amount_paid=invoice["amount_paid"],
            amount_requested=invoice["amount_due"], currency=invoice["currency"],
            invoice=invoice["id"], is_default=True, status="paid",
            payment={"type": "payment_intent", "payment_intent": intent["id"]},
            status_transitions={"canceled_at": None, "paid_at": paid_at},
        )  # fmt: skip

    def _h_list_invoice_payments(self, params: dict[str, Any]) -> dict[str, Any]:
        invoice = _str(params, "invoice")
        found = [p for p in self._of("invoice_payment") if invoice in (None, p["invoice"])]
        return self._page(found, params, "/v1/invoice_payments")

    def _h_create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        customer_id = _str(params, "customer", required=True) or ""
        pending = [
            i
            for i in self._of("invoiceitem")
            if i["customer"] == customer_id and i["invoice"] is None
        ]
        include = _str(params, "pending_invoice_items_behavior") == "include"
        currency = _str(params, "currency") or (
            pending[0]["currency"] if include and pending else "eur"
        )
        invoice = self._create_invoice(
            customer_id,
            currency.lower(),
            collection_method=_str(params, "collection_method") or "charge_automatically",
            days_until_due=_positive(params, "days_until_due"),
            description=_str(params, "description"),
        )
        invoice["auto_advance"] = bool(_bool(params, "auto_advance"))
        invoice["metadata"] = _merge_metadata({}, _dict(params, "metadata"))
        if include:
            for item in pending:
                item["invoice"] = invoice["id"]
                self._add_line(invoice, item["amount"], item["description"] or "")
        return self._out(invoice, params)

    def _h_create_invoice_item(self, params: dict[str, Any]) -> dict[str, Any]:
        customer_id = _str(params, "customer", required=True) or ""
        self._live_customer(customer_id, "customer")
        invoice_id = _str(params, "invoice")
        invoice = self._get(invoice_id, "invoice", "invoice") if invoice_id else None
        if invoice is not None and invoice["status"] != "draft":
            raise ApiError(
                400,
                "You can only add invoice items to draft invoices.",
                code="invoice_not_editable",
                param="invoice",
            )
        amount = _int(params, "amount", required=True) or 0
        currency = _currency(params)
        now = int(time.time())
        item = self._new(
            "invoiceitem",
            "ii",
            amount=amount,
            currency=currency,
            customer=customer_id,
            customer_account=None,
            date=now,
            description=_str(params, "description"),
            discountable=True,
            discounts=[],
            invoice=invoice_id,
            metadata=_merge_metadata({}, _dict(params, "metadata")),
            net_amount=amount,
            parent=None,
            period={"end": now, "start": now},
            pricing={"type": "price_details", "unit_amount_decimal": str(amount)},
            proration=False,
            quantity=1,
            quantity_decimal="1",
            tax_rates=[],
            test_clock=None,
        )
        if invoice is not None:
            self._add_line(invoice, amount, item["description"] or "")
        return self._out(item, params)

    def _h_get_invoice(self, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        return self._out(self._get(invoice_id, "invoice"), params)

    def _h_search_invoices(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._search("invoice", ("number", "customer", "status", "subscription"), params)

    def _h_list_invoices(self, params: dict[str, Any]) -> dict[str, Any]:
        customer, sub, status = (
            _str(params, "customer"),
            _str(params, "subscription"),
            _str(params, "status"),
        )
        found = [
            i
            for i in self._of("invoice")
            if customer in (None, i["customer"])
            and sub in (None, i["subscription"])
            and status in (None, i["status"])
        ]
        return self._page(found, params, "/v1/invoices")

    def _h_finalize_invoice(self, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        invoice = self._get(invoice_id, "invoice")
        auto_advance = _bool(params, "auto_advance")
        self._finalize(
            invoice, auto_advance=invoice["auto_advance"] if auto_advance is None else auto_advance
        )
        return self._out(invoice, params)

    def _h_send_invoice(self, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        invoice = self._get(invoice_id, "invoice")
        if invoice["collection_method"] != "send_invoice":
            raise ApiError(
                400,
                "You can only manually send an invoice if its collection method is 'send_invoice'.",
            )
        if invoice["status"] != "open":
            raise ApiError(
                400, f"You can only send an invoice that is open; this one is {invoice['status']}."
            )
        self.sent_invoices.append(invoice_id)
        self._emit("invoice.sent", invoice)
        return self._out(invoice, params)

    async def _invoice_page(self, request: Request) -> Response:
        invoice = self._objects.get(request.path_params["invoice_id"])
        if invoice is None or invoice.get("object") != "invoice" or invoice["number"] is None:
            return HTMLResponse("<h1>No such invoice</h1>", status_code=404)
        amount = format_amount(invoice["amount_due"], invoice["currency"])
        return HTMLResponse(
            f"<h1>Invoice {invoice['number']}</h1><p>{amount} ({invoice['status']})</p>"
            f"<p><a href='{invoice['invoice_pdf']}'>Download PDF</a></p>"
        )

    async def _invoice_pdf(self, request: Request) -> Response:
        invoice = self._objects.get(request.path_params["invoice_id"])
        if invoice is None or invoice.get("object") != "invoice" or invoice["number"] is None:
            return Response(status_code=404)
        amount = format_amount(invoice["amount_due"], invoice["currency"])
        text = f"Invoice {invoice['number']}: {amount} ({invoice['status']})"
        return Response(_tiny_pdf(text), media_type="application/pdf")

    # --- billing portal --------------------------------------------------------------------

    # --- saved cards and Checkout ----------------------------------------------------------

    def _h_list_payment_methods(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """The customer's saved card: the emulator keeps one, its default payment method."""
        customer = self._live_customer(customer_id)
        method = customer["invoice_settings"]["default_payment_method"]
        cards = [{"id": method, "object": "payment_method", "type": "card",
                  "customer": customer_id}] if method else []  # fmt: skip
        return {"object": "list", "data": cards, "has_more": False,
                "url": f"/v1/customers/{customer_id}/payment_methods"}  # fmt: skip

    def _h_create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if _str(params, "mode", required=True) != "payment":
            raise ApiError(400, "The emulator supports mode=payment only.", param="mode")
        customer_id = _str(params, "customer")
        if customer_id is not None:
            self._live_customer(customer_id, "customer")
        total, currency = 0, None
        for index, item in enumerate(_items(params, "line_items")):
            data = _dict(item, "price_data")
            unit = _positive(data, "unit_amount", required=True) or 0
            currency = _currency(data)
            if not _str(_dict(data, "product_data"), "name"):
                raise ApiError(400, f"Missing required param: line_items[{index}][price_data]"
                               "[product_data][name].", code="parameter_missing")  # fmt: skip
            total += unit * (_positive(item, "quantity", required=True) or 0)
        if currency is None:
            raise ApiError(400, "Missing required param: line_items.", code="parameter_missing")
        now = int(time.time())
        expires_at = _int(params, "expires_at") or now + 24 * 3600
        if not now + 1800 <= expires_at <= now + 24 * 3600:
            raise ApiError(400, "The `expires_at` timestamp must be between 30 minutes and "
                           "24 hours from Checkout Session creation.", param="expires_at")  # fmt: skip
        secret = secrets.token_urlsafe(24)
        session = self._new(
            "checkout.session", "cs_test", amount_subtotal=total, amount_total=total,
            client_reference_id=_str(params, "client_reference_id"), currency=currency,
            customer=customer_id, customer_details=None, expires_at=expires_at,
            metadata=_dict(params, "metadata"), payment_intent=None, payment_status="unpaid",
            shipping_address_collection=None, shipping_cost=None, status="open",
            success_url=_str(params, "success_url"), cancel_url=_str(params, "cancel_url"),
            invoice_creation=None, total_details={"amount_discount": 0, "amount_shipping": 0,
                                                  "amount_tax": 0},
        )  # fmt: skip
        # Like Stripe's: the session's page, and the key to it in the fragment.
        session["url"] = f"https://checkout.stripe.com/c/pay/{session['id']}#{secret}"
        session["_intent_metadata"] = _dict(_dict(params, "payment_intent_data"), "metadata")
        return self._out(session, params)

    def _h_get_checkout_session(self, params: dict[str, Any], session_id: str) -> dict[str, Any]:
        return self._out(self._get(session_id, "checkout.session"), params)

    def _h_expire_checkout_session(self, params: dict[str, Any], session_id: str) -> dict[str, Any]:
        session = self._get(session_id, "checkout.session")
        if session["status"] != "open":
            raise ApiError(400, f"Only Checkout Sessions with a status in [\"open\"] can be "
                           f"expired. This Checkout Session has a status of "
                           f"\"{session['status']}\".")  # fmt: skip
        session.update(status="expired", url=None)
        self._emit("checkout.session.expired", session)
        return self._out(session, params)

    def pay_checkout_session(
        self, session_id: str, payment_method: str = "pm_card_visa"
    ) -> dict[str, Any]:
        """The customer pays on Checkout's page; returns `checkout.session.completed`."""
        with self._seeding():
            session = self._get(session_id, "checkout.session")
            if session["status"] != "open":
                raise ValueError(f"Checkout Session {session_id} is {session['status']}")
            intent = self._create_intent(
                session["amount_total"], session["currency"], session["customer"],
                payment_method=payment_method, manual=False, confirm=True,
                metadata=session["_intent_metadata"],
            )  # fmt: skip
            session.update(status="complete", payment_status="paid", url=None,
                           payment_intent=intent["id"])  # fmt: skip
            return self._emit("checkout.session.completed", session)

    def _h_create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
        customer_id = _str(params, "customer", required=True) or ""
        # Our default configuration has no default_return_url, so the session needs one.
        return_url = _str(params, "return_url", required=True) or ""
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", return_url):
            raise ApiError(400, "Not a valid URL", code="url_invalid", param="return_url")
        locale = _str(params, "locale")
        if locale is not None and not re.fullmatch(r"auto|[a-z]{2}(-[A-Z]{2}|-[0-9]{3})?", locale):
            raise ApiError(
                400, f"Invalid locale: {locale}", code="parameter_invalid_string", param="locale"
            )
        configuration = _str(params, "configuration")
        if configuration is not None and configuration != self.portal_configuration:
            raise missing("configuration", configuration, "configuration")
        if not self.billing_portal:
            raise ApiError(400, PORTAL_NOT_CONFIGURED)
        self._live_customer(customer_id, "customer")
        secret = secrets.token_urlsafe(24)
        session = self._new(
            "billing_portal.session",
            "bps",
            configuration=self.portal_configuration,
            customer=customer_id,
            customer_account=None,
            flow=None,
            locale=locale,
            on_behalf_of=None,
            return_url=return_url,
            url=f"{self.url}/_emulator/billing_portal/session/test_{secret}",
        )
        session["_secret"] = f"test_{secret}"
        self._emit("billing_portal.session.created", session)
        return self._out(session, params)

    async def _portal_page(self, request: Request) -> Response:
        """The portal page a session's URL opens: shows the card; a POST saves a new one."""
        secret = request.path_params["secret"]
        with self._lock:
            session = next(
                (s for s in self._of("billing_portal.session") if s["_secret"] == secret), None
            )
            if session is None:
                return HTMLResponse("<h1>This portal session has expired</h1>", status_code=404)
            customer = self._objects[session["customer"]]
            if request.method == "POST":
                # Stripe's page collects the card itself; the new method becomes the default.
                customer["invoice_settings"]["default_payment_method"] = "pm_card_mastercard"
                self.portal_card_updates.append(customer["id"])
                self._emit("customer.updated", customer)
                return RedirectResponse(session["return_url"], status_code=303)
            card = customer["invoice_settings"]["default_payment_method"] or "none"
            who = html.escape(customer.get("email") or customer["id"])
            back = html.escape(session["return_url"], quote=True)
        return HTMLResponse(
            f"<h1>Customer portal</h1><p>Signed in as {who}</p>"
            f"<p>Payment method: <span id='card'>{html.escape(card)}</span></p>"
            "<form method='post'><button type='submit'>Update card</button></form>"
            f"<p><a href='{back}'>Return</a></p>"
        )

    # --- events and webhooks ---------------------------------------------------------------

    def _h_get_event(self, params: dict[str, Any], event_id: str) -> dict[str, Any]:
        return self._out(self._get(event_id, "event"), params)

    def _h_list_events(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = _str(params, "type")
        found = [e for e in self._of("event") if kind in (None, e["type"])]
        return self._page(found, params, "/v1/events")

    def event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        created: int | None = None,
    ) -> dict[str, Any]:
        """A new event about `obj` (not stored), as Stripe would deliver it."""
        event = copy.deepcopy(self._fixtures["event"])
        event.update(
            api_version=API_VERSION,
            created=created or int(time.time()),
            data={"object": copy.deepcopy(obj)},
            id=new_id("evt"),
            livemode=False,
            pending_webhooks=1,
            request={
                "id": new_id("req") if idempotency_key else None,
                "idempotency_key": idempotency_key,
            },
            type=event_type,
        )
        return event

    @staticmethod
    def delivery(
        event: dict[str, Any], secret: str, *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST to a webhook endpoint for `event`."""
        body = json.dumps(event, indent=2).encode()
        signature = sign(body, secret, timestamp if timestamp is not None else int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return body, headers

    # --- seeding (tests and the demo) ------------------------------------------------------

    @contextmanager
    def _seeding(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except ApiError as exc:
                raise ValueError(f"seeding refused: {exc}") from None

    def get(self, object_id: str, *, expand: list[str] | None = None) -> dict[str, Any]:
        """An object as the API would answer it."""
        with self._lock:
            return self._out(self._objects[object_id], {"expand": expand or []})

    def add_customer(
        self,
        email: str | None,
        name: str | None = None,
        *,
        payment_method: str | None = "pm_card_visa",
        searchable: bool = True,
        **details: Any,
    ) -> dict[str, Any]:
        """A customer; `details` sets Customer fields such as address, preferred_locales, tax_exempt."""
        with self._seeding():
            customer = self._create_customer(email, name, payment_method=payment_method)
            unknown = set(details) - set(customer)
            if unknown:
                raise KeyError(f"not Customer fields: {sorted(unknown)}")
            customer.update(details)
            if not searchable:
                customer["_indexed_at"] = float("inf")
            return self._render(customer)

    def forget_idempotency_keys(self) -> None:
        """What Stripe does with a key after 24 hours."""
        with self._lock:
            self._saved.clear()

    def add_payment(
        self,
        customer_id: str | None,
        amount: int,
        currency: str = "eur",
        *,
        capture: bool = True,
        payment_method: str = "pm_card_visa",
        description: str | None = None,
    ) -> dict[str, Any]:
        """A confirmed payment intent's charge (uncaptured when `capture` is off)."""
        with self._seeding():
            intent = self._create_intent(
                amount,
                currency,
                customer_id,
                payment_method=payment_method,
                manual=not capture,
                confirm=True,
                description=description,
            )
            return self._render(self._objects[intent["latest_charge"]])

    def add_price(
        self,
        unit_amount: int,
        currency: str = "eur",
        *,
        nickname: str | None = None,
        interval: str = "month",
    ) -> dict[str, Any]:
        with self._seeding():
            return self._render(
                self._create_price(unit_amount, currency, interval=interval, nickname=nickname)
            )

    def add_subscription(
        self, customer_id: str, price_id: str, *, bill: bool = False, quantity: int = 1
    ) -> dict[str, Any]:
        """An active subscription; `bill` also invoices and charges its first period."""
        with self._seeding():
            return self._render(
                self._create_subscription(customer_id, [(price_id, quantity)], bill=bill)
            )

    def move_period(self, subscription_id: str, seconds: int) -> None:
        """Shift a subscription's current period `seconds` into the past (its items' starts
        and ends): as if it began that long before it did, its payment unchanged."""
        with self._seeding():
            for item in self._get(subscription_id, "subscription")["items"]["data"]:
                item["current_period_start"] -= seconds
                item["current_period_end"] -= seconds

    def advance_schedules(self, to: int) -> None:
        """As if the clock stood at `to` (epoch seconds): each subscription schedule moves
        through the phases that ended by then (what a Stripe test clock advanced does)."""
        with self._seeding():
            for schedule in self._of("subscription_schedule"):
                self._advance(schedule, to)

    def schedules(self) -> list[dict[str, Any]]:
        """Every subscription schedule made, as the API would answer it."""
        with self._lock:
            return [self._render(s) for s in self._sorted(self._of("subscription_schedule"))]

    def add_coupon(
        self,
        coupon_id: str | None = None,
        *,
        percent_off: float | None = None,
        amount_off: int | None = None,
        currency: str | None = None,
        duration: str = "once",
        duration_in_months: int | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        with self._seeding():
            coupon = self._create_coupon(
                coupon_id,
                duration=duration,
                percent_off=percent_off,
                amount_off=amount_off,
                currency=currency,
                duration_in_months=duration_in_months,
                name=name,
            )
            return self._render(coupon)

    def add_promotion_code(self, coupon_id: str, code: str) -> dict[str, Any]:
        with self._seeding():
            return self._render(self._create_promotion_code(coupon_id, code))

    def add_customer_discount(self, customer_id: str, coupon_id: str) -> dict[str, Any]:
        """A customer-level discount, as accounts made before API 2025-03-31 still have them."""
        with self._seeding():
            customer = self._live_customer(customer_id)
            coupon = self._get(coupon_id, "coupon")
            discount = self._new_discount(coupon, None, customer=customer_id, subscription=None)
            customer["discount"] = self._render(discount)
            return customer["discount"]

    def add_refund(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        """A refund made outside the gateway (say, in Stripe's dashboard)."""
        with self._seeding():
            return self._render(self._refund(self._get(charge_id, "charge"), amount, None, {}))

    def add_dispute(
        self, charge_id: str, reason: str = "fraudulent", status: str = "needs_response"
    ) -> dict[str, Any]:
        with self._seeding():
            return self._render(self._create_dispute(charge_id, reason, status))

    def add_tax_id(
        self, customer_id: str, kind: str, value: str, *, verified: bool | None = None
    ) -> dict[str, Any]:
        with self._seeding():
            return self._render(self._create_tax_id(customer_id, kind, value, verified))

    def add_invoice(
        self,
        customer_id: str,
        amount: int,
        currency: str = "eur",
        *,
        description: str = "Services",
        collection_method: str = "send_invoice",
        finalize: bool = False,
        pay: bool = False,
    ) -> dict[str, Any]:
        with self._seeding():
            invoice = self._create_invoice(
                customer_id,
                currency,
                collection_method=collection_method,
                lines=[(amount, description)],
            )
            if finalize or pay:
                self._finalize(invoice, auto_advance=False)
            if pay and invoice["status"] != "paid":
                self._mark_paid(invoice)
            return self._render(invoice)

    def seed_demo(self, email: str = "jane.doe@example.com") -> dict[str, str]:
        """The shell demo's customer: a succeeded charge, a hold, a subscription, an invoice."""
        jane = self.add_customer(email, "Jane Doe")
        paid = self.add_payment(jane["id"], 12000, "eur", description="Annual plan")
        hold = self.add_payment(jane["id"], 5000, "eur", capture=False, description="Hotel hold")
        price = self.add_price(1500, "eur", nickname="Pro monthly")
        sub = self.add_subscription(jane["id"], price["id"])
        invoice = self.add_invoice(jane["id"], 4900, "eur", description="Onboarding", finalize=True)
        self.add_tax_id(jane["id"], "eu_vat", "DE123456789", verified=True)
        self.add_coupon("WELCOME10", percent_off=10, duration="forever", name="Welcome")
        return {
            "customer": jane["id"],
            "charge": paid["id"],
            "authorized charge": hold["id"],
            "subscription": sub["id"],
            "invoice": invoice["id"],
            "price": price["id"],
        }


# --- helpers -----------------------------------------------------------------------------


def _fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        return ApiError(
            429,
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        ).payload()
    return ApiError(status, "An unknown error occurred", kind="api_error").payload()


def _half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves away from zero."""
    quotient, remainder = divmod(abs(numerator), denominator)
    quotient += 2 * remainder >= denominator
    return quotient if numerator >= 0 else -quotient


def _pause_collection(value: Any) -> dict[str, Any] | None:
    """`pause_collection[behavior]=void` pauses; an empty `pause_collection=` resumes."""
    if value in ("", None):
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid pause_collection", param="pause_collection")
    _allowed(value, {"behavior", "resumes_at"})
    behavior = _str(value, "behavior", required=True)
    if behavior not in ("keep_as_draft", "mark_uncollectible", "void"):
        raise ApiError(
            400,
            f"Invalid pause_collection[behavior]: {behavior}",
            param="pause_collection[behavior]",
        )
    return {"behavior": behavior, "resumes_at": _int(value, "resumes_at")}


def _period_end(start: int, interval: str) -> int:
    days = {"day": 1, "week": 7, "month": 30, "year": 365}.get(interval, 30)
    return start + days * 86400


_CLAUSE = re.compile(r"\s*(\w+(?:\['[^']*'\])?)\s*([:~])\s*'((?:[^'\\]|\\.)*)'\s*")
_JOIN = re.compile(r"(AND|OR)(?=\s)")


def _search_matcher(
    query: str, fields: tuple[str, ...] = ("email", "name", "phone"), what: str = "customer"
) -> Callable[[dict[str, Any]], bool]:
    """Stripe's search language: `email:'x' AND name~'y' OR metadata['k']:'v'`, read clause
    by clause so that AND or OR inside a quoted value stays part of the value."""
    clauses = []
    joins: list[str] = []
    at = 0
    while True:
        match = _CLAUSE.match(query, at)
        if match is None:
            raise ApiError(
                400, f"Invalid query: {query}", code="parameter_invalid_string", param="query"
            )
        field_name, operator, raw = match.groups()
        value = re.sub(r"\\(.)", r"\1", raw)
        if field_name not in fields and not field_name.startswith("metadata["):
            raise ApiError(
                400, f"Field {field_name} is not supported in {what} search.", param="query"
            )
        clauses.append((field_name, operator, value))
        at = match.end()
        if at == len(query):
            break
        join = _JOIN.match(query, at)
        if join is None:
            raise ApiError(
                400, f"Invalid query: {query}", code="parameter_invalid_string", param="query"
            )
        joins.append(join.group(1))
        at = join.end()
    if len(set(joins)) > 1:
        raise ApiError(
            400,
            "Search queries cannot mix AND and OR.",
            code="parameter_invalid_string",
            param="query",
        )

    def field_of(customer: dict[str, Any], name: str) -> str:
        if name.startswith("metadata["):
            return str(customer["metadata"].get(name[10:-2], ""))
        return str(customer.get(name) or "")

    def test(customer: dict[str, Any], clause: tuple[str, str, str]) -> bool:
        name, operator, value = clause
        found = field_of(customer, name)
        if operator == "~":
            return len(value) >= 3 and value.lower() in found.lower()
        return found.lower() == value.lower() if name != "phone" else found == value

    combine = any if joins and joins[0] == "OR" else all
    return lambda customer: combine(test(customer, clause) for clause in clauses)


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF saying `text`, so invoice_pdf links open."""
    safe = text.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\")
    safe = safe.replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({safe}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A local Stripe API emulator for the ChargeDesk demo."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--api-key", default=None, help="the only key accepted (default: any sk_test_ key)"
    )
    parser.add_argument(
        "--seed", action="store_true", help="add the demo customer jane.doe@example.com"
    )
    args = parser.parse_args(argv)
    emulator = StripeEmulator(api_key=args.api_key)
    url = emulator.start(args.host, args.port)
    if args.seed:
        for what, object_id in emulator.seed_demo().items():
            print(f"{what}: {object_id}", flush=True)
    print(
        f"Try: CHARGEDESK_STRIPE__API_KEY=sk_test_x CHARGEDESK_STRIPE__BASE_URL={url} chargedesk shell",
        flush=True,
    )
    print(f"Stripe emulator listening on {url}", flush=True)  # last: the banner is complete
    try:
        wait_for_interrupt()
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
