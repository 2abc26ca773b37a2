"""One customer in every gateway of one deployment: `lookup` merges them into one card.

The deployment is configured the way an operator configures it (settings read by
`bot.wiring.configured_gateways`): the ledger, and Stripe, PayPal, Braintree, Recurly
and WooCommerce on our emulators, each holding the same customer email with one
payment of its own amount. The gateway contract suite has a seventh backend,
localstripe, but it is a second implementation of Stripe: a deployment has one
gateway named `stripe`, so it cannot sit beside our Stripe emulator here.

The card is the core's neutral one (bot/cards/billing.py): a summary naming every
gateway and the customer's ID in each, one section per gateway that failed, and the
charges of all gateways merged into one table, newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.actors import Actor
from bot.cards.model import Card, Reply, Section
from bot.gateways.ledger.importer import import_data
from bot.services import Services
from bot.settings import LookupSettings, Settings
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from chargedesk_emulators.paypal import PayPalEmulator, paypal_api
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api
from chargedesk_emulators.stripe import StripeEmulator
from chargedesk_emulators.woocommerce import WooCommerceEmulator, woocommerce_api
from tests.conftest import say
from tests.fakes.braintree_env import braintree_settings
from tests.fakes.paypal_env import paypal_settings
from tests.fakes.recurly_env import recurly_settings
from tests.fakes.stripe_env import stripe_settings
from tests.fakes.woocommerce_env import woocommerce_settings

pytestmark = pytest.mark.storage

EMAIL = "mina.okafor@example.com"
GATEWAYS = ("braintree", "ledger", "paypal", "recurly", "stripe", "woocommerce")
PROVIDERS = tuple(g for g in GATEWAYS if g != "ledger")
# Each gateway has its own amount, so every row of the merged table says where it came from.
AMOUNTS = {
    "ledger": "€11.00",
    "stripe": "$22.00",
    "paypal": "$33.00",
    "braintree": "$44.00",
    "recurly": "$55.00",
    "woocommerce": "$66.00",
}
# Every gateway answers a lookup here in well under a second; this is how long the card waits.
LOOKUP_TIMEOUT = 3.0
LEDGER_CUSTOMER, LEDGER_CHARGE = "cus_mina", "ch_mina_1"
EVERY = 10_000  # "every request from now on"


@dataclass
class Backends:
    """The five providers' emulators, seeded, and the customer's and charge's ID in each."""

    stripe: StripeEmulator
    paypal: PayPalEmulator
    braintree: BraintreeEmulator
    recurly: RecurlyEmulator
    woocommerce: WooCommerceEmulator
    customers: dict[str, str]
    charges: dict[str, str]

    def break_with_500s(self, name: str) -> None:
        """Every API request of gateway `name` from now on answers 500."""
        {
            "stripe": lambda: self.stripe.fail_next(EVERY, 500),
            "paypal": lambda: self.paypal.fail_next(EVERY, 500),
            "braintree": lambda: self.braintree.fail_next(EVERY, 500),
            "recurly": lambda: self.recurly.fail_next(EVERY, 500),
            "woocommerce": lambda: self.woocommerce.fail_next(EVERY, 500),
        }[name]()

    def slow_down(self, name: str, seconds: float) -> None:
        """Every API request of gateway `name` from now on is answered `seconds` late."""
        {
            "stripe": lambda: self.stripe.delay_next(seconds, EVERY),
            "paypal": lambda: self.paypal.slow_next(EVERY, seconds),
            "braintree": lambda: self.braintree.slow_next(EVERY, seconds),
            "recurly": lambda: self.recurly.slow_next(EVERY, seconds),
            "woocommerce": lambda: self.woocommerce.slow_next(EVERY, seconds),
        }[name]()


