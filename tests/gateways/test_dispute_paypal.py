"""PayPal disputes through the bot and the gateway against the PayPal emulator: the card shows
them, accepting runs once, evidence goes as one multipart form with our receipt PDF, and a retry
sends nothing twice (PayPal's disputes API takes no PayPal-Request-Id: the dispute is read first)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.actors import SYSTEM
from bot.disputes.evidence import Evidence, EvidenceFile
from bot.disputes.reminders import remind
from bot.documents import build, on_demand
from bot.documents.issue import IssuedDocument
from bot.gateways.base import ErrorCode, GatewayError, LookupQuery
from bot.gateways.paypal.disputes import MARK, document_names, paypal_evidence
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.registry import Gateways
from bot.models import utcnow
from bot.notify import pending
from bot.store.tables import Notification
from bot.webhooks import receive
from chargedesk_emulators.paypal import PayPalEmulator, paypal_api, schema_problems
from tests.conftest import say
from tests.fakes.paypal_env import EMAIL, Seeded, paypal_gateway, seed_contract_payer

pytestmark = pytest.mark.approvals

PayPal = tuple[PayPalEmulator, Seeded, PayPalGateway, str]


@pytest.fixture
async def paypal(services) -> AsyncIterator[PayPal]:  # type: ignore[no-untyped-def]
    with paypal_api() as api:
        seeded = seed_contract_payer(api)
        # Part of the 100.00 payment, to show the amount is kept exactly.
        dispute_id = api.add_dispute(seeded.charge_id, value="30.45", due_in_days=5)
        gateway = paypal_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api, seeded, gateway, dispute_id
        finally:
            await gateway.close()


async def _receipt(services, charge_id: str) -> IssuedDocument:  # type: ignore[no-untyped-def]
    """Our receipt for the payment, issued as `receipt` issues it, with the payer found by
    e-mail: PayPal cannot find a payer by payer ID, which `on_demand.receipt` asks."""
    gateway = services.gateways.get("paypal")
    (profile,) = await gateway.lookup(LookupQuery("email", EMAIL))
    (charge,) = [c for c in profile.charges if c.id == charge_id]
    buyer = build.Buyer(customer=profile.customer, charges=profile.charges)
    draft = build.receipt(on_demand._settings(services), charge, buyer, invoice=None, now=utcnow())
    return await on_demand._issue(services, draft, SYSTEM)


def posts(api: PayPalEmulator, dispute_id: str, action: str) -> list:  # type: ignore[type-arg]
    path = f"/v1/customer/disputes/{dispute_id}/{action}"
    return [e for e in api.exchanges if e.method == "POST" and e.path == path]


async def test_the_card_shows_a_paypal_disputes_reason_amount_status_and_due_date(
    services, paypal, agent
):
    api, seeded, _, dispute_id = paypal
    reply = await say(services, agent, f"lookup {EMAIL}")
    assert reply.error is None, reply.error
    card = reply.cards[0]
    (section,) = [s for s in card.sections if s.title and s.title.startswith("Disputes")]
    due = api.disputes[dispute_id].due
    assert [r for r in section.table.rows if r[0] == dispute_id] == [[
        dispute_id, seeded.charge_id, "$30.45", "merchandise_or_service_not_received",
        "needs_response", f"{due:%Y-%m-%d}",
    ]]  # fmt: skip
    (charges,) = [s for s in card.sections if s.title and s.title.startswith("Charges")]
    (row,) = [r for r in charges.table.rows if r[0] == seeded.charge_id]
    assert row[4] == "⚠ disputed"
    assert f"dispute paypal:{dispute_id} evidence reason: " in [b.command for b in card.actions]
    gateway = services.gateways.get("paypal")
    found = await gateway.get_dispute(dispute_id)
    assert (found.amount.minor, found.amount.currency, found.evidence_due_by) == (3045, "USD", due)
    assert schema_problems(api.exchanges, requests=True) == []


async def test_accepting_runs_once_when_approved_twice(
    services, paypal, agent, manager, other_manager
):
    api, _, _, dispute_id = paypal
    reply = await say(services, agent, f"dispute paypal:{dispute_id} accept reason: fair claim")
    assert reply.approval.state == "pending", reply.error
    assert posts(api, dispute_id, "accept-claim") == []  # nothing before approval
    await asyncio.gather(
        say(services, manager, f"approve {reply.approval.id}"),
        say(services, other_manager, f"approve {reply.approval.id}"),
    )
    dispute = api.disputes[dispute_id]
    assert (dispute.status, dispute.outcome) == ("RESOLVED", "RESOLVED_BUYER_FAVOUR")
    assert f"{MARK}{reply.approval.id}" in str(dispute.accept_note)
    assert len(posts(api, dispute_id, "accept-claim")) == 1
    assert schema_problems(api.exchanges, requests=True) == []


async def test_evidence_submits_our_receipt_pdf_as_a_multipart_file_once(
    services, paypal, agent, manager
):
    api, seeded, _, dispute_id = paypal
    receipt = await _receipt(services, seeded.charge_id)
    reply = await say(
        services, agent, f"dispute paypal:{dispute_id} evidence reason: the order was delivered"
    )
    assert reply.error is None, reply.error
    facts = {f.label: f.value for f in reply.cards[0].sections[0].facts}
    assert (facts["Amount"], facts["Status"]) == ("$30.45", "needs_response")
    assert reply.cards[0].sections[2].table.rows[0][:2] == [f"{receipt.number}.pdf", "receipt"]
    assert posts(api, dispute_id, "provide-evidence") == []

    done = await say(services, manager, f"approve {reply.approval.id}")
    assert done.approval.state == "succeeded", done.error
    (sent,) = posts(api, dispute_id, "provide-evidence")
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    dispute = api.disputes[dispute_id]
    assert dispute.status == "UNDER_REVIEW"
    assert dispute.files == {f"{receipt.number}.pdf": receipt.pdf}
    purchase, other = dispute.evidences
    assert purchase["evidence_type"] == "DETAILS_OF_PURCHASE"
    assert purchase["documents"] == [{"name": f"{receipt.number}.pdf"}]
    assert f"Customer email:\n{EMAIL}" in purchase["notes"]
    assert "Agent's note:\nthe order was delivered" in other["notes"]
    assert other["notes"].endswith(f"{MARK}{reply.approval.id}")
    assert schema_problems(api.exchanges, requests=True) == []

    again = await say(services, agent, f"dispute paypal:{dispute_id} evidence reason: more")
    assert again.error.code == "invalid_state"
    assert len(posts(api, dispute_id, "provide-evidence")) == 1


def _evidence(dispute_id: str) -> Evidence:
    return Evidence(
        dispute_id=dispute_id,
        note="delivered",
        files=(EvidenceFile.of("receipt", "R-2026-000001", b"%PDF-1.7 receipt"),),
    )


async def test_a_retry_after_the_evidence_landed_sends_nothing_twice(paypal):
    api, _, gateway, dispute_id = paypal
    api.fail_next(1, 500, after=True, method="POST", path_prefix="/v1/customer/disputes")
    # The answer was lost, the evidence landed: the re-read finds our mark, no second POST.
    first = await gateway.submit_dispute_evidence(
        dispute_id, _evidence(dispute_id), idempotency_key="apr_1"
    )
    retry = await gateway.submit_dispute_evidence(
        dispute_id, _evidence(dispute_id), idempotency_key="apr_1"
    )
    assert first.status == retry.status == "under_review"
    assert len(posts(api, dispute_id, "provide-evidence")) == 1
    assert api.disputes[dispute_id].files == {"R-2026-000001.pdf": b"%PDF-1.7 receipt"}
    with pytest.raises(GatewayError) as refused:
        await gateway.submit_dispute_evidence(
            dispute_id, _evidence(dispute_id), idempotency_key="apr_2"
        )
    assert refused.value.code == ErrorCode.invalid_state
    assert len(posts(api, dispute_id, "provide-evidence")) == 1


async def test_a_failure_before_paypal_acted_is_sent_again_by_the_retry(paypal):
    api, _, gateway, dispute_id = paypal
    api.fail_next(1, 503, method="POST", path_prefix="/v1/customer/disputes")
    with pytest.raises(GatewayError):
        await gateway.accept_dispute(dispute_id, idempotency_key="apr_1")
    assert api.disputes[dispute_id].status == "WAITING_FOR_SELLER_RESPONSE"
    accepted = await gateway.accept_dispute(dispute_id, idempotency_key="apr_1")
    again = await gateway.accept_dispute(dispute_id, idempotency_key="apr_1")
    assert accepted.status == again.status == "lost"
    assert len(posts(api, dispute_id, "accept-claim")) == 2  # the refused one, then one that did


async def test_an_inquiry_takes_no_evidence_and_says_so(paypal):
    api, seeded, gateway, _ = paypal
    inquiry = api.add_dispute(seeded.charge_id, status="OPEN")
    with pytest.raises(GatewayError) as refused:
        await gateway.submit_dispute_evidence(inquiry, _evidence(inquiry), idempotency_key="apr_1")
    assert refused.value.code == ErrorCode.invalid_state
    assert "PayPal takes evidence only once it waits for the seller" in refused.value.message
    assert posts(api, inquiry, "provide-evidence") == []


async def test_open_paypal_disputes_are_listed_for_reminders(services, paypal):
    api, seeded, gateway, dispute_id = paypal
    reviewed = api.add_dispute(seeded.charge_id, status="UNDER_REVIEW")
    assert [d.id for d in await gateway.open_disputes()] == [dispute_id]
    assert reviewed in api.disputes
    services.settings.dispute_reminder_days = [7, 3]
    assert await remind(services) >= 1
    async with services.db.read() as s:
        titles = set(await s.scalars(
            select(Notification.card["title"].as_string()).where(Notification.kind == "dispute_due")
        ))  # fmt: skip
    assert f"Dispute evidence due within 7 days: paypal {dispute_id}" in titles
    assert not any(reviewed in t for t in titles)


def test_document_names_follow_paypals_pattern_and_stay_unique() -> None:
    files = (
        EvidenceFile.of("receipt", "R/2026 1", b"%PDF"),
        EvidenceFile.of("invoice", "R/2026 1", b"%PDF"),
    )
    assert document_names(files) == ["R-2026 1.pdf", "R-2026 1-2.pdf"]


def test_long_notes_are_clipped_to_paypals_limit_keeping_our_mark() -> None:
    evidence = Evidence(dispute_id="PP-D-1", note="x" * 5000, communication="y" * 3000)
    ((name, (_, data, kind)),) = paypal_evidence(evidence, "apr_1")
    assert (name, kind) == ("input", "application/json")
    (entry,) = json.loads(data)["evidences"]
    assert len(entry["notes"]) == 2000
    assert entry["notes"].endswith(f"{MARK}apr_1")


async def test_the_new_dispute_alert_shows_its_status_and_due_date_with_answers(services, paypal):
    api, _, _, dispute_id = paypal
    created = api.dispute_json(dispute_id)
    body, headers = api.webhook_delivery(
        "CUSTOMER.DISPUTE.CREATED", created, resource_type="dispute"
    )
    assert await receive(services, "paypal", body, headers) == ["processed"]
    ((_, kind, card),) = await pending(services.db)
    facts = {f.label: f.value for f in card.sections[0].facts}
    assert kind == "dispute_created"
    assert (facts["Status"], facts["Amount"]) == ("needs_response", "$30.45")
    assert facts["Evidence due by"] == f"{api.disputes[dispute_id].due:%Y-%m-%d %H:%M} UTC"
    assert [b.command for b in card.actions[1:]] == [
        f"dispute paypal:{dispute_id} evidence reason: ",
        f"dispute paypal:{dispute_id} accept reason: ",
    ]


async def test_looking_up_a_dispute_id_shows_its_payers_card(services, paypal, agent):
    _, seeded, _, dispute_id = paypal
    reply = await say(services, agent, f"lookup {dispute_id}")
    assert reply.error is None, reply.error
    (section,) = [s for s in reply.cards[0].sections if s.title and s.title.startswith("Disputes")]
    assert [r[:2] for r in section.table.rows if r[0] == dispute_id] == [
        [dispute_id, seeded.charge_id]
    ]


async def test_the_emulator_refuses_answers_to_a_decided_dispute_as_paypal_describes(paypal):
    api, _, gateway, dispute_id = paypal
    await gateway.accept_dispute(dispute_id, idempotency_key="apr_1")
    with pytest.raises(GatewayError) as refused:
        await gateway._api.rest(
            "POST", f"/v1/customer/disputes/{dispute_id}/provide-evidence",
            form=paypal_evidence(_evidence(dispute_id), "apr_2"),
            verb="send evidence for", what=f"dispute {dispute_id}", retry=False,
        )  # fmt: skip
    assert refused.value.raw_code == "UNPROCESSABLE_ENTITY"  # no issue name is documented
    with pytest.raises(GatewayError) as unknown:
        await gateway.get_dispute("PP-D-000000")
    assert unknown.value.code == ErrorCode.not_found
    assert schema_problems(api.exchanges, requests=True) == []
