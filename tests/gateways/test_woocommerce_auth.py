"""How the gateway proves itself to a store: Basic auth over HTTPS, OAuth 1.0a over plain HTTP.

The emulator checks OAuth signatures the way WooCommerce's `WC_REST_Authentication` does,
so forged, stale and replayed requests are refused by it as a real store refuses them.
The HTTPS store is served with a throwaway certificate authority made by `trustme`.
"""

from __future__ import annotations

import base64
import hmac
import logging
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import trustme
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_QUERY
from oauthlib.oauth1 import Client as OAuth1Client

from bot.gateways.base import ErrorCode, GatewayError, LookupQuery
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from chargedesk_emulators.woocommerce import (
    PREFIX,
    WooCommerceEmulator,
    oauth_signature,
    signature_base_string,
    woocommerce_api,
)
from tests.fakes.woocommerce_env import EMAIL, seed_contract_customer, woocommerce_settings
from tests.gateways.test_woocommerce import usd


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA of the test's own, and a certificate it signed for 127.0.0.1: (ca, cert, key)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.cert_chain_pems[0].write_to_path(str(paths[1]))
    cert.private_key_pem.write_to_path(str(paths[2]))
    return paths


@pytest.fixture
def https_store(tls: tuple[Path, Path, Path]) -> Iterator[WooCommerceEmulator]:
    _, cert, key = tls
    with woocommerce_api(certfile=cert, keyfile=key) as api:
        yield api


@pytest.fixture
def http_store() -> Iterator[WooCommerceEmulator]:
    with woocommerce_api() as api:
        yield api


def signer(api: WooCommerceEmulator, **options: object) -> OAuth1Client:
    return OAuth1Client(
        api.consumer_key,
        client_secret=str(options.pop("secret", api.consumer_secret)),
        signature_method=str(options.pop("method", SIGNATURE_HMAC_SHA1)),
        signature_type=SIGNATURE_TYPE_QUERY,
        **options,  # type: ignore[arg-type]
    )


def signed_get(api: WooCommerceEmulator, path: str, client: OAuth1Client) -> httpx.Response:
    uri, _, _ = client.sign(f"{api.base_url}{PREFIX}/{path}", "GET")
    return httpx.get(uri)


# --- the signature WooCommerce computes ---------------------------------------------------------


def test_the_base_string_is_the_one_woocommerces_documentation_shows() -> None:
    base = signature_base_string(
        "get",
        "http://www.example.com/wp-json/wc/v3/orders",
        {"oauth_consumer_key": "abc123", "oauth_signature_method": "HMAC-SHA1"},
    )
    assert base == (
        "GET&http%3A%2F%2Fwww.example.com%2Fwp-json%2Fwc%2Fv3%2Forders"
        "&oauth_consumer_key%3Dabc123%26oauth_signature_method%3DHMAC-SHA1"
    )
    # HMAC over it with `secret&` (no token secret), base64: RFC 5849 section 3.4.2.
    expected = base64.b64encode(hmac.new(b"s&", base.encode(), "sha1").digest()).decode()
    assert oauth_signature(base, "s", "HMAC-SHA1") == expected


# --- plain HTTP: OAuth 1.0a -----------------------------------------------------------------------


async def test_over_http_every_request_is_signed_and_the_secret_never_travels(
    http_store: WooCommerceEmulator,
) -> None:
    seeded = seed_contract_customer(http_store)
    gw = WooCommerceGateway(woocommerce_settings(http_store), backoff=0.01)
    try:
        (profile,) = await gw.lookup(LookupQuery.parse(EMAIL))
        await gw.refund(
            seeded.charge_id, usd("5.00"), reason="goodwill", idempotency_key="apr_sig001"
        )
    finally:
        await gw.close()
    assert profile.customer.id == seeded.customer_id
    secret = http_store.consumer_secret
    for exchange in http_store.exchanges:
        query = parse_qs(exchange.raw_query)
        assert query["oauth_signature_method"] == ["HMAC-SHA256"]
        assert query["oauth_consumer_key"] == [http_store.consumer_key]
        assert "authorization" not in exchange.headers
        assert secret not in exchange.raw_query and secret.encode() not in exchange.body
    nonces = [parse_qs(e.raw_query)["oauth_nonce"][0] for e in http_store.exchanges]
    assert len(set(nonces)) == len(nonces)  # every request, retries included, signed afresh


def test_a_forged_signature_is_refused(http_store: WooCommerceEmulator) -> None:
    answer = signed_get(http_store, "orders", signer(http_store, secret="cs_guessed"))
    assert answer.status_code == 401
    assert answer.json() == {
        "code": "woocommerce_rest_authentication_error",
        "message": "Invalid signature - provided signature does not match.",
        "data": {"status": 401},
    }