@pytest.fixture
def backends() -> Iterator[Backends]:
    with ExitStack() as stack:
        stripe = StripeEmulator()
        stripe.start()
        stack.callback(stripe.stop)
        paypal = stack.enter_context(paypal_api())
        braintree = stack.enter_context(braintree_api())
        recurly = stack.enter_context(recurly_api())
        woocommerce = stack.enter_context(woocommerce_api())

        # Stripe's payment is made now, the others days ago: Stripe's, Braintree's and
        # Recurly's are the three newest, the ones the card offers to refund.
        stripe_customer = stripe.add_customer(EMAIL, "Mina Okafor")["id"]
        payer = paypal.add_payer(EMAIL, "Mina", "Okafor")
        braintree_customer = braintree.add_customer(EMAIL, "Mina", "Okafor")
        account = recurly.add_account(EMAIL, "Mina", "Okafor", code="mina-okafor")
        user = woocommerce.add_customer(EMAIL, "Mina", "Okafor")
        _, recurly_charge = recurly.add_purchase(account, "55.00", "USD", days_ago=2)
        assert recurly_charge is not None
        yield Backends(
            stripe=stripe,
            paypal=paypal,
            braintree=braintree,
            recurly=recurly,
            woocommerce=woocommerce,
            customers={
                "ledger": LEDGER_CUSTOMER,
                "stripe": stripe_customer,
                "paypal": payer,
                "braintree": braintree_customer,
                "recurly": account,
                "woocommerce": f"customer-{user}",
            },
            charges={
                "ledger": LEDGER_CHARGE,
                "stripe": stripe.add_payment(stripe_customer, 2200, "usd")["id"],
                "paypal": paypal.add_capture(payer, "33.00", "USD", days_ago=5),
                "braintree": braintree.add_sale(
                    braintree_customer, "44.00", "USD", status="settled", days_ago=1
                ),
                "recurly": recurly_charge,
                "woocommerce": str(woocommerce.add_order("66.00", customer_id=user, days_ago=3)),
            },
        )


@pytest.fixture
def settings(settings: Settings, backends: Backends) -> Settings:
    """The deployment: every gateway configured at once, as settings an operator writes.

    One retry each (the default is two), so a gateway answering only 500s gives up
    well within the lookup timeout.
    """
    return settings.model_copy(
        update={
            "stripe": stripe_settings(
                backends.stripe.url, backends.stripe.api_key or "sk_test_x", max_retries=1
            ),
            "paypal": paypal_settings(backends.paypal, max_retries=1),
            "braintree": braintree_settings(backends.braintree, max_retries=1),
            "recurly": recurly_settings(backends.recurly, max_retries=1),
            "woocommerce": woocommerce_settings(backends.woocommerce, max_retries=1),
            "lookup": LookupSettings(timeout=LOOKUP_TIMEOUT),
        }
    )


@pytest.fixture
async def deployment(services: Services, backends: Backends) -> Services:
    """The services of that deployment, with the customer imported into the ledger too."""
    created = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await import_data(
        services.db,
        {
            "customers": [
                {"id": LEDGER_CUSTOMER, "email": EMAIL, "name": "Mina Okafor", "created": created}
            ],
            "charges": [
                {"id": LEDGER_CHARGE, "customer": LEDGER_CUSTOMER, "amount": 1100, "currency": "EUR",
                 "status": "succeeded", "created": created, "description": "Workshop"}
            ],
        },
    )  # fmt: skip
    assert sorted(g.name for g in services.gateways) == list(GATEWAYS)
    return services


def facts(card: Card) -> dict[str, str]:
    return {f.label: f.value for s in card.sections for f in s.facts}


def section(card: Card, title: Callable[[str], bool]) -> list[Section]:
    return [s for s in card.sections if s.title is not None and title(s.title)]


def charge_rows(card: Card) -> dict[str, list[str]]:
    """The merged charges table, by charge ID."""
    (charges,) = section(card, lambda t: t.startswith("Charges"))
    assert charges.table is not None and charges.table.more == 0
    return {row[0]: row for row in charges.table.rows}


def one_card(reply: Reply) -> Card:
    assert reply.error is None, reply.error
    (card,) = reply.cards
    return card


