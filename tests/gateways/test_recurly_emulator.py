"""The Recurly emulator itself: run as a command, and answering as Recurly's API does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, render, schema_problems
from tests.emulators.test_command_line import running

HEADERS = {"Accept": "application/vnd.recurly.v2021-02-25"}


@pytest.fixture
def api() -> Iterator[RecurlyEmulator]:
    with recurly_api() as emulator:
        yield emulator


def client(api: RecurlyEmulator) -> httpx.Client:
    return httpx.Client(base_url=api.base_url, auth=(api.api_key, ""), headers=HEADERS)


def test_the_emulator_runs_as_a_command_and_checks_the_key_it_prints() -> None:
    with running("recurly") as (url, banner):
        key = re.search(r"api key (\S+),", banner).group(1)  # type: ignore[union-attr]
        good = httpx.get(f"{url}/accounts", auth=(key, ""), headers=HEADERS)
        forged = httpx.get(f"{url}/accounts", auth=("guessed", ""), headers=HEADERS)
    assert good.status_code == 200 and good.json()["object"] == "list"
    assert forged.status_code == 401 and forged.json()["error"]["type"] == "unauthorized"
    assert "CHARGEDESK_RECURLY__BASE_URL" in banner


def test_the_emulator_explains_its_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chargedesk_emulators.recurly", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "--port" in done.stdout


def test_a_request_without_the_version_is_refused(api: RecurlyEmulator) -> None:
    answer = httpx.get(f"{api.base_url}/accounts", auth=(api.api_key, ""))
    assert answer.status_code == 406
    assert answer.json()["error"]["type"] == "unknown_api_version"
    assert answer.headers["x-request-id"]


def test_amounts_are_written_exactly(api: RecurlyEmulator) -> None:
    assert render({"a": Decimal("100.00"), "b": [Decimal("-0.10")], "c": "1.0"}) == (
        b'{"a": 100.00, "b": [-0.10], "c": "1.0"}'
    )
    account = api.add_account("exact@example.com")
    invoice, _ = api.add_purchase(account, "19.99", "USD")
    raw = client(api).get(f"/invoices/{invoice}").content
    assert b'"total": 19.99' in raw and b'"refundable_amount": 19.99' in raw


def test_lists_page_by_next(api: RecurlyEmulator) -> None:
    for n in range(5):
        api.add_account("many@example.com", code=f"many-{n}", days_ago=n)
    http = client(api)
    first = http.get("/accounts", params={"email": "many@example.com", "limit": 2}).json()
    assert first["has_more"] and len(first["data"]) == 2
    seen = [a["code"] for a in first["data"]]
    page = first
    while page["has_more"]:
        page = http.get(page["next"]).json()
        seen += [a["code"] for a in page["data"]]
    assert seen == [f"many-{n}" for n in range(5)]  # newest first, each once
    assert page["next"] is None
    assert http.get("/accounts", params={"limit": 201}).json()["error"]["type"] == "validation"


def test_refunds_follow_the_refund_method(api: RecurlyEmulator) -> None:
    http = client(api)
    account = api.add_account("split@example.com")
    invoice, card = api.add_purchase(account, "100.00", "USD", paid_with_credit="30.00")
    assert card is not None
    # Recurly's default: the credit part goes back as credit first.
    default = http.post(f"/invoices/{invoice}/refund", json={"type": "amount", "amount": 40}).json()
    assert (default["type"], default["state"], default["total"]) == ("credit", "open", -40.0)
    assert [t["amount"] for t in default["transactions"]] == [10.0]
    assert api.credit_balance(account, "USD") == Decimal("30.00")
    # transaction_first: to the card while its payment lasts.
    card_first = http.post(
        f"/invoices/{invoice}/refund",
        json={"type": "amount", "amount": 20, "refund_method": "transaction_first"},
    ).json()
    assert [t["amount"] for t in card_first["transactions"]] == [20.0]
    after = http.get(f"/invoices/{invoice}").json()
    assert after["refundable_amount"] == 40.0
    too_much = http.post(f"/invoices/{invoice}/refund", json={"type": "amount", "amount": 40.01})
    assert (
        too_much.status_code == 422 and too_much.json()["error"]["params"][0]["param"] == "amount"
    )


def test_all_transaction_reaches_an_older_payment_when_this_one_is_used_up(
    api: RecurlyEmulator,
) -> None:
    account = api.add_account("older@example.com")
    _, older = api.add_purchase(account, "50.00", "USD", days_ago=10)
    invoice, newer = api.add_purchase(account, "30.00", "USD", paid_with_credit="20.00")
    assert older is not None and newer is not None
    api.refund_in_dashboard(invoice, "30.00", refund_method="all_transaction")
    assert [r.amount for r in api.refunds_of(newer)] == [Decimal("10.00")]
    assert [r.amount for r in api.refunds_of(older)] == [Decimal("20.00")]
    assert api.credit_balance(account, "USD") == 0


def test_line_items_are_refunded_by_quantity(api: RecurlyEmulator) -> None:
    account = api.add_account("lines@example.com")
    invoice, card = api.add_purchase(account, [("Seat", "10.00", 3), ("Setup", "5.00", 1)], "USD")
    seat = api.invoices[invoice].line_ids[0]
    credit_id = api.refund_in_dashboard(
        invoice, line_items=[(seat, 2)], refund_method="all_transaction"
    )
    credit = client(api).get(f"/invoices/{credit_id}").json()
    assert credit["origin"] == "line_item_refund" and credit["total"] == -20.0
    (line,) = credit["line_items"]
    assert (line["previous_line_item_id"], line["quantity"], line["amount"]) == (seat, 2, -20.0)
    assert [r.amount for r in api.refunds_of(card or "")] == [Decimal("20.00")]
    with pytest.raises(Exception, match="between 1 and 1"):
        api.refund_in_dashboard(invoice, line_items=[(seat, 2)])


def test_subscriptions_cancel_then_terminate(api: RecurlyEmulator) -> None:
    http = client(api)
    account = api.add_account("subs@example.com")
    plan = api.add_plan("basic", "Basic", {"USD": "12.00"})
    sub = api.add_subscription(account, plan, "USD", days_ago=5)
    canceled = http.put(f"/subscriptions/{sub}/cancel", json={"timeframe": "bill_date"}).json()
    assert (
        canceled["state"] == "canceled"
        and canceled["expires_at"] == canceled["current_period_ends_at"]
    )
    again = http.put(f"/subscriptions/{sub}/cancel", json={})
    assert again.status_code == 422
    ended = http.delete(f"/subscriptions/{sub}", params={"refund": "full"}).json()
    assert ended["state"] == "expired"
    (paid,) = api.subscriptions[sub].invoice_ids
    (payment,) = api.invoices[paid].transaction_ids
    assert [r.amount for r in api.refunds_of(payment)] == [Decimal("12.00")]
    assert http.delete(f"/subscriptions/{sub}").status_code == 400


def test_errors_are_in_recurlys_shape(api: RecurlyEmulator) -> None:
    http = client(api)
    missing = http.get("/transactions/nothere00000")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "type": "not_found",
            "message": "Couldn't find Transaction with id = nothere00000",
        }
    }
    broken = http.post(
        "/invoices/x/refund", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "bad_request"


def test_the_emulator_answers_as_recurlys_description_says(api: RecurlyEmulator) -> None:
    http = client(api)
    account = api.add_account(
        "schema@example.com", address={"street1": "1 Main St", "country": "US"}
    )
    plan = api.add_plan("basic", "Basic", {"USD": "12.00"}, interval_unit="days", interval_length=7)
    sub = api.add_subscription(account, plan, "USD", days_ago=2)
    invoice, card = api.add_purchase(
        account, [("Seat", "10.00", 3)], "USD", paid_with_credit="5.00"
    )
    auth = api.add_authorization(account, "1.00")
    coupon = api.add_coupon("FIVE", "Five", fixed={"USD": "5.00"}, duration="single_use")
    for path in (
        "/accounts", f"/accounts/{account}", f"/accounts/{account}/transactions",
        f"/accounts/{account}/invoices", f"/accounts/{account}/subscriptions",
        f"/accounts/{account}/coupon_redemptions/active", f"/transactions/{card}",
        f"/transactions/{auth}", f"/invoices/{invoice}", f"/plans/{plan}",
        f"/coupons/{coupon}", f"/subscriptions/{sub}", "/accounts/nothere", "/invoices/number-1",
    ):  # fmt: skip
        http.get(path)
    http.post(
        f"/accounts/{account}/coupon_redemptions/active",
        json={"coupon_id": coupon, "currency": "USD"},
    )
    http.post(f"/invoices/{invoice}/refund", json={"type": "line_items", "line_items": [
        {"id": api.invoices[invoice].line_ids[0], "quantity": 1}]})  # fmt: skip
    http.post(f"/invoices/{invoice}/refund", json={"type": "amount", "amount": 500})
    http.get(f"/invoices/{invoice}/related_invoices")
    http.put(f"/subscriptions/{sub}/cancel", json={"timeframe": "term_end"})
    http.delete(f"/subscriptions/{sub}", params={"refund": "partial"})
    problems = schema_problems(api.exchanges, requests=True)
    assert problems == [], "\n".join(problems)
    assert {e.status for e in api.exchanges} == {200, 201, 404, 422}


def test_deliveries_are_signed_as_recurly_signs(api: RecurlyEmulator) -> None:
    import hashlib
    import hmac

    body, headers = api.webhook_delivery("account", "created", api.add_account("w@example.com"))
    stamp, signature = headers["recurly-signature"].split(",")
    expected = hmac.new(api.webhook_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert signature == expected.hexdigest()
    assert set(json.loads(body)) == {
        "id", "object_type", "site_id", "event_type", "event_time", "account_code",
    }  # fmt: skip
    sub_body, _ = api.webhook_delivery("subscription", "created", api.add_subscription(
        api.add_account("s@example.com"), api.add_plan("p", "P", {"USD": "1.00"})))  # fmt: skip
    assert {"uuid", "account_code"} <= set(json.loads(sub_body))