def test_a_stale_signature_is_refused(http_store: WooCommerceEmulator) -> None:
    old = str(int(time.time()) - 16 * 60)  # outside WooCommerce's 15-minute window
    answer = signed_get(http_store, "orders", signer(http_store, timestamp=old))
    assert (answer.status_code, answer.json()["message"]) == (401, "Invalid timestamp.")


def test_a_replayed_request_is_refused(http_store: WooCommerceEmulator) -> None:
    first = signed_get(http_store, "orders", signer(http_store))
    replay = httpx.get(str(first.request.url))
    assert first.status_code == 200
    assert (replay.status_code, replay.json()["message"]) == (
        401,
        "Invalid nonce - nonce has already been used.",
    )


def test_a_request_signed_for_another_address_is_refused(http_store: WooCommerceEmulator) -> None:
    # WooCommerce signs against the store's own home URL, never the Host the client used.
    client = signer(http_store)
    uri, _, _ = client.sign(
        f"{http_store.base_url.replace('127.0.0.1', 'localhost')}{PREFIX}/orders", "GET"
    )
    answer = httpx.get(uri.replace("localhost", "127.0.0.1"))
    assert answer.status_code == 401 and "does not match" in answer.json()["message"]


def test_a_half_signed_request_names_what_is_missing(http_store: WooCommerceEmulator) -> None:
    answer = httpx.get(
        f"{http_store.base_url}{PREFIX}/orders",
        params={"oauth_consumer_key": http_store.consumer_key, "oauth_nonce": "abc"},
    )
    assert answer.json() == {
        "code": "woocommerce_rest_authentication_missing_parameter",
        "message": "Missing OAuth parameters oauth_timestamp, oauth_signature, oauth_signature_method",
        "data": {"status": 401},
    }


def test_basic_auth_over_plain_http_is_not_accepted(http_store: WooCommerceEmulator) -> None:
    answer = httpx.get(
        f"{http_store.base_url}{PREFIX}/orders",
        auth=(http_store.consumer_key, http_store.consumer_secret),
    )
    assert (answer.status_code, answer.json()["code"]) == (401, "woocommerce_rest_cannot_view")


async def test_wrong_credentials_say_what_to_check_without_echoing_the_secret(
    http_store: WooCommerceEmulator,
) -> None:
    seeded = seed_contract_customer(http_store)
    gw = WooCommerceGateway(
        woocommerce_settings(http_store, consumer_secret="cs_wrong_secret_value"), backoff=0.01
    )
    try:
        with pytest.raises(GatewayError) as info:
            await gw.get_charge(seeded.charge_id)
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.rejected
    assert "check woocommerce.consumer_key and woocommerce.consumer_secret" in info.value.message
    assert "Read/Write" in info.value.message
    assert "cs_wrong_secret_value" not in info.value.message


async def test_a_read_only_key_cannot_refund(http_store: WooCommerceEmulator) -> None:
    seeded = seed_contract_customer(http_store)
    http_store.add_key("ck_reader", "cs_reader", "read")
    gw = WooCommerceGateway(
        woocommerce_settings(http_store, consumer_key="ck_reader", consumer_secret="cs_reader"),
        backoff=0.01,
    )
    try:
        assert (await gw.get_charge(seeded.charge_id)).id == seeded.charge_id
        with pytest.raises(GatewayError) as info:
            await gw.refund(
                seeded.charge_id, usd("5.00"), reason="goodwill", idempotency_key="k-ro"
            )
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.rejected
    assert info.value.raw_message == "The API key provided does not have write permissions."
    assert http_store.refunds == {}


# --- HTTPS: Basic auth ----------------------------------------------------------------------------


async def test_over_https_basic_auth_is_used_with_the_stores_certificate(
    https_store: WooCommerceEmulator, tls: tuple[Path, Path, Path]
) -> None:
    seeded = seed_contract_customer(https_store)
    gw = WooCommerceGateway(woocommerce_settings(https_store, ca_file=tls[0]), backoff=0.01)
    try:
        (profile,) = await gw.lookup(LookupQuery.parse(EMAIL))
        refund = await gw.refund(
            seeded.charge_id, usd("7.50"), reason="goodwill", idempotency_key="apr_tls001"
        )
    finally:
        await gw.close()
    assert https_store.base_url.startswith("https://")
    assert profile.customer.id == seeded.customer_id and refund.amount == usd("7.50")
    expected = (
        "Basic "
        + base64.b64encode(
            f"{https_store.consumer_key}:{https_store.consumer_secret}".encode()
        ).decode()
    )
    assert {e.headers.get("authorization") for e in https_store.exchanges} == {expected}
    assert all("oauth_signature" not in e.raw_query for e in https_store.exchanges)


