"""`lookup` finds the customer from what they quote: an invoice number (the gateway's or one of
our documents'), a refund ID, their name, part of their email."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.actors import ChannelKind
from bot.cards.model import Card, Reply
from bot.chat.slack.render import card_blocks
from bot.commands import Context, dispatch
from bot.commands.lookup_quoted import one_match
from bot.documents import on_demand
from bot.gateways.base import LookupQuery
from bot.gateways.readings import MAX_MATCHES
from bot.gateways.registry import Gateways
from bot.gateways.stripe.search import quoted
from bot.money import parse_money
from bot.services import Services
from bot.store.tables import LedgerCustomer
from tests.conftest import CHANNEL, say
from tests.fakes.paypal_env import paypal_env
from tests.fakes.recurly_env import recurly_env
from tests.fakes.stripe_env import FakeStripe, stripe_fake
from tests.gateways.test_contract import BACKENDS


@pytest.fixture
async def stripe(services: Services):
    """Stripe's emulator beside the demo ledger, both asked by every lookup."""
    async with stripe_fake() as fake:
        services.gateways = Gateways([services.gateways.get("ledger"), fake.gateway], timeout=5)
        yield fake


def titles(card: Card) -> dict[str, str]:
    return {s.title: s.text or "" for s in card.sections if s.title}


def titles_or_text(card: Card) -> list[str]:
    return [s.title or s.text or "" for s in card.sections]


def commands(reply: Reply) -> list[str]:
    return [b.command for card in reply.cards for b in card.actions]


async def add_ledger_customers(services: Services, *people: tuple[str, str, str]) -> None:
    async with services.db.write() as s:
        for customer_id, name, email in people:
            s.add(LedgerCustomer(id=customer_id, name=name, email=email, created=datetime.now(UTC)))


# --- what a typed string is, without asking anyone -----------------------------------------


@pytest.mark.parametrize(
    ("typed", "kinds"),
    [
        ("jane.doe@example.com", ["email"]),
        ("jane@", ["partial_email"]),
        ("@example.com", ["partial_email"]),
        ("Jane Doe", ["name"]),
        ("Smith", ["id", "name"]),
        ("JANE-0003", ["id", "invoice_number"]),
        ("INV-2026-000042", ["id", "invoice_number"]),
        ("re_jane_2", ["id"]),
        ("order #1234", ["id"]),
        ("<!channel> x", ["id"]),
    ],
)
def test_a_typed_string_is_read_as_every_kind_it_might_be(typed, kinds):
    assert [q.kind for q in LookupQuery.readings(typed)] == kinds


# --- invoice numbers -----------------------------------------------------------------------


async def test_a_stripe_invoice_number_finds_its_customer(services, agent, stripe: FakeStripe):
    invoice = stripe.emulator.add_invoice(stripe.env.customer_id, 4200, finalize=True)
    reply = await say(services, agent, f"lookup {invoice['number']}")
    assert reply.error is None, reply.error
    card = reply.cards[0]
    assert card.title == "Contract Customer"
    assert titles(card)[f"Invoice {invoice['number']}"].startswith(invoice["id"])
    lower = await say(services, agent, f"lookup {invoice['number'].lower()}")
    assert lower.cards[0].title == "Contract Customer"


async def test_an_unknown_invoice_number_is_no_match(services, agent, stripe: FakeStripe):
    reply = await say(services, agent, "lookup NOPE-0042")
    assert reply.error is not None and reply.error.code == "not_found"


@pytest.mark.parametrize(
    ("issue", "source", "pdf"),
    [
        ("invoice pdf in_jane_paid", "ledger:in_jane_paid", "invoice pdf ledger:in_jane_paid"),
        ("receipt ch_jane_1", "ledger:ch_jane_1", "receipt ledger:ch_jane_1"),
    ],
)
async def test_our_document_number_finds_its_customer_and_links_to_its_source(
    services, agent, issue, source, pdf
):
    number = (await say(services, agent, issue)).cards[0].title.split()[-1]
    reply = await say(services, agent, f"lookup {number}")
    assert reply.error is None, reply.error
    customer, document = reply.cards
    assert customer.title == "Jane Doe"
    assert source in titles(customer)[f"Found by {number}"]
    assert document.title.endswith(number)
    assert f"lookup {source}" in [b.command for b in document.actions]
    assert pdf in [b.command for b in document.actions]
    # ...and the source object's own lookup opens the same customer.
    back = await say(services, agent, f"lookup {source}")
    assert back.cards[0].title == "Jane Doe"


async def test_a_credit_note_number_finds_the_refunds_customer(services, agent):
    note = await on_demand.credit_note(services, "ledger:ch_jane_2", "re_jane_2", actor=agent)
    reply = await say(services, agent, f"lookup {note.number}")
    customer, document = reply.cards
    assert customer.title == "Jane Doe"
    assert "lookup ledger:re_jane_2" in [b.command for b in document.actions]


# --- refund IDs ----------------------------------------------------------------------------


