"""Braintree disputes through the bot and the real SDK against the emulator: evidence with our
receipt as a document upload, finalized once; accepting once (Braintree takes no idempotency
key: the dispute is read back first)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.actors import SYSTEM
from bot.disputes.evidence import Evidence, EvidenceFile
from bot.documents import on_demand
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.registry import Gateways
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.conftest import say
from tests.fakes.braintree_env import Seeded, braintree_gateway, seed_contract_customer

pytestmark = pytest.mark.approvals


@pytest.fixture
async def braintree(
    services,
) -> AsyncIterator[tuple[BraintreeEmulator, Seeded, BraintreeGateway, str]]:  # type: ignore[no-untyped-def]
    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        dispute_id = api.add_dispute(seeded.charge_id, reason="product_unsatisfactory")
        gateway = braintree_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api, seeded, gateway, dispute_id
        finally:
            await gateway.close()


def calls(api: BraintreeEmulator, method: str, suffix: str) -> int:
    return sum(1 for e in api.exchanges if e.method == method and e.path.endswith(suffix))


async def test_evidence_is_sent_with_our_receipt_and_finalized_once(
    services, braintree, agent, manager
):
    api, seeded, _, dispute_id = braintree
    receipt = await on_demand.receipt(services, f"braintree:{seeded.charge_id}", actor=SYSTEM)
    reply = await say(
        services,
        agent,
        f"dispute braintree:{dispute_id} evidence reason: the item was as described",
    )
    assert reply.error is None, reply.error
    assert reply.cards[0].sections[2].table.rows[0][:2] == [f"{receipt.number}.pdf", "receipt"]
    done = await say(services, manager, f"approve {reply.approval.id}")
    assert done.approval.state == "succeeded", done.error
    dispute = api.disputes[dispute_id]
    assert dispute.status == "disputed"
    ((name, content),) = api.document_uploads.values()
    assert (name, content) == (f"{receipt.number}.pdf", receipt.pdf)
    comments = [e["comment"] for e in dispute.evidence if e["comment"]]
    assert "Customer email: jane.doe@example.com" in comments
    assert "Agent's note: the item was as described" in comments
    assert comments[-1] == f"ChargeDesk request {reply.approval.id}"
    assert calls(api, "PUT", f"/disputes/{dispute_id}/finalize") == 1

    again = await say(services, agent, f"dispute braintree:{dispute_id} evidence reason: more")
    assert again.error.code == "invalid_state"


async def test_a_retry_after_our_evidence_landed_only_finalizes(braintree):
    api, _, gateway, dispute_id = braintree
    evidence = Evidence(
        dispute_id=dispute_id,
        note="delivered",
        files=(EvidenceFile.of("receipt", "R-1", b"%PDF-1.7"),),
    )
    api.fail_next(1, 500, method="PUT", path_contains="/finalize")  # our evidence is there
    with pytest.raises(GatewayError):
        await gateway.submit_dispute_evidence(dispute_id, evidence, idempotency_key="apr_1")
    assert api.disputes[dispute_id].status == "open"
    await gateway.submit_dispute_evidence(dispute_id, evidence, idempotency_key="apr_1")
    assert api.disputes[dispute_id].status == "disputed"
    assert len(api.document_uploads) == 1
    assert calls(api, "POST", f"/disputes/{dispute_id}/evidence") == 3  # file, note, our mark
    again = await gateway.submit_dispute_evidence(dispute_id, evidence, idempotency_key="apr_1")
    assert again.status == "under_review"
    with pytest.raises(GatewayError) as refused:
        await gateway.submit_dispute_evidence(dispute_id, evidence, idempotency_key="apr_2")
    assert refused.value.code == ErrorCode.invalid_state


async def test_accepting_runs_once_when_approved_twice(
    services, braintree, agent, manager, other_manager
):
    api, _, _, dispute_id = braintree
    reply = await say(services, agent, f"dispute braintree:{dispute_id} accept reason: fair claim")
    assert reply.approval.state == "pending", reply.error
    await asyncio.gather(
        say(services, manager, f"approve {reply.approval.id}"),
        say(services, other_manager, f"approve {reply.approval.id}"),
    )
    assert api.disputes[dispute_id].status == "accepted"
    assert calls(api, "PUT", f"/disputes/{dispute_id}/accept") == 1


async def test_open_braintree_disputes_are_listed_for_reminders(braintree):
    _, _, gateway, dispute_id = braintree
    assert [d.id for d in await gateway.open_disputes()] == [dispute_id]
