"""The PayPal emulator answers as PayPal's OpenAPI descriptions say, and enforces its rules."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from chargedesk_emulators.paypal import (
    Exchange,
    PayPalEmulator,
    now,
    paypal_api,
    raw_member,
    schema_problems,
    timestamp,
)


@pytest.fixture
def api() -> Iterator[PayPalEmulator]:
    with paypal_api() as emulator:
        yield emulator


class Client:
    """A bare HTTP client holding a bearer token, as any PayPal integration would."""

    def __init__(self, api: PayPalEmulator) -> None:
        self.http = httpx.Client(base_url=api.base_url, timeout=5)
        basic = base64.b64encode(f"{api.client_id}:{api.client_secret}".encode()).decode()
        answer = self.http.post(
            "/v1/oauth2/token",
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials"},
        )
        assert answer.status_code == 200
        self.token = answer.json()["access_token"]

    def __call__(
        self, method: str, path: str, *, body: Any = None, **headers: str
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.token}", **headers}
        return self.http.request(method, path, json=body, headers=sent)


@pytest.fixture
def call(api: PayPalEmulator) -> Iterator[Client]:
    client = Client(api)
    yield client
    client.http.close()


def issue(answer: httpx.Response) -> str:
    return answer.json()["details"][0]["issue"]


def test_every_answer_matches_paypals_descriptions(api: PayPalEmulator, call: Client) -> None:
    payer = api.add_payer("jane@example.com")
    capture = api.add_capture(payer, "100.00", days_ago=2)
    pending = api.add_capture(payer, "12.00", status="PENDING")
    authorization = api.add_authorization(payer, "50.00")
    second = api.add_authorization(payer, "50.00")
    subscription = api.add_subscription(payer, "20.00", days_ago=45)
    draft = api.add_invoice("jane@example.com", "80.00", status="DRAFT")
    api.add_invoice("jane@example.com", "30.00", status="PAID")
    full = {"Prefer": "return=representation"}
    day = now()
    window = f"start_date={timestamp(day - timedelta(days=30))}&end_date={timestamp(day)}"

    call("GET", f"/v2/payments/captures/{capture}")
    call("GET", f"/v2/payments/captures/{pending}")
    call("GET", "/v2/payments/captures/NOSUCHCAPTURE0001")
    refund = call(
        "POST",
        f"/v2/payments/captures/{capture}/refund",
        body={"amount": {"currency_code": "USD", "value": "30.00"}},
        **full,
        **{"PayPal-Request-Id": "r-1"},
    ).json()
    call("GET", f"/v2/payments/refunds/{refund['id']}")
    call(
        "POST",
        f"/v2/payments/captures/{capture}/refund",
        body={"amount": {"currency_code": "USD", "value": "80.00"}},
    )
    call(
        "POST",
        f"/v2/payments/captures/{capture}/refund",
        body={"amount": {"currency_code": "EUR", "value": "1.00"}},
    )
    call(
        "POST",
        f"/v2/payments/captures/{capture}/refund",
        body={"amount": {"currency_code": "USD", "value": "1.001"}},
    )
    call("POST", f"/v2/payments/captures/{pending}/refund")
    call("POST", f"/v2/payments/captures/{capture}/refund")  # the rest: minimal answer
    call("POST", f"/v2/payments/captures/{capture}/refund")
    call("GET", f"/v2/payments/authorizations/{authorization}")
    captured = call(
        "POST",
        f"/v2/payments/authorizations/{authorization}/capture",
        body={"amount": {"currency_code": "USD", "value": "30.00"}, "final_capture": True},
        **full,
    ).json()
    call("POST", f"/v2/payments/authorizations/{authorization}/capture", body={})
    call("POST", f"/v2/payments/authorizations/{authorization}/void")
    call("POST", f"/v2/payments/authorizations/{second}/void", **full)
    call("POST", f"/v2/payments/authorizations/{second}/void")
    call("POST", f"/v2/payments/authorizations/{second}/capture", body={})
    order = call("GET", f"/v2/payments/captures/{capture}").json()["supplementary_data"]
    call("GET", f"/v2/checkout/orders/{order['related_ids']['order_id']}")
    call("GET", f"/v2/payments/captures/{captured['id']}")
    call("GET", f"/v1/billing/subscriptions/{subscription}?fields=plan")
    call("POST", f"/v1/billing/subscriptions/{subscription}/cancel", body={"reason": "x" * 129})
    call("POST", f"/v1/billing/subscriptions/{subscription}/cancel", body={"reason": "asked"})
    call("POST", f"/v1/billing/subscriptions/{subscription}/cancel", body={"reason": "asked"})
    call("GET", f"/v1/billing/subscriptions/{subscription}")
    call("GET", "/v1/billing/subscriptions/I-NOSUCHSUBSCR")
    call("GET", f"/v1/reporting/transactions?{window}&fields=all&balance_affecting_records_only=N")
    call("GET", f"/v1/reporting/transactions?{window}&fields=transaction_info&page_size=1&page=2")
    far = f"start_date={timestamp(day - timedelta(days=90))}&end_date={timestamp(day - timedelta(days=80))}"
    call("GET", f"/v1/reporting/transactions?{far}")  # nothing then: no transaction_details
    call(
        "GET",
        f"/v1/reporting/transactions?start_date={timestamp(day - timedelta(days=40))}&end_date={timestamp(day)}",
    )
    call("GET", "/v1/reporting/transactions")
    call(
        "POST",
        "/v2/invoicing/search-invoices?total_required=true",
        body={"recipient_email": "JANE@example.com"},
    )
    call("GET", f"/v2/invoicing/invoices/{draft}")
    call("POST", f"/v2/invoicing/invoices/{draft}/send", body={"send_to_recipient": True})
    call("GET", "/v2/invoicing/invoices/INV2-NONE-NONE-NONE-NONE")
    body, headers = api.webhook_delivery("PAYMENT.CAPTURE.COMPLETED", api.capture_json(capture))
    verify = {
        "auth_algo": headers["PAYPAL-AUTH-ALGO"],
        "cert_url": headers["PAYPAL-CERT-URL"],
        "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
        "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
        "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
        "webhook_id": api.webhook_id,
        "webhook_event": json.loads(body),
    }
    call("POST", "/v1/notifications/verify-webhook-signature", body=verify)
    call("POST", "/v1/notifications/verify-webhook-signature", body={"webhook_id": api.webhook_id})
    api.fail_next(1, 500)
    call("GET", f"/v2/payments/captures/{capture}")
    api.fail_next(1, 503)
    call("GET", f"/v1/billing/subscriptions/{subscription}")
    httpx.get(f"{api.base_url}/v2/payments/captures/{capture}")  # no token at all

    statuses = {e.status for e in api.exchanges}
    assert {200, 201, 204, 400, 401, 404, 422, 500, 503} <= statuses
    problems = schema_problems(api.exchanges)
    assert problems == [], "\n".join(problems)


def test_the_check_refuses_an_answer_paypal_would_never_give() -> None:
    drifted = Exchange(
        method="GET",
        path="/v2/payments/captures/ABC",
        query={},
        headers={},
        body=b"",
        status=200,
        response=json.dumps(
            {"id": "ABC", "status": "SETTLED", "amount": {"currency_code": "USD", "value": 1}}
        ).encode(),
    )
    problems = schema_problems([drifted])
    assert len(problems) == 1 and "SETTLED" in problems[0]


def test_tokens_need_the_client_credentials(api: PayPalEmulator, call: Client) -> None:
    wrong = base64.b64encode(f"{api.client_id}:nope".encode()).decode()
    answer = httpx.post(
        f"{api.base_url}/v1/oauth2/token",
        headers={"Authorization": f"Basic {wrong}"},
        data={"grant_type": "client_credentials"},
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["Paypal-Debug-Id"]
    assert call("GET", "/v2/payments/captures/X").status_code == 404
    api.revoke_tokens()
    refused = call("GET", "/v2/payments/captures/X")
    assert refused.status_code == 401 and refused.json()["name"] == "AUTHENTICATION_FAILURE"


def test_refund_limits_use_paypals_issue_names(api: PayPalEmulator, call: Client) -> None:
    payer = api.add_payer("jane@example.com")
    capture = api.add_capture(payer, "100.00")
    huf = api.add_capture(payer, "1000", "HUF")

    def refund(capture_id: str, value: str, currency: str = "USD") -> httpx.Response:
        body = {"amount": {"currency_code": currency, "value": value}}
        return call("POST", f"/v2/payments/captures/{capture_id}/refund", body=body)

    assert refund(capture, "60.00").status_code == 201
    over = refund(capture, "40.01")
    assert over.status_code == 422 and over.json()["name"] == "UNPROCESSABLE_ENTITY"
    assert issue(over) == "REFUND_AMOUNT_EXCEEDED"
    assert issue(refund(capture, "1.00", "EUR")) == "REFUND_CAPTURE_CURRENCY_MISMATCH"
    assert issue(refund(capture, "0.00")) == "CANNOT_BE_ZERO_OR_NEGATIVE"
    assert issue(refund(huf, "10.50", "HUF")) == "DECIMALS_NOT_SUPPORTED"
    assert refund(capture, "40.00").status_code == 201
    assert issue(refund(capture, "1.00")) == "CAPTURE_FULLY_REFUNDED"
    assert api.captures[capture].status == "REFUNDED"


def test_a_request_id_replays_the_first_answer(api: PayPalEmulator, call: Client) -> None:
    payer = api.add_payer("jane@example.com")
    capture = api.add_capture(payer, "100.00")
    body = {"amount": {"currency_code": "USD", "value": "25.00"}}
    path = f"/v2/payments/captures/{capture}/refund"
    first = call("POST", path, body=body, **{"PayPal-Request-Id": "same"})
    again = call("POST", path, body=body, **{"PayPal-Request-Id": "same"})
    other = call("POST", path, body=body, **{"PayPal-Request-Id": "other"})
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert len(api.refunds) == 2


def test_a_lost_answer_still_did_the_work(api: PayPalEmulator, call: Client) -> None:
    payer = api.add_payer("jane@example.com")
    capture = api.add_capture(payer, "100.00")
    api.fail_next(1, 500, after=True)
    lost = call("POST", f"/v2/payments/captures/{capture}/refund", **{"PayPal-Request-Id": "k"})
    assert lost.status_code == 500 and len(api.refunds) == 1
    replay = call("POST", f"/v2/payments/captures/{capture}/refund", **{"PayPal-Request-Id": "k"})
    assert replay.status_code == 201 and len(api.refunds) == 1


def test_transaction_search_spans_31_days_at_most(api: PayPalEmulator, call: Client) -> None:
    payer = api.add_payer("jane@example.com")
    api.add_capture(payer, "10.00", days_ago=200)
    end = now() - timedelta(days=180)
    ok = call(
        "GET",
        f"/v1/reporting/transactions?start_date={timestamp(end - timedelta(days=31))}"
        f"&end_date={timestamp(end)}&fields=all",
    )
    assert ok.status_code == 200 and ok.json()["total_items"] == 1
    assert ok.json()["transaction_details"][0]["payer_info"]["email_address"] == "jane@example.com"
    wide = call(
        "GET",
        f"/v1/reporting/transactions?start_date={timestamp(end - timedelta(days=32))}"
        f"&end_date={timestamp(end)}",
    )
    assert wide.status_code == 400 and wide.json()["name"] == "INVALID_REQUEST"
    assert wide.json()["details"][0] == {
        "field": "end_date",
        "value": timestamp(end),
        "location": "query",
        "issue": "Date range is greater than 31 days",
    }


def test_search_lags_behind_new_transactions(api: PayPalEmulator, call: Client) -> None:
    api.search_lag = timedelta(hours=3)
    payer = api.add_payer("jane@example.com")
    api.add_capture(payer, "10.00", days_ago=1)
    api.add_capture(payer, "20.00")
    found = call(
        "GET",
        f"/v1/reporting/transactions?start_date={timestamp(now() - timedelta(days=5))}"
        f"&end_date={timestamp(now())}",
    ).json()
    assert [
        d["transaction_info"]["transaction_amount"]["value"] for d in found["transaction_details"]
    ] == ["10.00"]


def test_only_deliveries_the_emulator_signed_verify(api: PayPalEmulator, call: Client) -> None:
    body, headers = api.webhook_delivery("PAYMENT.CAPTURE.DENIED", {"id": "X"})

    def verify(event: bytes, **changes: str) -> str:
        fields = {
            "auth_algo": headers["PAYPAL-AUTH-ALGO"],
            "cert_url": headers["PAYPAL-CERT-URL"],
            "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
            "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
            "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
            "webhook_id": api.webhook_id,
            **changes,
        }
        raw = json.dumps(fields)[:-1].encode() + b', "webhook_event": ' + event + b"}"
        answer = call.http.post(
            "/v1/notifications/verify-webhook-signature",
            content=raw,
            headers={"Authorization": f"Bearer {call.token}", "Content-Type": "application/json"},
        )
        return answer.json()["verification_status"]

    assert verify(body) == "SUCCESS"
    assert verify(body.replace(b'"X"', b'"Y"')) == "FAILURE"
    assert verify(json.dumps(json.loads(body), indent=2).encode()) == "FAILURE"
    assert verify(body, webhook_id="OTHERWEBHOOK01") == "FAILURE"
    assert verify(body, transmission_time=timestamp(now() + timedelta(seconds=1))) == "FAILURE"


def test_raw_member_keeps_the_bytes() -> None:
    body = b'{"a": 1, "webhook_event":  {"b" : [1, 2]} , "c": "}"}'
    assert raw_member(body, "webhook_event") == b'{"b" : [1, 2]}'
    assert raw_member(body, "missing") is None