async def test_a_ledger_refund_id_finds_the_charges_customer_and_names_the_refund(services, agent):
    reply = await say(services, agent, "lookup re_jane_2")
    assert reply.error is None, reply.error
    card = reply.cards[0]
    assert card.title == "Jane Doe"
    assert "€19.00 of charge ch_jane_2" in titles(card)["Refund re_jane_2"]


async def test_a_stripe_refund_id_finds_the_charges_customer(services, agent, stripe: FakeStripe):
    refund = stripe.emulator.add_refund(stripe.env.charge_id, 1500)
    reply = await say(services, agent, f"lookup {refund['id']}")
    assert reply.error is None, reply.error
    assert reply.cards[0].title == "Contract Customer"
    assert stripe.env.charge_id in titles(reply.cards[0])[f"Refund {refund['id']}"]


# --- names ---------------------------------------------------------------------------------


async def test_a_name_in_the_ledger_and_stripe_gives_a_pick_list_whose_buttons_open_each_card(
    services, agent, stripe: FakeStripe
):
    other = stripe.emulator.add_customer("jane.d@example.org", "Jane Doe")
    reply = await say(services, agent, "lookup jane  DOE")
    assert reply.error is None, reply.error
    [card] = reply.cards
    assert card.title.startswith("2 customers match")
    assert sorted(commands(reply)) == ["lookup ledger:cus_jane", f"lookup stripe:{other['id']}"]
    opened = {c: await say(services, agent, c) for c in commands(reply)}
    ledger = opened["lookup ledger:cus_jane"].cards[0]
    assert ledger.title == "Jane Doe" and "ch_jane_1" in ledger.model_dump_json()
    stripe_card = opened[f"lookup stripe:{other['id']}"].cards[0]
    assert f"stripe:{other['id']}" in stripe_card.model_dump_json()
    assert "ch_jane_1" not in stripe_card.model_dump_json()


async def test_one_name_match_shows_the_card_at_once(services, agent):
    reply = await say(services, agent, "lookup Fatima Al-Sabah")
    assert reply.error is None, reply.error
    assert reply.cards[0].title == "Fatima Al-Sabah"
    assert "ch_fatima_1" in reply.cards[0].model_dump_json()


async def test_more_buttons_of_a_card_found_by_name_or_document_page_that_customer(services, agent):
    ctx = Context(services, agent, CHANNEL)
    assert await one_match(ctx, "Fatima Al-Sabah") == "ledger:cus_fatima"
    number = (await say(services, agent, "receipt ch_jane_1")).cards[0].title.split()[-1]
    assert await one_match(ctx, number.lower()) == "ledger:cus_jane"
    assert await one_match(ctx, "jane.doe@example.com") == "jane.doe@example.com"


async def test_ledger_names_match_case_insensitively_and_unicode_normalised(services, agent):
    # Stored decomposed (e + combining diaeresis), typed composed and in capitals.
    await add_ledger_customers(services, ("cus_zoe", "Zoe\u0308 Ma\u0301rquez", "zoe@example.com"))
    reply = await say(services, agent, "lookup ZOË MÁRQUEZ")
    assert reply.error is None, reply.error
    assert "zoe@example.com" in reply.cards[0].model_dump_json()


async def test_a_quote_in_a_name_cannot_change_the_stripe_search_query(stripe: FakeStripe):
    stripe.emulator.add_customer("dara@example.com", "Dara O'Brien")
    found = await stripe.gateway.lookup(LookupQuery("name", "O'Brien"))
    assert [p.customer.name for p in found] == ["Dara O'Brien"]
    # A value that would close the quote and add a clause is one literal string.
    for hostile in ("x' OR name~'Contract", "x\\' OR name~'Contract", "Contract' AND email:'x"):
        assert await stripe.gateway.lookup(LookupQuery("name", hostile)) == []
    assert quoted("a'b\\c") == "'a\\'b\\\\c'"


async def test_paypal_and_recurly_say_they_cannot_search_by_name_not_no_match(services, agent):
    async with paypal_env() as paypal, recurly_env() as recurly:
        services.gateways = Gateways(
            [services.gateways.get("ledger"), paypal.gateway, recurly.gateway], timeout=5
        )
        found = await say(services, agent, "lookup John Smith")
        assert found.error is None, found.error
        said = titles(found.cards[0])
        assert said["paypal: not asked"] == "paypal cannot search customers by name"
        assert said["recurly: not asked"] == "recurly cannot search customers by name"
        nobody = await say(services, agent, "lookup Nobody Atall")
        assert nobody.error is not None and nobody.error.code == "not_found"
        assert "paypal cannot search customers by name" in nobody.error.message
        assert "recurly cannot search customers by name" in nobody.error.message


# --- parts of emails -----------------------------------------------------------------------