def customer_ids(card: Card) -> set[str]:
    return set(facts(card)["Customer"].split(", "))


async def test_a_customer_in_every_gateway_gets_one_card_with_each_gateways_charges(
    deployment: Services, backends: Backends, agent: Actor
) -> None:
    card = one_card(await say(deployment, agent, f"lookup {EMAIL}"))

    assert card.title == "Mina Okafor"
    summary = facts(card)
    assert summary["Email"] == EMAIL
    assert summary["Gateways"] == ", ".join(GATEWAYS)
    assert customer_ids(card) == {f"{g}:{backends.customers[g]}" for g in GATEWAYS}
    assert summary["Lifetime value"] == "€11.00, $220.00"  # never summed across currencies
    assert section(card, lambda t: "unavailable" in t) == []
    rows = charge_rows(card)
    assert {backends.charges[g]: rows[backends.charges[g]][2] for g in GATEWAYS} == {
        backends.charges[g]: AMOUNTS[g] for g in GATEWAYS
    }
    assert len(rows) == len(GATEWAYS)


async def test_a_refund_from_the_merged_card_reaches_the_gateway_that_owns_the_charge(
    deployment: Services, backends: Backends, agent: Actor
) -> None:
    card = one_card(await say(deployment, agent, f"lookup {EMAIL}"))
    sale = backends.charges["braintree"]
    (button,) = [b for b in card.actions if b.label == f"Refund {sale}"]
    assert button.command == f"refund braintree:{sale} reason: "

    done = await say(deployment, agent, button.command + "requested_by_customer changed plans")

    assert done.approval is not None and done.approval.state == "succeeded", done.error
    (refund,) = backends.braintree.transactions[sale].refund_ids
    assert backends.braintree.transactions[refund].amount == Decimal("44.00")
    again = one_card(await say(deployment, agent, f"lookup {EMAIL}"))
    refunded = {charge: row[3] for charge, row in charge_rows(again).items()}  # the Refunded column
    assert refunded == {c: ("$44.00" if c == sale else "") for c in backends.charges.values()}
    assert facts(again)["Lifetime value"] == "€11.00, $176.00"


@pytest.mark.parametrize("down", PROVIDERS)
async def test_a_gateway_answering_500s_is_named_and_the_other_five_still_show(
    deployment: Services, backends: Backends, agent: Actor, down: str
) -> None:
    backends.break_with_500s(down)

    card = one_card(await say(deployment, agent, f"lookup {EMAIL}"))

    up = [g for g in GATEWAYS if g != down]
    (failed,) = section(card, lambda t: "unavailable" in t)
    assert failed.title == f"{down}: unavailable" and failed.tone == "danger"
    assert failed.text is not None and failed.text.endswith("(unavailable)")
    assert facts(card)["Gateways"] == ", ".join(up)
    assert customer_ids(card) == {f"{g}:{backends.customers[g]}" for g in up}
    rows = charge_rows(card)
    assert {rows[backends.charges[g]][2] for g in up} == {AMOUNTS[g] for g in up}
    assert backends.charges[down] not in rows


@pytest.mark.parametrize("down", PROVIDERS)
async def test_a_gateway_slower_than_the_lookup_timeout_is_named_and_the_other_five_still_show(
    deployment: Services, backends: Backends, agent: Actor, down: str
) -> None:
    # Late enough to miss the card, soon enough that the emulator stops quickly afterwards.
    backends.slow_down(down, LOOKUP_TIMEOUT + 1)

    card = one_card(await say(deployment, agent, f"lookup {EMAIL}"))

    up = [g for g in GATEWAYS if g != down]
    (failed,) = section(card, lambda t: "unavailable" in t)
    assert failed.title == f"{down}: unavailable"
    assert failed.text == f"{down} did not answer within {LOOKUP_TIMEOUT:g} s (timeout)"
    assert facts(card)["Gateways"] == ", ".join(up)
    assert set(charge_rows(card)) == {backends.charges[g] for g in up}
