"""Receipts after payments and credit notes after refunds, emailed, each exactly once."""

from __future__ import annotations

import asyncio
import email
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot import jobs
from bot.billing_links import open_link
from bot.documents.automatic import import_recorder, start_imported, sweep
from bot.gateways.ledger.importer import import_data
from bot.gateways.registry import Gateways
from bot.store.tables import DocumentRequest, DocumentRow, EmailRow
from bot.web import create_app
from tests.conftest import REPO, say
from tests.documents.drafts import repo_branding  # noqa: F401 - a fixture
from tests.fakes.stripe_env import WEBHOOK_SECRET, stripe_fake

pytestmark = [pytest.mark.storage, pytest.mark.usefixtures("repo_branding")]


async def rows(services, table):  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return list(await s.scalars(select(table)))


def outbox(services) -> list[email.message.EmailMessage]:  # type: ignore[no-untyped-def]
    folder = Path(services.settings.data_dir) / "outbox"
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    ]


async def test_an_approved_refund_gets_one_credit_note_emailed_once(services, agent):
    reply = await say(services, agent, "refund ch_jane_1 8.00 reason: goodwill late delivery")
    assert reply.error is None, reply.error
    (request,) = await rows(services, DocumentRequest)
    assert (request.kind, request.charge_id, request.state) == (
        "credit_note",
        "ch_jane_1",
        "pending",
    )
    await jobs.run_worker(services, burst=True)
    await jobs.run_worker(services, burst=True)  # a second worker run changes nothing
    documents = {d.kind: d for d in await rows(services, DocumentRow)}
    note, invoice = documents["credit_note"], documents["invoice"]
    assert note.related_id == invoice.id and note.gross == 800
    (request,) = await rows(services, DocumentRequest)
    assert (request.state, request.document_id) == ("done", note.id)
    (sent,) = outbox(services)
    assert sent["To"] == "jane.doe@example.com"
    assert sent["X-ChargeDesk-Document"] == note.number
    (attachment,) = list(sent.iter_attachments())
    assert attachment.get_filename() == f"{note.number}.pdf"
    assert attachment.get_content().startswith(b"%PDF")
    body = sent.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = next(word for word in body.split() if "/portal/l/" in word)
    assert await open_link(services, link.rsplit("/", 1)[1]) == "jane.doe@example.com"


async def test_payments_imported_into_the_ledger_get_receipts(services):
    data = {
        "charges": [{
            "id": "ch_new_1", "customer": "cus_jane", "amount": 4900, "currency": "EUR",
            "status": "succeeded", "description": "Pro plan, monthly",
        }],
    }  # fmt: skip
    added = []
    record = import_recorder(services)

    async def on_write(session, new):  # type: ignore[no-untyped-def]
        await record(session, new)
        added.append(new)

    await import_data(services.db, data, on_write=on_write)
    await import_data(services.db, data, on_write=on_write)  # the same file again: nothing new
    for new in added:
        await start_imported(services, new)
    await jobs.run_worker(services, burst=True)
    (receipt,) = await rows(services, DocumentRow)
    assert (receipt.kind, receipt.source_id, receipt.gross) == ("receipt", "ch_new_1", 4900)
    (sent,) = outbox(services)
    assert sent["Subject"] == f"Receipt {receipt.number} from ChargeDesk Demo GmbH"


async def test_a_request_whose_job_was_lost_is_done_by_the_sweep(services, agent):
    await say(services, agent, "refund ch_jane_1 5.00 reason: goodwill sorry")
    await services.redis.flushdb()  # Redis lost every job
    assert await sweep(services, now=datetime.now(UTC) + timedelta(minutes=5)) == 1
    await jobs.run_worker(services, burst=True)
    (request,) = await rows(services, DocumentRequest)
    assert request.state == "done"


async def test_a_charge_without_money_is_skipped_once_with_its_reason(services):
    from bot.documents.automatic import request, start
    from bot.documents.model import DocumentKind

    async with services.db.write() as s:
        await request(services, s, DocumentKind.receipt, "ledger",
                      charge_id="ch_jane_failed", source_id="ch_jane_failed")  # fmt: skip
    await start(services, DocumentKind.receipt, "ledger", "ch_jane_failed")
    await jobs.run_worker(services, burst=True)
    (skipped,) = await rows(services, DocumentRequest)
    assert skipped.state == "skipped" and "took no money" in (skipped.last_error or "")
    assert await rows(services, DocumentRow) == [] and await rows(services, EmailRow) == []


