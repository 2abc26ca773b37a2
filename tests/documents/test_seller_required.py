"""No numbered document names a placeholder company: without a seller, issuing is refused.

Commands, billing pages and automatic documents refuse alike; automatic requests
wait (pending, the refusal as their error) and are issued once the seller is named.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import jobs
from bot.documents.automatic import import_recorder, start_imported, sweep
from bot.documents.config import load_branding
from bot.gateways.ledger.importer import import_data
from bot.services import Services
from bot.settings import config_dir
from bot.store.tables import DocumentRequest, DocumentRow, DocumentSeries
from tests.conftest import TEST_SELLER, say
from tests.portal.conftest import JANE, app, client, open_as  # noqa: F401 - fixtures

pytestmark = pytest.mark.storage


@pytest.fixture
def no_branding(services: Services) -> Path:
    """A deployment without branding.toml: the built-in placeholder seller."""
    folder = config_dir()
    assert folder is not None
    path = folder / "branding.toml"
    path.unlink()
    services.branding = load_branding()
    return path


async def count(services: Services, table: type) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


async def requests(services: Services) -> list[DocumentRequest]:
    async with services.db.read() as s:
        return list(await s.scalars(select(DocumentRequest).order_by(DocumentRequest.id)))


async def test_a_receipt_without_a_seller_is_refused_in_one_line_naming_the_file(
    services, agent, no_branding
):
    for command in ("receipt ch_jane_1", "invoice pdf in_jane_paid", "receipt ch_kowalski_1 send"):
        reply = await say(services, agent, command)
        assert reply.error is not None and reply.error.code == "no_seller"
        assert reply.error.message == (
            f"documents need a seller: write {no_branding} (chargedesk init writes one)"
        )
    # Not a number taken, not a row stored.
    assert await count(services, DocumentRow) == 0
    assert await count(services, DocumentSeries) == 0


async def test_a_branding_file_that_leaves_out_the_country_is_refused_too(services, agent):
    folder = config_dir()
    assert folder is not None
    (folder / "branding.toml").write_text('[entities.default]\nlegal_name = "Acme Ltd"\n')
    services.branding = load_branding()
    reply = await say(services, agent, "receipt ch_jane_1")
    assert reply.error is not None
    assert reply.error.message == (
        "documents need a seller: set legal_name and country under [entities.default] "
        f"in {folder / 'branding.toml'}"
    )


async def test_the_billing_pages_refuse_alike(client, services, no_branding):  # noqa: F811
    await open_as(client, services, JANE)
    answer = await client.get("/portal/pdf/receipt/ledger/ch_jane_2")
    assert answer.status_code == 404  # the customer sees no configuration details
    assert await count(services, DocumentRow) == 0


async def test_automatic_documents_wait_for_a_seller_then_are_issued(
    services, agent, no_branding, caplog
):
    caplog.set_level(logging.WARNING, logger="bot.documents.automatic")
    reply = await say(services, agent, "refund ch_jane_1 8.00 reason: goodwill late delivery")
    assert reply.error is None, reply.error
    paid = {"charges": [{"id": "ch_new_1", "customer": "cus_jane", "amount": 4900,
                         "currency": "EUR", "status": "succeeded"}]}  # fmt: skip
    added = []
    record = import_recorder(services)

    async def on_write(session, new):  # type: ignore[no-untyped-def]
        await record(session, new)
        added.append(new)

    await import_data(services.db, paid, on_write=on_write)
    for new in added:
        await start_imported(services, new)
    await jobs.run_worker(services, burst=True)

    waiting = await requests(services)
    assert [(r.kind, r.state, r.attempts) for r in waiting] == [
        ("credit_note", "pending", 0),
        ("receipt", "pending", 0),
    ]
    assert {r.last_error for r in waiting} == {
        f"documents need a seller: write {no_branding} (chargedesk init writes one)"
    }
    assert await count(services, DocumentRow) == 0
    said = [r for r in caplog.records if "documents need a seller" in r.getMessage()]
    assert len(said) == 1  # one warning, not one per payment
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await sweep(services, now=later) == 0  # no job per request per sweep to refuse again

    # The seller is named and the bot restarted: the next sweep issues what waited.
    no_branding.write_text(TEST_SELLER)
    services.branding = load_branding()
    assert await sweep(services, now=later) == 2
    await jobs.run_worker(services, burst=True)
    assert [r.state for r in await requests(services)] == ["done", "done"]
    async with services.db.read() as s:
        kinds = sorted(await s.scalars(select(DocumentRow.kind)))
    assert kinds == ["credit_note", "invoice", "receipt"]  # the refund's corrects the invoice
