"""The Stripe emulator answers in Stripe's shapes and keeps Stripe's rules.

Every object it returns is held to the keys and JSON types of Stripe's own
example of that object (data/stripe/fixtures.json, from stripe/openapi).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from chargedesk_emulators.stripe import StripeEmulator, load_fixtures, unflatten

FIXTURES = load_fixtures()


def form(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: `items[0][price]=...`, booleans as true/false."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            pairs += form(value, name)
        elif isinstance(value, list):
            pairs += form({str(i): v for i, v in enumerate(value)}, name)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs


class Api:
    """Raw HTTP to the emulator: what it answers, untouched by any SDK."""

    def __init__(self, emulator: StripeEmulator) -> None:
        self.http = httpx.Client(
            base_url=emulator.url, headers={"Authorization": f"Bearer {emulator.api_key}"}
        )

    def call(
        self, method: str, path: str, params: dict[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        pairs = form(params or {})
        if method == "POST":
            return self.http.post(path, data=dict(pairs), headers=headers)
        return self.http.request(method, path, params=pairs, headers=headers)

    def ok(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.call(method, path, params)
        assert response.status_code == 200, response.text
        return response.json()

    def error(
        self, method: str, path: str, params: dict[str, Any] | None = None, status: int = 400
    ) -> dict[str, Any]:
        response = self.call(method, path, params)
        assert response.status_code == status, response.text
        return response.json()["error"]


# Stripe's examples show an error object with its one required field; the rest are optional.
OPTIONAL_KEYS = {
    "last_payment_error": {"charge", "code", "decline_code", "doc_url", "message", "param"},
    # An invoice payment's `payment` names what paid, by its `type`.
    "payment": {"charge", "payment_intent", "payment_record"},
}
# Fields Stripe's examples show but its answers include only when expanded, by object.
INCLUDABLE = {"charge": {"refunds"}}


def shape_problems(ours: Any, theirs: Any, path: str) -> list[str]:
    """Where `ours` differs from Stripe's example in keys or JSON types (null matches all)."""
    if ours is None or theirs is None:
        return []
    if isinstance(theirs, dict):
        if isinstance(ours, str) and ("id" in theirs or "object" in theirs):
            return []  # an expandable field, sent unexpanded
        if not isinstance(ours, dict):
            return [f"{path}: {type(ours).__name__}, Stripe has an object"]
        if not theirs or path.endswith("metadata"):
            return []  # free-form
        includable = INCLUDABLE.get(str(theirs.get("object")), set())
        absent = theirs.keys() - ours.keys() - includable
        problems = [f"{path}.{k}: missing" for k in sorted(absent)]
        optional = OPTIONAL_KEYS.get(path.rsplit(".", 1)[-1], set())
        extra = ours.keys() - theirs.keys() - optional
        problems += [f"{path}.{k}: not in Stripe's object" for k in sorted(extra)]
        for key in sorted(theirs.keys() & ours.keys()):
            problems += shape_problems(ours[key], theirs[key], f"{path}.{key}")
        return problems
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{path}: {type(ours).__name__}, Stripe has an array"]
        if not theirs:
            return []
        return [p for item in ours for p in shape_problems(item, theirs[0], f"{path}[]")]
    if isinstance(theirs, bool):
        good = isinstance(ours, bool)
    elif isinstance(theirs, int):
        good = isinstance(ours, int) and not isinstance(ours, bool)
    elif isinstance(theirs, float):
        good = isinstance(ours, int | float) and not isinstance(ours, bool)
    else:
        good = isinstance(ours, type(theirs))
    return [] if good else [f"{path}: {type(ours).__name__}, Stripe has {type(theirs).__name__}"]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[StripeEmulator, dict[str, list[dict[str, Any]]]]]:
    """One of every kind of object, made through the HTTP API, then read back."""
    with StripeEmulator() as emulator:
        api = Api(emulator)
        got: dict[str, list[dict[str, Any]]] = {}

        def keep(obj: dict[str, Any]) -> dict[str, Any]:
            got.setdefault(obj["object"], []).append(obj)
            return obj

        customer = keep(
            api.ok(
                "POST",
                "/v1/customers",
                {"email": "shape@example.com", "name": "Shape", "payment_method": "pm_card_visa"},
            )
        )
        cid = customer["id"]
        paid = keep(
            api.ok(
                "POST",
                "/v1/payment_intents",
                {
                    "amount": 5000,
                    "currency": "eur",
                    "customer": cid,
                    "payment_method": "pm_card_visa",
                    "confirm": True,
                },
            )
        )
        held = keep(
            api.ok(
                "POST",
                "/v1/payment_intents",
                {
                    "amount": 4000,
                    "currency": "eur",
                    "customer": cid,
                    "payment_method": "pm_card_visa",
                    "capture_method": "manual",
                    "confirm": True,
                },
            )
        )
        keep(
            api.ok("POST", f"/v1/payment_intents/{held['id']}/capture", {"amount_to_capture": 1000})
        )
        disputed = api.ok(
            "POST",
            "/v1/payment_intents",
            {
                "amount": 700,
                "currency": "eur",
                "customer": cid,
                "payment_method": "pm_card_createDispute",
                "confirm": True,
            },
        )
        declined = api.call(
            "POST",
            "/v1/payment_intents",
            {
                "amount": 900,
                "currency": "eur",
                "customer": cid,
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            },
        )
        assert declined.status_code == 402
        keep(
            api.ok(
                "POST",
                "/v1/refunds",
                {
                    "charge": paid["latest_charge"],
                    "amount": 1500,
                    "reason": "requested_by_customer",
                },
            )
        )
        listed = api.ok("GET", "/v1/charges", {"customer": cid, "expand": ["data.refunds"]})
        for charge in listed["data"]:
            keep(charge)
        dispute = api.ok("GET", "/v1/disputes", {"charge": disputed["latest_charge"]})["data"][0]
        uploaded = api.http.post(
            "/v1/files",
            data={"purpose": "dispute_evidence"},
            files={"file": ("R-1.pdf", b"%PDF-1.7", "application/pdf")},
        )
        assert uploaded.status_code == 200, uploaded.text
        evidence = {"evidence": {"receipt": keep(uploaded.json())["id"]}, "submit": True}
        keep(api.ok("POST", f"/v1/disputes/{dispute['id']}", evidence))
        keep(
            api.ok("GET", f"/v1/payment_intents/{declined.json()['error']['payment_intent']['id']}")
        )
        coupon = keep(
            api.ok(
                "POST", "/v1/coupons", {"id": "SHAPE10", "percent_off": 10, "duration": "forever"}
            )
        )
        keep(
            api.ok(
                "POST",
                "/v1/coupons",
                {
                    "amount_off": 500,
                    "currency": "eur",
                    "duration": "repeating",
                    "duration_in_months": 3,
                },
            )
        )
        promo = keep(
            api.ok(
                "POST",
                "/v1/promotion_codes",
                {"code": "SHAPE", "promotion": {"type": "coupon", "coupon": coupon["id"]}},
            )
        )
        product = keep(api.ok("POST", "/v1/products", {"name": "Plan"}))
        price = keep(
            api.ok(
                "POST",
                "/v1/prices",
                {
                    "product": product["id"],
                    "unit_amount": 1200,
                    "currency": "eur",
                    "recurring": {"interval": "month"},
                },
            )
        )
        sub = keep(
            api.ok(
                "POST",
                "/v1/subscriptions",
                {
                    "customer": cid,
                    "items": [{"price": price["id"]}],
                    "discounts": [{"promotion_code": promo["id"]}],
                },
            )
        )
        expanded = api.ok("GET", f"/v1/subscriptions/{sub['id']}", {"expand": ["discounts"]})
        keep(expanded["discounts"][0])
        schedule = api.ok("POST", "/v1/subscription_schedules", {"from_subscription": sub["id"]})
        phase = schedule["phases"][0]
        keep(
            api.ok(
                "POST",
                f"/v1/subscription_schedules/{schedule['id']}",
                {
                    "end_behavior": "release",
                    "phases": [
                        {
                            "start_date": phase["start_date"],
                            "end_date": phase["end_date"],
                            "items": [{"price": price["id"], "quantity": 1}],
                        },
                        {"items": [{"price": price["id"], "quantity": 2}]},
                    ],
                },
            )
        )
        keep(api.ok("GET", f"/v1/subscription_schedules/{schedule['id']}"))
        keep(api.ok("POST", f"/v1/subscription_schedules/{schedule['id']}/release"))
        keep(api.ok("POST", f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": True}))
        keep(
            api.ok(
                "DELETE",
                f"/v1/subscriptions/{sub['id']}",
                {"cancellation_details": {"comment": "done"}},
            )
        )
        keep(
            api.ok(
                "POST", f"/v1/customers/{cid}/tax_ids", {"type": "eu_vat", "value": "DE123456789"}
            )
        )
        keep(
            api.ok(
                "POST",
                "/v1/billing_portal/sessions",
                {"customer": cid, "return_url": "https://shop.example.com/account"},
            )
        )
        line = {"currency": "eur", "unit_amount": 900, "product_data": {"name": "Order 9"}}
        checkout = {"mode": "payment", "customer": cid, "success_url": "https://shop.example.com",
                    "line_items": [{"quantity": 1, "price_data": line}]}  # fmt: skip
        keep(api.ok("POST", "/v1/checkout/sessions", checkout))
        expired = api.ok("POST", "/v1/checkout/sessions", checkout)
        keep(api.ok("POST", f"/v1/checkout/sessions/{expired['id']}/expire"))
        draft = keep(
            api.ok(
                "POST",
                "/v1/invoices",
                {
                    "customer": cid,
                    "collection_method": "send_invoice",
                    "days_until_due": 14,
                    "currency": "eur",
                },
            )
        )
        keep(
            api.ok(
                "POST",
                "/v1/invoiceitems",
                {
                    "customer": cid,
                    "invoice": draft["id"],
                    "amount": 2500,
                    "currency": "eur",
                    "description": "Setup",
                },
            )
        )
        keep(api.ok("POST", f"/v1/invoices/{draft['id']}/finalize"))
        keep(api.ok("POST", f"/v1/invoices/{draft['id']}/send"))
        for invoice in api.ok("GET", "/v1/invoices", {"customer": cid, "limit": 100})["data"]:
            keep(invoice)
            got.setdefault("line_item", []).extend(invoice["lines"]["data"])
            paid = api.ok("GET", "/v1/invoice_payments", {"invoice": invoice["id"]})["data"]
            got.setdefault("invoice_payment", []).extend(paid)
        for listing in api.ok("GET", "/v1/subscriptions", {"customer": cid, "status": "all"})[
            "data"
        ]:
            got.setdefault("subscription_item", []).extend(listing["items"]["data"])
            got.setdefault("plan", []).extend(i["plan"] for i in listing["items"]["data"])
        got["event"] = api.ok("GET", "/v1/events", {"limit": 100})["data"]
        deleted = api.ok("DELETE", f"/v1/customers/{api.ok('POST', '/v1/customers', {})['id']}")
        got["deleted_customer"] = [deleted]
        yield emulator, got


KINDS = sorted(k for k in FIXTURES if k != "deleted_tax_id")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_object_has_stripes_keys_and_types(world: Any, kind: str) -> None:
    _, got = world
    objects = got.get(kind, [])
    assert objects, f"the emulator made no {kind}"
    problems = [p for obj in objects for p in shape_problems(obj, FIXTURES[kind], kind)]
    if kind == "event":
        problems = [p for p in problems if not p.startswith("event.data.object")]
    assert problems == []


def test_event_payloads_have_the_shape_of_their_object(world: Any) -> None:
    _, got = world
    kinds = set()
    for event in got["event"]:
        obj = event["data"]["object"]
        kinds.add(obj["object"])
        assert shape_problems(obj, FIXTURES[obj["object"]], event["type"]) == []
    assert {"charge", "refund", "payment_intent", "subscription", "invoice", "dispute"} <= kinds


def test_the_shape_check_catches_drift() -> None:
    charge = json.loads(json.dumps(FIXTURES["charge"]))
    charge["amount"] = "100"
    charge["surprise"] = True
    del charge["captured"]
    assert shape_problems(charge, FIXTURES["charge"], "charge") == [
        "charge.captured: missing",
        "charge.surprise: not in Stripe's object",
        "charge.amount: str, Stripe has int",
    ]


@pytest.fixture
def emulator() -> Iterator[StripeEmulator]:
    with StripeEmulator() as em:
        yield em


@pytest.fixture
def api(emulator: StripeEmulator) -> Api:
    return Api(emulator)


def test_every_answer_has_a_request_id_and_the_key_is_checked(emulator: StripeEmulator) -> None:
    anonymous = httpx.get(f"{emulator.url}/v1/customers")
    assert anonymous.status_code == 401
    assert anonymous.headers["Request-Id"].startswith("req_")
    assert "did not provide an API key" in anonymous.json()["error"]["message"]
    wrong = httpx.get(
        f"{emulator.url}/v1/customers", headers={"Authorization": "Bearer sk_test_wrong"}
    )
    assert wrong.status_code == 401 and "Invalid API Key" in wrong.json()["error"]["message"]


def test_unknown_routes_and_parameters_are_refused_like_stripe(api: Api) -> None:
    assert api.error("GET", "/v1/nothing", status=404)["message"].startswith(
        "Unrecognized request URL"
    )
    error = api.error("POST", "/v1/customers", {"coupon": "X"})
    assert error["code"] == "parameter_unknown" and error["param"] == "coupon"


def test_a_key_replays_its_first_answer_and_refuses_other_parameters(
    emulator: StripeEmulator, api: Api
) -> None:
    customer = emulator.add_customer("k@example.com")
    charge = emulator.add_payment(customer["id"], 3000)
    first = api.call("POST", "/v1/refunds", {"charge": charge["id"], "amount": 1000}, key="k-1")
    again = api.call("POST", "/v1/refunds", {"charge": charge["id"], "amount": 1000}, key="k-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert "Idempotent-Replayed" not in first.headers
    other = api.call("POST", "/v1/refunds", {"charge": charge["id"], "amount": 2000}, key="k-1")
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    elsewhere = api.call("POST", "/v1/coupons", {"percent_off": 5, "duration": "once"}, key="k-1")
    assert elsewhere.json()["error"]["type"] == "idempotency_error"
    assert emulator.get(charge["id"])["amount_refunded"] == 1000


def test_a_request_refused_by_validation_does_not_use_up_its_key(
    api: Api, emulator: StripeEmulator
) -> None:
    customer = emulator.add_customer("v@example.com")
    bad = api.call("POST", "/v1/refunds", {"charge": "ch_x", "amount": "ten"}, key="k-2")
    assert bad.json()["error"]["code"] == "parameter_invalid_integer"
    charge = emulator.add_payment(customer["id"], 1000)
    good = api.call("POST", "/v1/refunds", {"charge": charge["id"], "amount": 100}, key="k-2")
    assert good.status_code == 200


def test_refunds_keep_stripes_limits_and_errors(emulator: StripeEmulator, api: Api) -> None:
    customer = emulator.add_customer("r@example.com")
    charge = emulator.add_payment(customer["id"], 10000, "eur")
    api.ok("POST", "/v1/refunds", {"charge": charge["id"], "amount": 6000})
    over = api.error("POST", "/v1/refunds", {"charge": charge["id"], "amount": 5000})
    assert over == {
        "message": "Refund amount (€50.00) is greater than unrefunded amount on charge (€40.00)",
        "type": "invalid_request_error",
        "param": "amount",
    }
    api.ok("POST", "/v1/refunds", {"charge": charge["id"]})
    done = api.error("POST", "/v1/refunds", {"charge": charge["id"], "amount": 1})
    assert done["code"] == "charge_already_refunded"
    bad_reason = api.error("POST", "/v1/refunds", {"charge": charge["id"], "reason": "goodwill"})
    assert bad_reason["param"] == "reason"
    disputed = emulator.add_payment(customer["id"], 2000, payment_method="pm_card_createDispute")
    assert api.error("POST", "/v1/refunds", {"charge": disputed["id"]})["code"] == "charge_disputed"
    hold = emulator.add_payment(customer["id"], 2000, capture=False)
    partial = api.error("POST", "/v1/refunds", {"charge": hold["id"], "amount": 500})
    assert "cannot partially refund an uncaptured charge" in partial["message"]
    yen = emulator.add_payment(customer["id"], 500, "jpy")
    assert (
        "¥600" in api.error("POST", "/v1/refunds", {"charge": yen["id"], "amount": 600})["message"]
    )


def test_manual_capture_partial_and_cancel(emulator: StripeEmulator, api: Api) -> None:
    customer = emulator.add_customer("c@example.com")
    hold = emulator.add_payment(customer["id"], 5000, capture=False)
    intent = hold["payment_intent"]
    assert api.ok("GET", f"/v1/payment_intents/{intent}")["status"] == "requires_capture"
    too_much = api.error(
        "POST", f"/v1/payment_intents/{intent}/capture", {"amount_to_capture": 6000}
    )
    assert too_much["code"] == "amount_too_large"
    captured = api.ok("POST", f"/v1/payment_intents/{intent}/capture", {"amount_to_capture": 3000})
    assert (captured["status"], captured["amount_received"]) == ("succeeded", 3000)
    charge = emulator.get(hold["id"])
    assert (charge["captured"], charge["amount_captured"], charge["amount_refunded"]) == (
        True,
        3000,
        2000,
    )
    again = api.error("POST", f"/v1/payment_intents/{intent}/cancel")
    assert again["code"] == "payment_intent_unexpected_state"
    other = emulator.add_payment(customer["id"], 5000, capture=False)
    canceled = api.ok("POST", f"/v1/payment_intents/{other['payment_intent']}/cancel")
    assert canceled["status"] == "canceled"
    released = emulator.get(other["id"])
    assert (released["captured"], released["refunded"]) == (False, True)


def test_subscriptions_cancel_at_period_end_then_now(emulator: StripeEmulator, api: Api) -> None:
    customer = emulator.add_customer("s@example.com")
    price = emulator.add_price(1000)
    sub = emulator.add_subscription(customer["id"], price["id"])
    later = api.ok("POST", f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": True})
    assert later["status"] == "active" and later["cancel_at_period_end"] is True
    assert later["cancel_at"] == sub["items"]["data"][0]["current_period_end"]
    now = api.ok(
        "DELETE", f"/v1/subscriptions/{sub['id']}", {"cancellation_details": {"comment": "bye"}}
    )
    assert now["status"] == "canceled" and now["cancellation_details"]["comment"] == "bye"
    frozen = api.error("POST", f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": False})
    assert "canceled subscription" in frozen["message"]
    assert api.ok("POST", f"/v1/subscriptions/{sub['id']}", {"metadata": {"k": "v"}})[
        "metadata"
    ] == {"k": "v"}
    assert api.ok("GET", "/v1/subscriptions", {"customer": customer["id"]})["data"] == []
    assert (
        len(
            api.ok("GET", "/v1/subscriptions", {"customer": customer["id"], "status": "all"})[
                "data"
            ]
        )
        == 1
    )


def test_lists_are_newest_first_and_page(emulator: StripeEmulator, api: Api) -> None:
    made = [emulator.add_customer(f"p{i}@example.com")["id"] for i in range(5)]
    first = api.ok("GET", "/v1/customers", {"limit": 2})
    assert [c["id"] for c in first["data"]] == made[::-1][:2] and first["has_more"]
    rest = api.ok("GET", "/v1/customers", {"limit": 10, "starting_after": first["data"][-1]["id"]})
    assert [c["id"] for c in rest["data"]] == made[::-1][2:] and not rest["has_more"]
    back = api.ok("GET", "/v1/customers", {"limit": 1, "ending_before": made[2]})
    assert [c["id"] for c in back["data"]] == [made[3]] and back["has_more"]


def test_customer_search_speaks_stripes_query_language(emulator: StripeEmulator, api: Api) -> None:
    jane = emulator.add_customer("Jane.Doe@Example.com", "Jane Doe")
    emulator.add_customer("john@example.com", "John O'Hara")

    def ids(query: str) -> list[str]:
        return [c["id"] for c in api.ok("GET", "/v1/customers/search", {"query": query})["data"]]

    assert ids("email:'jane.doe@example.com'") == [jane["id"]]
    assert len(ids("email:'jane.doe@example.com' OR name~'hara'")) == 2
    assert ids("email:'jane.doe@example.com' AND name:'nobody'") == []
    assert len(ids("name:'John O\\'Hara'")) == 1
    assert api.error("GET", "/v1/customers/search", {"query": "email:x"})["param"] == "query"
    # The exact list is case-sensitive, unlike search.
    assert api.ok("GET", "/v1/customers", {"email": "jane.doe@example.com"})["data"] == []
    emulator.search = False
    assert api.error("GET", "/v1/customers/search", {"query": "email:'a'"}, status=404)


def test_faults_fail_lose_or_delay_the_next_requests(emulator: StripeEmulator, api: Api) -> None:
    customer = emulator.add_customer("f@example.com")
    charge = emulator.add_payment(customer["id"], 1000)
    emulator.fail_next(1, 429)
    limited = api.call("GET", f"/v1/charges/{charge['id']}")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit"
    emulator.fail_next(1, 502, after=True, path="/v1/refunds")
    lost = api.call("POST", "/v1/refunds", {"charge": charge["id"], "amount": 100}, key="lost")
    assert lost.status_code == 502
    assert emulator.get(charge["id"])["amount_refunded"] == 100  # it ran; only the answer was lost
    emulator.delay_next(0.3)
    started = time.monotonic()
    assert api.call("GET", f"/v1/charges/{charge['id']}").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_billing_portal_sessions_open_a_page_and_refuse_like_stripe(
    emulator: StripeEmulator, api: Api
) -> None:
    customer = emulator.add_customer("portal@example.com")
    back = "https://shop.example.com/billing?tab=card"
    session = api.ok(
        "POST", "/v1/billing_portal/sessions", {"customer": customer["id"], "return_url": back}
    )
    assert session["id"].startswith("bps_") and session["object"] == "billing_portal.session"
    assert (session["customer"], session["return_url"], session["flow"]) == (
        customer["id"],
        back,
        None,
    )
    assert session["configuration"] == emulator.portal_configuration
    page = httpx.get(session["url"])
    assert page.status_code == 200 and "portal@example.com" in page.text
    saved = httpx.post(session["url"])
    assert (saved.status_code, saved.headers["location"]) == (303, back)
    assert emulator.portal_card_updates == [customer["id"]]
    assert httpx.get(session["url"] + "x").status_code == 404
    unknown = api.error(
        "POST",
        "/v1/billing_portal/sessions",
        {"customer": "cus_nobody", "return_url": back},
        status=404,
    )
    assert (unknown["code"], unknown["param"]) == ("resource_missing", "customer")
    no_return = api.error("POST", "/v1/billing_portal/sessions", {"customer": customer["id"]})
    assert (no_return["code"], no_return["param"]) == ("parameter_missing", "return_url")
    bad_url = api.error(
        "POST", "/v1/billing_portal/sessions", {"customer": customer["id"], "return_url": "x"}
    )
    assert bad_url["code"] == "url_invalid"
    emulator.billing_portal = False
    unset = api.error(
        "POST", "/v1/billing_portal/sessions", {"customer": customer["id"], "return_url": back}
    )
    assert unset["type"] == "invalid_request_error" and "portal settings" in unset["message"]


def test_webhook_deliveries_verify_with_the_stripe_sdk(emulator: StripeEmulator) -> None:
    customer = emulator.add_customer("w@example.com")
    charge = emulator.add_payment(customer["id"], 1000)
    event = emulator.event("charge.succeeded", charge, idempotency_key="key-1")
    body, headers = emulator.delivery(event, "whsec_test")
    verified = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_test")
    assert verified.id == event["id"] and verified.data.object.id == charge["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_other")


def test_finalized_invoices_link_a_pdf_that_opens(emulator: StripeEmulator) -> None:
    customer = emulator.add_customer("i@example.com")
    invoice = emulator.add_invoice(customer["id"], 2500, finalize=True)
    assert invoice["status"] == "open" and invoice["number"]
    pdf = httpx.get(invoice["invoice_pdf"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-1.4")
    assert pdf.content.rstrip().endswith(b"%%EOF")
    assert invoice["number"] in httpx.get(invoice["hosted_invoice_url"]).text


def test_form_keys_unflatten_into_objects_and_arrays() -> None:
    pairs = [
        ("items[0][price]", "p1"),
        ("items[1][price]", "p2"),
        ("items[1][quantity]", "2"),
        ("metadata[a]", "b"),
        ("expand[]", "x"),
        ("expand[]", "y"),
        ("email", ""),
    ]
    assert unflatten(pairs) == {
        "items": [{"price": "p1"}, {"price": "p2", "quantity": "2"}],
        "metadata": {"a": "b"},
        "expand": ["x", "y"],
        "email": "",
    }


def test_a_subscription_has_one_schedule_whose_phases_apply_when_their_time_comes(
    emulator: StripeEmulator, api: Api
) -> None:
    customer = emulator.add_customer("sched@example.com")
    basic, team = emulator.add_price(2000), emulator.add_price(5000, nickname="Team")
    sub = emulator.add_subscription(customer["id"], basic["id"])
    made = api.ok("POST", "/v1/subscription_schedules", {"from_subscription": sub["id"]})
    again = api.error("POST", "/v1/subscription_schedules", {"from_subscription": sub["id"]})
    assert "already attached to a schedule" in again["message"]
    now = made["phases"][0]
    moved = api.error(
        "POST",
        f"/v1/subscription_schedules/{made['id']}",
        {"phases": [{"start_date": now["start_date"] + 1, "items": [{"price": team["id"]}]}]},
    )
    assert moved["message"] == "You can not modify the start date of the current phase."
    api.ok(
        "POST",
        f"/v1/subscription_schedules/{made['id']}",
        {
            "phases": [
                {
                    "start_date": now["start_date"],
                    "end_date": now["end_date"],
                    "items": [{"price": basic["id"]}],
                },
                {"items": [{"price": team["id"]}]},
            ],
        },
    )
    emulator.advance_schedules(now["end_date"] - 1)
    assert emulator.get(sub["id"])["items"]["data"][0]["price"]["id"] == basic["id"]
    emulator.advance_schedules(now["end_date"])
    assert emulator.get(sub["id"])["items"]["data"][0]["price"]["id"] == team["id"]
    later = api.ok("GET", f"/v1/subscription_schedules/{made['id']}")
    emulator.advance_schedules(later["phases"][1]["end_date"])
    done = api.ok("GET", f"/v1/subscription_schedules/{made['id']}")
    assert (done["status"], done["released_subscription"]) == ("released", sub["id"])
    assert emulator.get(sub["id"])["schedule"] is None
