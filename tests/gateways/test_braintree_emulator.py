"""The Braintree emulator answers as Braintree does: XML, its validation errors, its rules."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import braintree
import httpx
import pytest

from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.emulators.test_command_line import running


@pytest.fixture
def api() -> Iterator[BraintreeEmulator]:
    with braintree_api() as emulator:
        yield emulator


def sdk_for(
    api: BraintreeEmulator, url: str | None = None, **keys: str
) -> braintree.BraintreeGateway:
    host, port = (url or api.base_url).removeprefix("http://").rsplit(":", 1)
    environment = braintree.Environment("custom", host, port, f"http://{host}:{port}", False, None)
    config = braintree.Configuration(
        environment=environment,
        merchant_id=keys.get("merchant_id", api.merchant_id),
        public_key=keys.get("public_key", api.public_key),
        private_key=keys.get("private_key", api.private_key),
        timeout=5,
    )
    return braintree.BraintreeGateway(config)


def raw(api: BraintreeEmulator, method: str, path: str, body: str = "") -> httpx.Response:
    token = base64.b64encode(f"{api.public_key}:{api.private_key}".encode()).decode()
    return httpx.request(
        method,
        f"{api.base_url}/merchants/{api.merchant_id}{path}",
        content=body,
        headers={
            "Authorization": f"Basic {token}",
            "X-ApiVersion": "6",
            "Content-Type": "application/xml",
        },
    )


def error_codes(result: object) -> list[tuple[str, str]]:
    return [(e.code, e.attribute) for e in result.errors.deep_errors]  # type: ignore[attr-defined]


def test_refund_refusals_are_braintrees_validation_errors(api: BraintreeEmulator) -> None:
    customer = api.add_customer("jane@example.com")
    authorized = api.add_sale(customer, "50.00", status="authorized")
    settling = api.add_sale(customer, "50.00", status="settling")
    settled = api.add_sale(customer, "50.00")
    sdk = sdk_for(api)
    unsettled = sdk.transaction.refund(authorized, "10.00")
    assert not unsettled.is_success and error_codes(unsettled) == [("91506", "base")]
    assert unsettled.message == "Cannot refund transaction unless it is settled."
    assert error_codes(sdk.transaction.refund(settling, "10.00")) == [("91574", "base")]
    too_large = sdk.transaction.refund(settled, "50.01")
    assert error_codes(too_large) == [("91521", "amount")]
    assert too_large.errors.for_object("transaction").on("amount")[0].code == "91521"
    assert sdk.transaction.refund(settled, "50.00").is_success
    assert error_codes(sdk.transaction.refund(settled, "1.00")) == [("91512", "base")]
    assert error_codes(sdk.transaction.refund(settled, "1.005")) == [("81503", "amount")]


def test_the_error_document_is_braintrees_xml(api: BraintreeEmulator) -> None:
    sale = api.add_sale(api.add_customer("jane@example.com"), "50.00", status="authorized")
    answer = raw(api, "POST", f"/transactions/{sale}/refund",
                 "<transaction><amount>10.00</amount></transaction>")  # fmt: skip
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/xml"
    root = ET.fromstring(answer.content)
    assert root.tag == "api-error-response"
    (error,) = root.findall("./errors/transaction/errors/error")
    assert error.findtext("code") == "91506" and error.find("attribute").get("type") == "symbol"
    assert root.findtext("./params/transaction/amount") == "10.00"
    assert root.findtext("./params/id") == sale
    assert root.findtext("message") == "Cannot refund transaction unless it is settled."


def test_a_refund_without_an_order_id_takes_its_sales(api: BraintreeEmulator) -> None:
    sale = api.add_sale(api.add_customer("jane@example.com"), "50.00", order_id="A-17")
    sdk = sdk_for(api)
    inherited = sdk.transaction.refund(sale, "5.00").transaction
    named = sdk.transaction.refund(sale, {"amount": "5.00", "order_id": "chargedesk:k"}).transaction
    assert (inherited.order_id, named.order_id) == ("A-17", "chargedesk:k")
    assert (inherited.type, inherited.refunded_transaction_id) == ("credit", sale)
    assert sdk.transaction.find(sale).refund_ids == [inherited.id, named.id]


def test_void_and_settlement_follow_the_status_rules(api: BraintreeEmulator) -> None:
    customer = api.add_customer("jane@example.com")
    authorized = api.add_sale(customer, "50.00", status="authorized")
    settled = api.add_sale(customer, "50.00")
    sdk = sdk_for(api)
    assert error_codes(sdk.transaction.submit_for_settlement(authorized, "60.00")) == [
        ("91522", "amount")
    ]
    submitted = sdk.transaction.submit_for_settlement(authorized, "20.00").transaction
    assert (submitted.status, submitted.amount) == ("submitted_for_settlement", 20)
    assert error_codes(sdk.transaction.submit_for_settlement(authorized)) == [("91507", "base")]
    assert error_codes(sdk.transaction.void(settled)) == [("91504", "base")]
    # The sandbox's settle call, through the SDK's testing gateway.
    assert sdk.testing.settle_transaction(authorized).transaction.status == "settled"
    history = [e.status for e in sdk.transaction.find(authorized).status_history]
    assert history == ["authorized", "submitted_for_settlement", "settling", "settled"]


def test_subscription_rules(api: BraintreeEmulator) -> None:
    customer = api.add_customer("jane@example.com")
    api.add_plan("pro", "Pro", "20.00")
    sub = api.add_subscription(customer, "pro", cycle=3)
    sdk = sdk_for(api)
    too_small = sdk.subscription.update(
        sub, {"never_expires": False, "number_of_billing_cycles": 2}
    )
    assert error_codes(too_small) == [("91909", "number_of_billing_cycles")]
    assert sdk.subscription.cancel(sub).subscription.status == "Canceled"
    assert error_codes(sdk.subscription.cancel(sub)) == [("81905", "base")]
    assert error_codes(sdk.subscription.update(sub, {"price": "1.00"})) == [("81901", "base")]


def test_searches_are_two_steps_and_ignore_case(api: BraintreeEmulator) -> None:
    customer = api.add_customer("Jane.Doe@Example.com")
    sales = [api.add_sale(customer, "10.00", days_ago=d) for d in (3, 1, 2)]
    sdk = sdk_for(api)
    (found,) = sdk.customer.search(braintree.CustomerSearch.email == "jane.doe@example.com").items
    assert found.id == customer
    results = sdk.transaction.search(braintree.TransactionSearch.customer_id == customer)
    assert [t.id for t in results.items] == [sales[1], sales[2], sales[0]]  # newest first
    assert [e.path.rsplit("/", 1)[1] for e in api.exchanges] == [
        "advanced_search_ids",
        "advanced_search",
        "advanced_search_ids",
        "advanced_search",
    ]


def test_wrong_keys_another_merchant_and_an_old_sdk_are_refused(api: BraintreeEmulator) -> None:
    sale = api.add_sale(api.add_customer("jane@example.com"), "10.00")
    with pytest.raises(braintree.exceptions.AuthenticationError):
        sdk_for(api, private_key="wrong").transaction.find(sale)
    with pytest.raises(braintree.exceptions.AuthenticationError):
        sdk_for(api, merchant_id="someone_else").transaction.find(sale)
    with pytest.raises(braintree.exceptions.NotFoundError):
        sdk_for(api).transaction.find("missing1")
    old = httpx.get(f"{api.base_url}/merchants/{api.merchant_id}/transactions/{sale}",
                    auth=(api.public_key, api.private_key), headers={"X-ApiVersion": "3"})  # fmt: skip
    assert old.status_code == 426


def test_notifications_are_what_the_sdk_parses(api: BraintreeEmulator) -> None:
    sale = api.add_sale(api.add_customer("jane@example.com"), "10.00")
    fields = api.notification("transaction_settled", sale)
    assert fields["bt_payload"].endswith("\n") and "\n" in fields["bt_payload"][:-1]
    parsed = sdk_for(api).webhook_notification.parse(fields["bt_signature"], fields["bt_payload"])
    assert (parsed.kind, parsed.transaction.id, parsed.transaction.amount) == (
        "transaction_settled",
        sale,
        10,
    )


def test_the_command_line_prints_credentials_the_sdk_can_use() -> None:
    with running("braintree") as (url, banner):
        merchant, public, private = re.search(
            r"merchant id (\S+), public key (\S+), private key (\S+),", banner
        ).groups()
        keys = {"merchant_id": merchant, "public_key": public, "private_key": private}
        empty = BraintreeEmulator()
        with pytest.raises(braintree.exceptions.NotFoundError):
            sdk_for(empty, url, **keys).transaction.find("missing1")
        with pytest.raises(braintree.exceptions.AuthenticationError):
            sdk_for(empty, url, **{**keys, "private_key": "wrong"}).transaction.find("missing1")