async def test_an_untrusted_certificate_is_refused_and_says_how_to_trust_it(
    https_store: WooCommerceEmulator,
) -> None:
    gw = WooCommerceGateway(woocommerce_settings(https_store, max_retries=0), backoff=0.01)
    try:
        with pytest.raises(GatewayError) as info:
            await gw.lookup(LookupQuery.parse(EMAIL))
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.unavailable and "woocommerce.ca_file" in info.value.message
    assert https_store.exchanges == []  # nothing, credentials included, reached the server


def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    from bot.settings import ConfigError

    with woocommerce_api() as api, pytest.raises(ConfigError, match=r"woocommerce\.ca_file"):
        WooCommerceGateway(woocommerce_settings(api, ca_file=tmp_path / "missing.pem"))


def test_a_wrong_secret_over_https_is_named(
    https_store: WooCommerceEmulator, tls: tuple[Path, Path, Path]
) -> None:
    answer = httpx.get(
        f"{https_store.base_url}{PREFIX}/orders",
        auth=(https_store.consumer_key, "cs_guessed"),
        verify=ssl.create_default_context(cafile=str(tls[0])),
    )
    assert (answer.status_code, answer.json()["message"]) == (401, "Consumer secret is invalid.")


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_consumer_secret_never_reaches_the_logs(
    scheme: str, tls: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    options = {"certfile": tls[1], "keyfile": tls[2]} if scheme == "https" else {}
    with woocommerce_api(**options) as api:  # type: ignore[arg-type]
        seeded = seed_contract_customer(api)
        api.fail_next(1, 503, method="GET")  # a retry, logged
        gw = WooCommerceGateway(
            woocommerce_settings(api, ca_file=tls[0] if scheme == "https" else None), backoff=0.01
        )
        try:
            await gw.lookup(LookupQuery.parse(EMAIL))
            await gw.refund(
                seeded.charge_id, usd("5.00"), reason="goodwill", idempotency_key="apr_logs01"
            )
            api.gateways["stripe"].refunds = False
            with pytest.raises(GatewayError):
                await gw.refund(
                    seeded.charge_id, usd("5.00"), reason="goodwill", idempotency_key="apr_logs02"
                )
        finally:
            await gw.close()
        secret = api.consumer_secret
    assert caplog.records  # httpx and the gateway did log
    assert secret not in caplog.text
    basic = base64.b64encode(f"{api.consumer_key}:{secret}".encode()).decode()
    assert basic not in caplog.text
    assert secret not in repr(woocommerce_settings(api))


# --- the emulator as a command --------------------------------------------------------------------


def test_the_emulator_runs_as_a_command_and_answers_the_key_it_prints() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargedesk_emulators.woocommerce", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        while "listening on" not in (line := proc.stdout.readline()):
            assert line, banner
            banner += line
        url = line.rsplit(" ", 1)[1].strip()
        key = banner.split("consumer key ", 1)[1].split(",", 1)[0]
        secret = banner.split("consumer secret ", 1)[1].split(",", 1)[0]
        client = OAuth1Client(key, client_secret=secret, signature_type=SIGNATURE_TYPE_QUERY)
        uri, _, _ = client.sign(f"{url}{PREFIX}/customers?email=nobody%40example.com", "GET")
        good = httpx.get(uri)
        forged = httpx.get(f"{url}{PREFIX}/customers", auth=(key, secret))  # Basic, over HTTP
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert (good.status_code, good.json(), good.headers["x-wp-total"]) == (200, [], "0")
    assert forged.status_code == 401
    assert "CHARGEDESK_WOOCOMMERCE__STORE_URL=" in banner


def test_the_emulator_explains_its_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chargedesk_emulators.woocommerce", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "--port" in done.stdout


def test_lists_page_at_ten_and_refuse_more_than_a_hundred(http_store: WooCommerceEmulator) -> None:
    user = http_store.add_customer("pages@example.com")
    for _ in range(23):
        http_store.add_order("1.00", customer_id=user)
    first = signed_get(http_store, "orders", signer(http_store))
    assert (len(first.json()), first.headers["x-wp-total"], first.headers["x-wp-totalpages"]) == (
        10,
        "23",
        "3",
    )
    assert 'rel="next"' in first.headers["link"]
    too_many = signed_get(http_store, "orders?per_page=101", signer(http_store))
    assert too_many.status_code == 400
    assert too_many.json()["data"]["params"] == {
        "per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"
    }


def test_refund_refusals_have_woocommerces_bare_number_data(
    http_store: WooCommerceEmulator,
) -> None:
    order = http_store.add_order("10.00")
    client = signer(http_store)
    uri, _, _ = client.sign(f"{http_store.base_url}{PREFIX}/orders/{order}/refunds", "POST")
    answer = httpx.post(uri, json={"amount": "10.01"})
    assert answer.status_code == 500
    assert answer.json() == {
        "code": "woocommerce_rest_cannot_create_order_refund",
        "message": "Invalid refund amount.",
        "data": 500,
    }
