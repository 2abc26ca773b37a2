"""The WooCommerce backend of the gateway contract suite: our httpx client against the emulator.

The store is served over plain HTTP, so every request is OAuth 1.0a signed and checked the
way WooCommerce checks it. The contract's customer has an account; the two authorized
charges are orders on hold, not paid yet; the subscriptions come with their first orders,
which the profile lists beside the contract's charges. WooCommerce's REST API has no
capture or void, so that behaviour is skipped here and its Unsupported answers are tested
in tests/gateways/test_woocommerce.py.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.settings import WooCommerceSettings
from chargedesk_emulators.woocommerce import WooCommerceEmulator, woocommerce_api
from tests.fakes.emulated_gateway import contract_env
from tests.gateways.contract import ContractEnv

EMAIL = "jane.doe@example.com"
CURRENCY = "USD"
NO_CAPTURE = (
    "WooCommerce's REST API has no capture or void (the payment plugin acts on order status "
    "changes): both say Unsupported, tested in test_woocommerce.py"
)


def woocommerce_settings(api: WooCommerceEmulator, **overrides: Any) -> WooCommerceSettings:
    """Settings pointing the gateway at the emulator, fast enough for tests."""
    values: dict[str, Any] = {
        "store_url": api.base_url,
        "consumer_key": api.consumer_key,
        "consumer_secret": SecretStr(api.consumer_secret),
        "webhook_secret": SecretStr(api.webhook_secret),
        "timeout": 5.0,
        "write_timeout": 5.0,
        "max_retries": 2,
    }
    values.update(overrides)
    return WooCommerceSettings.model_validate(values)


def woocommerce_gateway(api: WooCommerceEmulator, **overrides: Any) -> WooCommerceGateway:
    """Our gateway on the emulator, retrying without delay; `overrides` change its settings."""
    return WooCommerceGateway(woocommerce_settings(api, **overrides), backoff=0.01)


@dataclass
class Seeded:
    user_id: int
    charge_id: str
    authorized_ids: tuple[str, str]
    subscription_ids: tuple[str, str]

    @property
    def customer_id(self) -> str:
        return f"customer-{self.user_id}"


def seed_contract_customer(api: WooCommerceEmulator) -> Seeded:
    """The contract's customer: a paid 100.00 order, two unpaid 50.00 ones, two subscriptions."""
    user = api.add_customer(EMAIL, "Jane", "Doe")
    return Seeded(
        user_id=user,
        charge_id=str(api.add_order("100.00", customer_id=user, days_ago=3)),
        authorized_ids=(
            str(api.add_order("50.00", customer_id=user, status="on-hold", paid=False, days_ago=2)),
            str(api.add_order("50.00", customer_id=user, status="on-hold", paid=False, days_ago=1)),
        ),
        subscription_ids=(
            str(api.add_subscription(user, "20.00", product="Pro monthly", days_ago=45)),
            str(api.add_subscription(user, "5.00", product="Extra seats", days_ago=10)),
        ),
    )


def woocommerce_env() -> AbstractAsyncContextManager[ContractEnv]:
    """The gateway contract suite's WooCommerce backend."""
    return contract_env(
        woocommerce_api,
        seed_contract_customer,
        woocommerce_gateway,
        email=EMAIL,
        currency=CURRENCY,
        skips={"capture_and_void": NO_CAPTURE},
    )
