"""Each gateway that refunds on cancelling, against its emulator: the refund worked out
before approval is the one made, once, however often the approved request is run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from bot.gateways.base import Capability
from bot.gateways.termination import termination_refund
from bot.models import SubscriptionStatus
from tests.fakes.braintree_env import braintree_env
from tests.fakes.paypal_env import paypal_env
from tests.fakes.recurly_env import recurly_env
from tests.fakes.woocommerce_env import woocommerce_env
from tests.gateways.contract import ContractEnv

ENVS: dict[str, Callable[[], AbstractAsyncContextManager[ContractEnv]]] = {
    "paypal": paypal_env,
    "braintree": braintree_env,
    "recurly": recurly_env,
    "woocommerce": woocommerce_env,
}


@pytest.fixture(params=sorted(ENVS))
async def env(request: pytest.FixtureRequest) -> AsyncIterator[ContractEnv]:
    async with ENVS[request.param]() as contract:
        yield contract


async def test_the_planned_refund_is_part_of_the_last_payment_or_all_of_it(
    env: ContractEnv,
) -> None:
    assert Capability.cancel_with_refund in env.gateway.capabilities
    sub_id = env.subscription_ids[1]  # ten days or fewer into its paid period
    charge, prorated = await termination_refund(env.gateway, sub_id, "prorated")
    _, last = await termination_refund(env.gateway, sub_id, "last")
    assert last.charge_id == prorated.charge_id == charge.id
    assert last.amount == charge.refundable
    assert 0 < prorated.amount.minor < last.amount.minor


async def test_a_crash_after_the_cancel_is_finished_by_a_retry_with_one_refund(
    env: ContractEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, sub_id = env.gateway, env.subscription_ids[1]
    charge, planned = await termination_refund(gateway, sub_id, "last")
    cancel = gateway.cancel_subscription

    async def cancel_then_die(*args: Any, **kwargs: Any) -> Any:
        await cancel(*args, **kwargs)
        raise SystemExit("the process died after the cancel")

    monkeypatch.setattr(gateway, "cancel_subscription", cancel_then_die)
    with pytest.raises(SystemExit):
        await gateway.cancel_and_refund(sub_id, planned, reason="moving", idempotency_key="apr_1")
    monkeypatch.setattr(gateway, "cancel_subscription", cancel)
    first = await gateway.cancel_and_refund(
        sub_id, planned, reason="moving", idempotency_key="apr_1"
    )
    again = await gateway.cancel_and_refund(
        sub_id, planned, reason="moving", idempotency_key="apr_1"
    )
    assert first.id == again.id and first.amount == planned.amount
    assert (await gateway.get_subscription(sub_id)).status == SubscriptionStatus.canceled
    assert (await gateway.get_charge(charge.id)).amount_refunded == planned.amount.minor
