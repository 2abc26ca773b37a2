"""What a customer does on the pages: tax ID, a question, paying, updating the card."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.cards.model import Card
from bot.store.tables import AuditEntry, Notification
from tests.portal.conftest import JANE, form_page, open_as, post

pytestmark = pytest.mark.storage

KOWALSKI = "ksiegowosc@kowalski.example.pl"


async def tax_ids(services, email: str) -> list[tuple[str, str]]:
    profile = await services.gateways.lookup(email)
    return [(t.type, t.value) for p in profile.profiles for t in p.tax_ids]


async def audit(services, action: str) -> list[AuditEntry]:
    async with services.db.read() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.mark.parametrize(
    ("country", "number", "error"),
    [
        ("DE", "DE136695975", "This is not a valid tax ID for Germany"),
        ("DE", "PL5260250274", "This number belongs to Poland, not Germany"),
        ("DE", "", "Enter your tax ID number"),
        ("US", "12-3456789", "Choose a country from the list"),
        ("", "DE136695976", "Choose a country from the list"),
    ],
)
async def test_an_invalid_tax_id_is_shown_next_to_its_field_and_not_saved(
    client, services, country, number, error
):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/tax-id")

    answer = await post(
        client, "/portal/tax-id", token, country=country, number=number, submission="s1"
    )

    assert answer.status_code == 400
    assert error in answer.text
    field = "country" if "country from the list" in error else "number"
    assert f'aria-describedby="{field}-error' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert await tax_ids(services, JANE) == []
    assert await audit(services, "portal_tax_id") == []


async def test_a_valid_tax_id_is_saved_to_the_ledger_and_audited(client, services):
    await open_as(client, services, JANE)
    page, token = await form_page(client, "/portal/tax-id")
    assert '<option value="IE" selected>Ireland</option>' in page.text  # Jane lives in Dublin

    saved = await post(
        client, "/portal/tax-id", token, country="DE", number="136 695 976", submission="s1"
    )

    assert saved.status_code == 200
    assert "Saved: DE136695976" in saved.text
    assert await tax_ids(services, JANE) == [("eu_vat", "DE136695976")]
    [entry] = await audit(services, "portal_tax_id")
    assert (entry.actor_name, entry.outcome) == (JANE, "saved")
    assert entry.detail == {"type": "eu_vat", "value": "DE136695976", "gateways": ["ledger"]}
    history = (await client.get("/portal/")).text
    assert "DE136695976" in history


async def test_a_new_tax_id_replaces_the_one_on_file(client, services):
    assert await tax_ids(services, KOWALSKI) == [("eu_vat", "PL5260250274")]
    await open_as(client, services, KOWALSKI)
    page, token = await form_page(client, "/portal/tax-id?lang=en")
    assert '<option value="PL" selected>' in page.text and "PL5260250274" in page.text

    saved = await post(
        client, "/portal/tax-id", token, country="DE", number="DE136695976", submission="s2"
    )

    assert saved.status_code == 200 and "Saved: DE136695976" in saved.text
    assert await tax_ids(services, KOWALSKI) == [("eu_vat", "DE136695976")]


async def test_a_question_reaches_the_helpdesk_with_the_customers_card(client, services):
    await open_as(client, services, JANE)
    page, token = await form_page(client, "/portal/question")
    assert 'maxlength="2000"' in page.text and '<label for="question">' in page.text

    sent = await post(
        client, "/portal/question", token, question="Why was I charged twice in October?\r\nThanks"
    )

    assert sent.status_code == 200 and "Your question has reached our billing team" in sent.text
    async with services.db.read() as session:
        [row] = list(await session.scalars(select(Notification)))
    card = Card.model_validate(row.card)
    assert row.kind == "question"
    assert card.title == "Billing question from Jane Doe"
    assert "via billing page" in (card.subtitle or "")
    assert card.sections[0].text == "Why was I charged twice in October?\nThanks"
    assert any(f.value == JANE for s in card.sections for f in s.facts)
    [entry] = await audit(services, "customer_question")
    assert entry.actor_platform == "portal" and entry.detail["source"] == "billing page"


async def test_an_empty_or_too_long_question_is_refused_with_a_message(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/question")

    empty = await post(client, "/portal/question", token, question="   ")
    long = await post(client, "/portal/question", token, question="x" * 2001)

    assert empty.status_code == 400 and "Write your question first" in empty.text
    assert long.status_code == 400 and "at most 2000 characters" in long.text
    assert 'aria-describedby="question-error question-hint"' in long.text
    async with services.db.read() as session:
        assert list(await session.scalars(select(Notification))) == []


async def test_questions_are_limited_per_customer(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/question")
    statuses = [
        (await post(client, "/portal/question", token, question=f"Question {n}")).status_code
        for n in range(6)
    ]
    assert statuses == [200] * 5 + [429]


async def test_paying_an_invoice_the_ledger_has_no_page_for_says_how_to_pay(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/")

    open_one = await post(client, "/portal/pay/ledger/in_jane_open", token)
    paid = await post(client, "/portal/pay/ledger/in_jane_paid", token)
    johns = await post(client, "/portal/pay/ledger/in_john_overdue", token)

    assert open_one.status_code == 200 and "cannot be paid online" in open_one.text
    assert 'href="/portal/question"' in open_one.text
    assert "already paid" in paid.text
    assert johns.status_code == 404
    assert await audit(services, "portal_pay") == []


async def test_updating_the_card_of_a_ledger_customer_says_whom_to_ask(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/")

    answer = await post(client, "/portal/card", token)

    assert answer.status_code == 200
    assert "cannot be changed online" in answer.text
    [entry] = await audit(services, "portal_card_update")
    assert entry.outcome == "not_online"