@pytest.fixture
async def stripe_bot(services):  # type: ignore[no-untyped-def]
    """Our Stripe emulator as a gateway, and a function delivering one of its events, signed."""
    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=5)
        app = create_app(services.settings, services)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bot"
            ) as http,
        ):

            async def deliver(kind: str, obj: dict) -> int:  # type: ignore[type-arg]
                body, headers = fake.emulator.delivery(
                    fake.emulator.event(kind, obj), WEBHOOK_SECRET
                )
                answer = await http.post("/webhooks/stripe", content=body, headers=headers)
                return answer.status_code

            yield fake, deliver


async def test_stripe_payment_webhook_gets_a_german_receipt_with_the_customers_address(
    services, stripe_bot
):
    fake, deliver = stripe_bot
    customer = fake.emulator.add_customer(
        "max@example.de", "Max Mustermann",
        address={"line1": "Hauptstraße 5", "line2": None, "postal_code": "80331",
                 "city": "München", "state": None, "country": "DE"},
        preferred_locales=["de-DE"],
    )  # fmt: skip
    charge = fake.emulator.add_payment(customer["id"], 11900, "eur", description="Jahresabo")
    for _ in range(2):  # a redelivery changes nothing
        assert await deliver("charge.succeeded", charge) == 200
    await jobs.run_worker(services, burst=True)
    (receipt,) = await rows(services, DocumentRow)
    assert (receipt.source_gateway, receipt.language, receipt.country) == ("stripe", "de", "DE")
    assert (receipt.gross, receipt.tax) == (11900, 1900)
    (sent,) = outbox(services)
    assert sent["Subject"].startswith("Zahlungsbeleg RCT-")
    assert sent["X-ChargeDesk-Customer"] == f"stripe:{customer['id']}"


async def test_a_refund_made_in_the_stripe_dashboard_gets_a_credit_note(services, stripe_bot):
    fake, deliver = stripe_bot
    refund = fake.emulator.add_refund(fake.env.charge_id, 2500)
    assert await deliver("refund.created", refund) == 200
    await jobs.run_worker(services, burst=True)
    documents = {d.kind: d for d in await rows(services, DocumentRow)}
    note, receipt = documents["credit_note"], documents["receipt"]
    assert (note.source_gateway, note.source_id, note.gross) == ("stripe", refund["id"], 2500)
    assert note.related_id == receipt.id  # a charge without an invoice: its receipt is corrected
    assert [m["X-ChargeDesk-Document"] for m in outbox(services)] == [note.number]


async def test_chargedesk_import_requests_documents_unless_told_it_is_history(
    services, settings, tmp_path
):
    def charge(charge_id: str) -> dict:  # type: ignore[type-arg]
        return {"charges": [{"id": charge_id, "customer": "cus_jane", "amount": 4900,
                             "currency": "EUR", "status": "succeeded"}]}  # fmt: skip

    env = {
        **os.environ,
        "CHARGEDESK_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.sql_url,
        "REDIS_URL": settings.redis_url or "",
        "CHARGEDESK_REDIS_PREFIX": settings.redis_prefix,
    }
    for name, flags in (("ch_live", []), ("ch_history", ["--no-documents"])):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(charge(name)))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "import", str(path), *flags,
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, errors = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, errors.decode()
    requested = [r.source_id for r in await rows(services, DocumentRequest)]
    assert requested == ["ch_live"]
    await jobs.run_worker(services, burst=True)
    assert [d.source_id for d in await rows(services, DocumentRow)] == ["ch_live"]


async def test_documents_can_be_switched_off_per_gateway(services, agent, tmp_path):
    services.branding = services.branding.model_copy(update={"credit_notes": ["stripe"]})
    await say(services, agent, "refund ch_jane_1 5.00 reason: goodwill sorry")
    assert await rows(services, DocumentRequest) == []


async def test_an_unusable_address_on_file_still_issues_the_document_and_sends_nothing(
    services, agent
):
    from sqlalchemy import update

    from bot.store.tables import LedgerCustomer

    async with services.db.write() as s:
        await s.execute(
            update(LedgerCustomer)
            .where(LedgerCustomer.id == "cus_jane")
            .values(email="jane.doe@example.com\r\nBcc: thief@example.net")
        )
    reply = await say(services, agent, "refund ch_jane_1 8.00 reason: goodwill late delivery")
    assert reply.error is None, reply.error
    await jobs.run_worker(services, burst=True)
    (request,) = await rows(services, DocumentRequest)
    assert request.state == "done" and request.document_id is not None
    assert await rows(services, EmailRow) == []  # no header injected, no email half-built
