"""Acting from the panel: every button the agent may use, forms from the core, the approval
policy in between, each form run once, the outcome redrawn after a decision taken anywhere,
and a note in the ticket for what was done and for what was decided."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.actors import Role
from bot.approvals.policy import load_policy
from bot.store.tables import ApprovalRow, EmailRow, LedgerCustomer
from tests.conftest import REPO, person, refunded, say
from tests.panel.conftest import (
    AGENT,
    JANE,
    JOHN,
    MANAGER,
    OTHER_MANAGER,
    Agent,
    Panel,
    buttons,
    forms,
    text,
    traces,
)

pytestmark = [pytest.mark.storage, pytest.mark.approvals]


async def refund(agent: Agent, amount: str, charge: str = "ch_jane_1") -> str:
    """The agent refunds `amount` of `charge` from the card; the page answered."""
    card = (await agent.get("card")).text
    form = await agent.click(card, f"Refund {charge}")
    assert form.status_code == 200, text(form.text)
    sent = await agent.fill(
        form.text, {"amount": amount, "reason_code": "duplicate", "reason_text": "charged twice"}
    )
    assert sent.status_code == 200, text(sent.text)
    return sent.text


def approval_id(page: str) -> str:
    found = re.search(r"Waiting for approval (apr_[0-9a-f]+)", text(page))
    assert found, text(page)
    return found.group(1)


async def test_every_action_on_the_card_has_its_button(panel: Panel):
    alex = await panel.enter(AGENT)
    offered = buttons((await alex.get("card")).text)
    for wanted in (
        "Refund ch_jane_1", "Refund ch_jane_2", "Capture ch_jane_auth", "Void ch_jane_auth",
        "Cancel sub_jane_pro", "Email receipt ch_jane_1", "Email invoice JANE-0003",
    ):  # fmt: skip
        assert wanted in offered
    assert "Refund ch_jane_disputed" not in offered  # nothing left to refund once disputed
    assert "Cancel sub_jane_starter" not in offered  # already canceled


async def test_the_refund_form_is_the_core_form_with_the_refundable_amount(panel: Panel):
    alex = await panel.enter(AGENT)
    form = await alex.click((await alex.get("card")).text, "Refund ch_jane_1")
    shown = text(form.text)
    assert "Refund ch_jane_1" in shown and "Amount (EUR)" in shown and "Up to €120.00" in shown
    assert 'value="120.00 EUR"' in form.text
    assert "Reason code" in shown and "Requested by customer" in shown
    assert await refunded(panel.services, "ch_jane_1") == 0  # opening a form does nothing


async def test_a_small_refund_runs_at_once_and_leaves_a_note_in_the_ticket(panel: Panel):
    alex = await panel.enter(AGENT)
    page = await refund(alex, "20")

    assert "done" in text(page).lower()
    assert await refunded(panel.services, "ch_jane_1") == 2000
    noted = await traces(panel.services)
    [topic] = [t for t in noted if t.startswith("reply:apr_")]
    assert "succeeded" in noted[topic] or "done" in noted[topic]
    assert "By Alex (alex@example.com) from the agent panel." in noted[topic]
    # The request shows with the ticket's requests from now on.
    assert "Requests from this ticket" in text((await alex.get("card")).text)


async def test_a_refund_over_the_limit_waits_and_its_outcome_reaches_the_panel_and_the_ticket(
    panel: Panel,
):
    alex = await panel.enter(AGENT)
    page = await refund(alex, "80")
    request = approval_id(page)
    assert await refunded(panel.services, "ch_jane_1") == 0
    assert f"reply:{request}" in await traces(panel.services)
    # While it waits, the page reloads itself (no script) and shows no button to the agent.
    assert f'http-equiv="refresh" content="15;url={alex.root}card"' in page
    assert f"approve {request}" not in page

    maria = await panel.enter(MANAGER, ticket="9999", requester=JOHN)
    waiting = (await maria.get("approvals")).text
    assert request in text(waiting) and "Approve" in buttons(waiting)
    assert "Approvals (1)" in text((await maria.get("card")).text)
    approved = await maria.click(waiting, "Approve")
    assert approved.status_code == 200 and f"Your decision on {request}" in text(approved.text)

    assert await refunded(panel.services, "ch_jane_1") == 8000
    redrawn = (await alex.get("card")).text
    assert "refresh" not in redrawn.split("</head>")[0]
    assert f"{request}" in text(redrawn) and "done" in text(redrawn).lower()
    assert "Approve" not in buttons(redrawn)
    noted = await traces(panel.services)
    assert "done" in noted[f"decided:{request}"].lower()
    assert await traces(panel.services, "9999") == {}  # the manager's own ticket is left alone


async def test_a_decision_taken_in_the_shell_reaches_the_ticket(panel: Panel):
    alex = await panel.enter(AGENT)
    request = approval_id(await refund(alex, "80"))

    reply = await say(
        panel.services,
        person("maria", Role.manager, platform="shell"),
        f"deny {request} reason: not needed",
    )

    assert reply.error is None
    assert "denied" in (await traces(panel.services))[f"decided:{request}"].lower()
    assert "denied" in text((await alex.get("card")).text).lower()


async def test_a_manager_denies_with_a_reason_from_the_panel(panel: Panel):
    alex = await panel.enter(AGENT)
    request = approval_id(await refund(alex, "80"))
    maria = await panel.enter(MANAGER)
    card = (await maria.get("card")).text
    form = await maria.click(card, "Deny")
    assert "Why" in text(form.text)
    denied = await maria.fill(form.text, {"reason": "not a duplicate"})
    assert f"Your decision on {request}" in text(denied.text)
    assert await refunded(panel.services, "ch_jane_1") == 0
    assert "not a duplicate" in (await traces(panel.services))[f"decided:{request}"]


async def test_a_manager_cannot_approve_their_own_request(panel: Panel, tmp_path: Path):
    shipped = (REPO / "config" / "policy.toml").read_text()
    lower = '[refund.limits.manager]\nEUR = "50.00"'
    (tmp_path / "policy.toml").write_text(
        shipped.replace('[refund.limits.manager]\nEUR = "1000.00"', lower)
    )
    panel.services.policy = load_policy(tmp_path / "policy.toml")
    mark = await panel.enter(OTHER_MANAGER)
    request = approval_id(await refund(mark, "80"))

    approvals = (await mark.get("approvals")).text
    waiting, mine = approvals.split("Your requests still waiting")
    assert request not in text(waiting) and request in text(mine)
    card = (await mark.get("card")).text
    refused = await mark.click(card, "Approve")
    assert "you cannot approve or deny your own request" in text(refused.text)
    assert await refunded(panel.services, "ch_jane_1") == 0


async def test_a_form_sent_twice_runs_once(panel: Panel):
    alex = await panel.enter(AGENT)
    form = await alex.click((await alex.get("card")).text, "Refund ch_jane_1")
    values = {"amount": "10", "reason_code": "duplicate", "reason_text": "twice"}
    first = await alex.fill(form.text, values)
    again = await alex.fill(form.text, values)  # the back button, a double click, a retry

    assert "done" in text(first.text).lower()
    assert "That was already sent: it ran once." in text(again.text)
    assert await refunded(panel.services, "ch_jane_1") == 1000


async def test_a_double_clicked_email_button_sends_once(panel: Panel):
    alex = await panel.enter(AGENT)
    card = (await alex.get("card")).text
    first = await alex.click(card, "Email receipt ch_jane_1")
    second = await alex.click(card, "Email receipt ch_jane_1")
    assert "already sent" in text(second.text)
    assert "That was already sent" not in text(first.text)
    async with panel.services.db.read() as db:
        assert await db.scalar(select(func.count()).select_from(EmailRow)) == 1
    assert [t for t in await traces(panel.services) if t.startswith("reply:")]


async def test_a_bad_amount_shows_the_form_again_and_changes_nothing(panel: Panel):
    alex = await panel.enter(AGENT)
    form = await alex.click((await alex.get("card")).text, "Refund ch_jane_1")
    again = await alex.fill(form.text, {"amount": "12,5,0", "reason_text": "x"})
    assert again.status_code == 400
    assert 'role="alert"' in again.text and 'value="12,5,0"' in again.text
    assert [f for f in forms(again.text) if f.action.endswith("/submit")]
    assert await refunded(panel.services, "ch_jane_1") == 0
    async with panel.services.db.read() as db:
        assert await db.scalar(select(func.count()).select_from(ApprovalRow)) == 0


async def test_the_card_says_how_sure_the_match_is_and_switches_between_several(panel: Panel):
    async with panel.services.db.write() as db:
        db.add(LedgerCustomer(id="cus_jane_old", email=JANE, name="Jane Doe (old account)",
                              created=datetime(2025, 1, 1, tzinfo=UTC)))  # fmt: skip
    alex = await panel.enter(AGENT)
    card = text((await alex.get("card")).text)
    assert "Verified Matched by the ticket requester's email jane.doe@example.com." in card
    assert "Several customers match" in card and "Jane Doe (old account)" in card

    chosen = text((await alex.get("card", id="cus_jane_old")).text)
    assert "Verified" in chosen  # the same email as the requester's
    assert "ch_jane_1" not in chosen

    other = text((await alex.get("card", id="cus_john")).text)
    assert "Not verified" in other and "Found by cus_john" in other
    assert "The ticket requester" in other


async def test_search_by_an_email_with_several_customers_lets_the_agent_choose(panel: Panel):
    async with panel.services.db.write() as db:
        db.add(LedgerCustomer(id="cus_john_2", email=JOHN, name="John Smith (2)",
                              created=datetime(2025, 1, 1, tzinfo=UTC)))  # fmt: skip
    alex = await panel.enter(AGENT, requester=None)
    page = (await alex.get("search")).text
    search = next(f for f in forms(page) if f.action.endswith("/search"))
    found = await alex.post(search.action, search.fields | {"q": JOHN})
    assert found.status_code == 200 and "Choose the customer" in text(found.text)
    assert f'href="{alex.root}card?id=cus_john_2"' in found.text
    bad = await alex.post(search.action, search.fields | {"q": "two words"})
    assert bad.status_code == 400 and "without spaces" in text(bad.text)


async def test_the_panel_speaks_the_agents_language(panel: Panel):
    hans = await panel.enter(AGENT, locale="de-DE")
    page = (await hans.get("card")).text
    assert '<html lang="de">' in page and "Zum Inhalt springen" in text(page)
    assert "Bestätigt" in text(page)
    japanese = (await hans.get("card", lang="ja")).text
    assert '<html lang="ja">' in japanese and "確認済み" in text(japanese)
    assert '<html lang="ja">' in (await hans.get("approvals")).text  # the choice stays
