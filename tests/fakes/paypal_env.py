"""The PayPal backend of the gateway contract suite: the real SDK against the emulator.

The payer's two subscriptions come with their first payments (captures found
through Transaction Search, as PayPal shows them): PayPal offers no other way
to find a payer's subscriptions, so the profile lists those payments as
charges beside the contract's capture and authorizations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.registry import Gateways
from bot.services import Services
from bot.settings import PayPalSettings
from chargedesk_emulators.paypal import PayPalEmulator, paypal_api
from tests.fakes.emulated_gateway import contract_env
from tests.gateways.contract import ContractEnv

EMAIL = "jane.doe@example.com"
CURRENCY = "USD"
AT_PERIOD_END = (
    "PayPal cancels a subscription at once and has no cancel at period end; "
    "the gateway refuses it as unsupported rather than cancelling early"
)


def paypal_settings(api: PayPalEmulator, **overrides: object) -> PayPalSettings:
    """Settings pointing the gateway at the emulator, fast enough for tests."""
    values: dict[str, object] = {
        "client_id": api.client_id,
        "client_secret": SecretStr(api.client_secret),
        "base_url": api.base_url,
        "webhook_id": api.webhook_id,
        "timeout": 5.0,
        "max_retries": 2,
    }
    values.update(overrides)
    return PayPalSettings.model_validate(values)


def paypal_gateway(api: PayPalEmulator, **overrides: object) -> PayPalGateway:
    """Our gateway on the emulator, retrying without delay; `overrides` change its settings."""
    return PayPalGateway(paypal_settings(api, **overrides), backoff=0.01)


@dataclass
class Seeded:
    payer_id: str
    charge_id: str
    authorized_ids: tuple[str, str]
    subscription_ids: tuple[str, str]

    @property
    def customer_id(self) -> str:
        return self.payer_id


def seed_contract_payer(api: PayPalEmulator) -> Seeded:
    """The contract's customer: a 100.00 capture, two 50.00 authorizations, two subscriptions."""
    payer = api.add_payer(EMAIL, "Jane", "Doe")
    return Seeded(
        payer_id=payer,
        charge_id=api.add_capture(payer, "100.00", CURRENCY, days_ago=3),
        authorized_ids=(
            api.add_authorization(payer, "50.00", CURRENCY, days_ago=2),
            api.add_authorization(payer, "50.00", CURRENCY, days_ago=1),
        ),
        subscription_ids=(
            api.add_subscription(payer, "20.00", CURRENCY, plan_name="Pro monthly", days_ago=45),
            api.add_subscription(payer, "5.00", CURRENCY, plan_name="Extra seats", days_ago=10),
        ),
    )


@contextmanager
def seeded_api() -> Iterator[tuple[PayPalEmulator, Seeded]]:
    with paypal_api() as api:
        yield api, seed_contract_payer(api)


def paypal_env() -> AbstractAsyncContextManager[ContractEnv]:
    """The gateway contract suite's PayPal backend."""
    return contract_env(
        paypal_api,
        seed_contract_payer,
        paypal_gateway,
        email=EMAIL,
        currency=CURRENCY,
        skips={"cancel_at_period_end": AT_PERIOD_END},
    )


@asynccontextmanager
async def paypal_beside(
    services: Services,
) -> AsyncIterator[tuple[PayPalEmulator, Seeded, PayPalGateway]]:
    """The emulator, seeded, with our gateway on it as one more gateway of `services`."""
    with paypal_api() as api:
        seeded = seed_contract_payer(api)
        gateway = paypal_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api, seeded, gateway
        finally:
            await gateway.close()
