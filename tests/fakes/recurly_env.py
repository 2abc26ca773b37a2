"""The Recurly backend of the gateway contract suite: the real `recurly` client against the emulator.

The account's two subscriptions come with the invoices that paid for them, so its
profile lists those payments as charges beside the contract's 100.00 purchase. The
two authorizations are billing-info verification holds, which Recurly shows as
`authorization` transactions.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from pydantic import SecretStr

from bot.gateways.base import Capability
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.settings import RecurlySettings
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api
from tests.fakes.emulated_gateway import contract_env
from tests.gateways.contract import ContractEnv

EMAIL = "jane.doe@example.com"
CURRENCY = "USD"
CAPTURE_AND_VOID = (
    "Recurly captures and voids only authorize-and-capture purchases, which the gateway "
    "does not build: capture and void are refused as unsupported"
)


def recurly_settings(api: RecurlyEmulator, **overrides: object) -> RecurlySettings:
    """Settings pointing the gateway at the emulator, fast enough for tests."""
    values: dict[str, object] = {
        "api_key": SecretStr(api.api_key),
        "base_url": api.base_url,
        "webhook_secret": SecretStr(api.webhook_secret),
        "subdomain": api.subdomain,
        "timeout": 5.0,
        "max_retries": 2,
    }
    values.update(overrides)
    return RecurlySettings.model_validate(values)


def recurly_gateway(api: RecurlyEmulator, **overrides: object) -> RecurlyGateway:
    """Our gateway on the emulator, retrying without delay; `overrides` change its settings."""
    return RecurlyGateway(recurly_settings(api, **overrides), backoff=0.01)


@dataclass
class Seeded:
    account_id: str
    invoice_id: str
    charge_id: str
    authorized_ids: tuple[str, str]
    subscription_ids: tuple[str, str]
    plan_id: str

    @property
    def customer_id(self) -> str:
        return self.account_id


def seed_contract_account(api: RecurlyEmulator) -> Seeded:
    """The contract's customer: a 100.00 purchase, two 50.00 holds, two subscriptions."""
    account = api.add_account(EMAIL, "Jane", "Doe", code="jane-doe")
    plan = api.add_plan("pro-monthly", "Pro monthly", {"USD": "20.00", "EUR": "18.00"})
    seats = api.add_plan("extra-seats", "Extra seats", {"USD": "5.00"})
    invoice, charge = api.add_purchase(account, [("Order 1001", "100.00", 1)], CURRENCY, days_ago=3)
    assert charge is not None
    return Seeded(
        account_id=account,
        invoice_id=invoice,
        charge_id=charge,
        authorized_ids=(
            api.add_authorization(account, "50.00", CURRENCY, days_ago=2),
            api.add_authorization(account, "50.00", CURRENCY, days_ago=1),
        ),
        subscription_ids=(
            api.add_subscription(account, plan, CURRENCY, days_ago=10),
            api.add_subscription(account, seats, CURRENCY, quantity=2, days_ago=5),
        ),
        plan_id=plan,
    )


def recurly_env() -> AbstractAsyncContextManager[ContractEnv]:
    """The gateway contract suite's Recurly backend."""
    return contract_env(
        recurly_api,
        seed_contract_account,
        recurly_gateway,
        email=EMAIL,
        currency=CURRENCY,
        skips={"capture_and_void": CAPTURE_AND_VOID},
        unsupported=Capability.tax_id,  # one the Recurly gateway lacks
    )
