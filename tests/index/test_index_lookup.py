"""`lookup` asks the billing index beside the gateways: a name, part of an email, an invoice
or an order number finds customers of every mirrored gateway in one indexed query, and the
card is then read live from the gateway by the customer's ID."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, text

from bot.gateways.base import LookupQuery
from bot.gateways.registry import Gateways
from bot.index.rows import row
from bot.index.search import search_statement
from bot.index.store import upsert
from bot.index.sync import sync_gateway
from bot.models import Customer
from bot.services import Services
from bot.store.tables import LedgerCharge, LedgerCustomer, SyncCursor
from tests.conftest import say
from tests.fakes.paypal_env import paypal_gateway, seeded_api
from tests.fakes.stripe_env import FakeStripe, stripe_fake

pytestmark = pytest.mark.storage


@pytest.fixture
async def stripe(services: Services) -> AsyncIterator[FakeStripe]:
    """Stripe's emulator beside the demo ledger, both mirrored into the index."""
    async with stripe_fake() as fake:
        services.gateways = Gateways([services.gateways.get("ledger"), fake.gateway], timeout=5)
        yield fake


async def mirror(services: Services) -> None:
    for gateway in services.gateways:
        await sync_gateway(services, gateway, pause=0.01)


@contextmanager
def index_reads(services: Services) -> Iterator[list[str]]:
    """Every SQL statement that reads the billing index, as the database receives it."""
    seen: list[str] = []
    engine = services.db.engine.sync_engine

    def spy(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "billing_index" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", spy)


def buttons(reply) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(b.command for card in reply.cards for b in card.actions)


async def test_a_name_in_two_mirrored_gateways_is_one_index_query_and_a_pick_list(
    services, agent, stripe: FakeStripe
):
    other = stripe.emulator.add_customer("jane.d@example.org", "Jane Doe")
    await mirror(services)
    with index_reads(services) as reads:
        reply = await say(services, agent, "lookup JANE doe")
    assert reply.error is None, reply.error
    assert reply.cards[0].title.startswith("2 customers match")
    assert buttons(reply) == ["lookup ledger:cus_jane", f"lookup stripe:{other['id']}"]
    assert len(reads) == 1  # both gateways' mirrors in one query


async def test_a_part_of_an_email_finds_customers_of_both_gateways(
    services, agent, stripe: FakeStripe
):
    other = stripe.emulator.add_customer("ana@shared.example", "Ana Lima")
    async with services.db.write() as s:
        s.add(LedgerCustomer(id="cus_ben", name="Ben Ode", email="ben@shared.example",
                             created=datetime.now(UTC)))  # fmt: skip
    await mirror(services)
    reply = await say(services, agent, "lookup @shared.example")
    assert reply.error is None, reply.error
    assert buttons(reply) == ["lookup ledger:cus_ben", f"lookup stripe:{other['id']}"]


async def test_an_invoice_number_finds_its_customer_in_either_gateway(
    services, agent, stripe: FakeStripe
):
    invoice = stripe.emulator.add_invoice(stripe.env.customer_id, 4200, finalize=True)
    await mirror(services)
    with index_reads(services) as reads:
        at_stripe = await say(services, agent, f"lookup {invoice['number']}")
    assert at_stripe.error is None, at_stripe.error
    assert at_stripe.cards[0].title == "Contract Customer"
    assert len(reads) == 1
    at_ledger = await say(services, agent, "lookup jane-0002")
    assert at_ledger.cards[0].title == "Jane Doe"


async def test_an_order_number_finds_the_customer_of_that_order(
    services, agent, stripe: FakeStripe
):
    async with services.db.write() as s:
        charge = await s.get(LedgerCharge, "ch_john_2")
        s.add(LedgerCharge(**{c.name: getattr(charge, c.name) for c in LedgerCharge.__table__.columns} | {"id": "100234"}))  # fmt: skip
    await mirror(services)
    with index_reads(services) as reads:
        reply = await say(services, agent, "lookup order #100234")
    assert reply.error is None, reply.error
    assert reply.cards[0].title == "John Smith"
    assert len(reads) == 1


async def test_like_wildcards_in_a_part_of_an_email_match_only_themselves(
    services, agent, stripe: FakeStripe
):
    stripe.emulator.add_customer("abc@wild.example", "Abe Bee")
    async with services.db.write() as s:
        s.add(LedgerCustomer(id="cus_under", name="Una Der", email="a_c@wild.example",
                             created=datetime.now(UTC)))  # fmt: skip
    await mirror(services)
    underscore = await say(services, agent, "lookup a_c@")
    assert underscore.error is None, underscore.error
    assert underscore.cards[0].title == "Una Der"  # one match: not abc@ as well
    percent = await say(services, agent, "lookup %%%@wild.example")
    assert percent.error is not None and percent.error.code == "not_found"
    # The same at the index itself: `%` and `_` are literal there too.
    statement = search_statement(
        [LookupQuery("partial_email", "%%%@wild.example")], ["ledger", "stripe"]
    )
    async with services.db.read() as session:
        rows = (await session.execute(statement)).all()
    assert rows == []


async def _paypal_mirrored(services: Services, payer: str, *, done: bool) -> None:
    """PayPal's customer as its sync writes them into the index, and how far that sync got."""
    now = datetime.now(UTC)
    who = Customer(gateway="paypal", id=payer, email="contract.customer@example.com",
                   name="Jane Doe")  # fmt: skip
    async with services.db.write() as s:
        await upsert(s, [row(who, synced_at=now)])
        s.add(SyncCursor(gateway="paypal", kind="customer", cursor=None, since=None, synced=1,
                         done=done, updated=now))  # fmt: skip


async def test_a_gateway_that_cannot_search_names_is_found_through_its_complete_mirror(
    services, agent
):
    with seeded_api() as (api, seeded):
        gateway = paypal_gateway(api)
        services.gateways = Gateways([services.gateways.get("ledger"), gateway], timeout=5)
        try:
            await sync_gateway(services, services.gateways.get("ledger"))
            await _paypal_mirrored(services, seeded.payer_id, done=True)
            reply = await say(services, agent, "lookup Jane Doe")
            assert reply.error is None, reply.error
            [card] = reply.cards
            assert buttons(reply) == ["lookup ledger:cus_jane", f"lookup paypal:{seeded.payer_id}"]
            assert "not asked" not in card.model_dump_json()  # its mirror was searched
            before = len(api.exchanges)
            opened = await say(services, agent, f"lookup paypal:{seeded.payer_id}")
            assert opened.error is None, opened.error
            assert seeded.charge_id in opened.cards[0].model_dump_json()
            assert len(api.exchanges) > before  # the card is PayPal's answer, read live
        finally:
            await gateway.close()


async def test_one_match_only_in_a_mirror_shows_the_live_card_and_says_how_fresh_it_is(
    services, agent
):
    with seeded_api() as (api, seeded):
        gateway = paypal_gateway(api)
        services.gateways = Gateways([gateway], timeout=5)
        try:
            await _paypal_mirrored(services, seeded.payer_id, done=False)
            before = len(api.exchanges)
            reply = await say(services, agent, "lookup jane doe")
            assert reply.error is None, reply.error
            card = reply.cards[0]
            assert seeded.charge_id in card.model_dump_json()  # read live after the index
            assert len(api.exchanges) > before
            said = {s.title: s.text for s in card.sections if s.title}
            assert "not complete yet (1 customer," in said["paypal: from the billing index"]
        finally:
            await gateway.close()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (LookupQuery("name", "jane"), "COVERING INDEX ix_billing_index_people"),
        (LookupQuery("partial_email", "jane@"), "COVERING INDEX ix_billing_index_people"),
        (LookupQuery("invoice_number", "JANE-0002"), "ix_billing_index_number"),
        (LookupQuery("id", "100234"), "ix_billing_index_number"),
    ],
)
async def test_each_index_search_is_one_query_read_through_an_index_on_sqlite(
    services, query, index
):
    if services.db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plan")
    statement = search_statement([query], ["ledger", "stripe"])
    compiled = statement.compile(services.db.engine, compile_kwargs={"literal_binds": True})
    async with services.db.read() as s:
        plan = [str(r[-1]) for r in await s.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]
    assert any(index in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan  # no table or index walked


async def test_a_renamed_ledger_customer_is_found_by_the_new_name_at_once(services, agent):
    """The ledger's own name search reads `name_key`, kept with the name on every write."""
    async with services.db.write() as s:
        (await s.get(LedgerCustomer, "cus_john")).name = "Jonathan SMYTHE"
    reply = await say(services, agent, "lookup smythe")
    assert reply.error is None, reply.error
    assert reply.cards[0].title == "Jonathan SMYTHE"
    gone = await say(services, agent, "lookup John Smith")
    assert gone.error is not None and gone.error.code == "not_found"