async def test_a_partial_email_is_capped_and_says_narrow_it_down(services, agent):
    await add_ledger_customers(
        services,
        *((f"cus_bulk{i:02d}", f"Bulk {i:02d}", f"b{i:02d}@bulk.example") for i in range(15)),
    )
    reply = await say(services, agent, "lookup @bulk.example")
    assert reply.error is None, reply.error
    [card] = reply.cards
    assert len(card.actions) == MAX_MATCHES
    assert len(card.sections[0].table.rows) == MAX_MATCHES
    # The ledger answers 11 of 15: it has more than it said, and the card does not guess how many.
    assert titles_or_text(card)[-1] == "at least 1 more: narrow it down"
    one = await say(services, agent, "lookup b07@bulk")
    assert one.cards[0].title == "Bulk 07"


@pytest.mark.parametrize("typed", ["@com", "ab@", "@ex", "@localhost", "a@b@c"])
async def test_a_too_broad_part_of_an_email_is_refused(services, agent, typed):
    reply = await say(services, agent, f"lookup {typed}")
    assert reply.error is not None and reply.error.code == "usage", reply


# --- where customers read ------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["Jane Doe", "@example.com", "jane.doe@"])
async def test_in_a_shared_channel_name_and_partial_lookups_are_refused(services, agent, typed):
    shared = CHANNEL.model_copy(update={"kind": ChannelKind.shared})
    reply = await dispatch(Context(services, agent, shared), f"lookup {typed}")
    assert reply.error is not None and reply.error.code == "shared_channel"
    # A whole email or an ID still answers there (privately, as before).
    exact = await dispatch(Context(services, agent, shared), "lookup jane.doe@example.com")
    assert exact.cards[0].title == "Jane Doe"


async def test_in_a_shared_channel_a_word_is_asked_only_as_an_id(services, agent):
    shared = CHANNEL.model_copy(update={"kind": ChannelKind.shared})
    reply = await dispatch(Context(services, agent, shared), "lookup Fatima")
    assert reply.error is not None and reply.error.code == "not_found"
    found = await say(services, agent, "lookup Fatima")  # internal: a name search
    assert found.cards[0].title == "Fatima Al-Sabah"


async def test_customers_cannot_look_anyone_up(services, customer):
    reply = await say(services, customer, "lookup Jane Doe")
    assert reply.error is not None and reply.error.code == "forbidden"


# --- hostile names -------------------------------------------------------------------------


async def test_markup_in_a_customer_name_is_harmless_in_the_pick_list(services, agent):
    await add_ledger_customers(
        services,
        ("cus_evil1", "Eve <!channel> *Doe*", "eve1@example.com"),
        ("cus_evil2", "Eve <script>alert(1)</script> Doe", "eve2@example.com"),
    )
    reply = await say(services, agent, "lookup Eve")
    assert reply.error is None, reply.error
    [card] = reply.cards
    assert sorted(commands(reply)) == ["lookup ledger:cus_evil1", "lookup ledger:cus_evil2"]
    blocks = json.dumps(card_blocks(card))
    assert "<!channel>" not in blocks and "<script>" not in blocks
    assert "&lt;!channel&gt;" in blocks


# --- at each gateway -----------------------------------------------------------------------

EMULATED = [b for b in BACKENDS if b != "stripe-localstripe"]


# WooCommerce is left out: its refund IDs are bare numbers (read as order numbers), and its
# API reads a refund only under its order (`orders/<order>/refunds/<id>`).
@pytest.mark.parametrize("backend", [b for b in EMULATED if b != "woocommerce-emulator"])
async def test_a_refund_id_finds_the_customer_at_each_gateway(services, backend):
    async with BACKENDS[backend](services.db) as env:
        try:
            refund = await env.gateway.refund(
                env.charge_id, parse_money("30.00", env.currency), reason="goodwill",
                idempotency_key="quoted-refund",
            )  # fmt: skip
            profiles = await env.gateway.lookup(LookupQuery.parse(refund.id))
            assert [p.customer.id for p in profiles] == [env.customer_id]
            assert refund.id in {r.id for r in profiles[0].refunds}
        finally:
            await env.gateway.close()


@pytest.mark.parametrize("backend", EMULATED)
async def test_names_and_parts_of_emails_at_each_gateway_or_declined(services, backend):
    async with BACKENDS[backend](services.db) as env:
        try:
            gateway = env.gateway
            [whole] = await gateway.lookup(LookupQuery.parse(env.email))
            name = whole.customer.name or ""
            local = env.email.partition("@")[0]
            asked = {
                "name": LookupQuery("name", name.upper()),
                "partial_email": LookupQuery("partial_email", f"{local}@"),
            }
            for kind, query in asked.items():
                if kind not in gateway.lookup_kinds:
                    assert backend.startswith(("paypal", "recurly")), (backend, kind)
                    continue
                found = await gateway.lookup(query)
                assert env.customer_id in [p.customer.id for p in found], (backend, kind)
                assert await gateway.lookup(LookupQuery(kind, "zzqx-nobody" + kind[:1])) == []
        finally:
            await gateway.close()
