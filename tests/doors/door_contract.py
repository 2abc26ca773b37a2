"""The door contract: what every door does, written once against a small harness.

A harness drives one real door against its platform's emulator (or the terminal)
and reports what people saw: messages posted where others read (`public`),
what was said to one person only (`private`), the copies of an approval
request posted where managers work (`copies`) and their redrawn versions
(`redrawn`). A new door (a helpdesk) gets every scenario by writing one harness.

People are named by what they are, not by platform IDs: "agent", "manager",
"other_manager" (a second manager), "customer" (a person the door knows as a
customer) and "stranger" (a platform user nobody configured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.actors import Actor, Role
from bot.approvals.policy import load_policy
from bot.cards.model import Card, Section
from bot.services import Services
from tests.conftest import REPO, person, refunded, say

JANE = "jane.doe@example.com"
# Above what an agent may refund alone (config/policy.toml: 50.00 EUR): a manager decides.
BIG_REFUND = "refund ch_jane_1 80 reason: duplicate charged twice"


@dataclass
class Shown:
    """One message as people see it: its text, and the buttons still on it."""

    text: str
    buttons: list[str] = field(default_factory=list)


class DoorHarness(Protocol):
    name: str
    services: Services
    # False for a door that keeps no posted message to edit later (the terminal).
    keeps_copies: bool

    async def say(self, who: str, line: str) -> None:
        """`who` types `line` in an internal channel; returns once the door has answered."""

    def public(self) -> list[Shown]:
        """Everything posted so far where other people read."""

    def private(self, who: str) -> list[Shown]:
        """Everything said so far to `who` only."""

    async def request(self, who: str, line: str) -> str:
        """`who` types a command that needs a manager; the request's ID once it is posted."""

    async def copies(self, approval_id: str) -> list[Shown]:
        """The request's copies posted where managers work (the approvals channel, a thread)."""

    async def click_approve(self, who: str, approval_id: str) -> None:
        """`who` clicks Approve on the request's copy in the approvals channel."""

    async def redrawn(self, approval_id: str) -> list[Shown]:
        """Each copy of the request as last edited, once every copy was edited."""

    async def deliver_alert(self, card: Card) -> list[Shown]:
        """Queue `card` for the door's alerts channel, deliver, and return what was posted there."""

    async def actor(self, who: str) -> Actor:
        """The actor the door maps `who`'s platform identity to."""


# --- scenarios ------------------------------------------------------------------------------


async def an_agents_lookup_shows_the_customers_card(door: DoorHarness) -> None:
    await door.say("agent", f"lookup {JANE}")
    shown = "\n".join(s.text for s in door.public())
    assert "ch_jane_1" in shown and "sub_jane_pro" in shown
    assert door.private("agent") == []


async def a_customer_is_refused_privately_and_nothing_is_posted(door: DoorHarness) -> None:
    await door.say("customer", f"lookup {JANE}")
    said = "\n".join(s.text for s in door.private("customer"))
    assert "needs the agent" in said or "role" in said
    assert door.public() == []


async def a_refund_over_the_limit_is_posted_where_managers_work(door: DoorHarness) -> None:
    approval_id = await door.request("agent", BIG_REFUND)
    assert approval_id.startswith("apr_")
    copies = await door.copies(approval_id)
    if door.keeps_copies:
        assert copies and all(any("approve" in b for b in c.buttons) for c in copies)
    assert await refunded(door.services, "ch_jane_1") == 0


async def a_manager_cannot_approve_their_own_request(door: DoorHarness, tmp_path: Path) -> None:
    # Managers here may refund only 50.00 alone, so the manager's own 80.00 waits for another.
    shipped = (REPO / "config" / "policy.toml").read_text()
    assert '[refund.limits.manager]\nEUR = "1000.00"' in shipped
    (tmp_path / "policy.toml").write_text(
        shipped.replace(
            '[refund.limits.manager]\nEUR = "1000.00"', '[refund.limits.manager]\nEUR = "50.00"'
        )
    )
    door.services.policy = load_policy(tmp_path / "policy.toml")
    approval_id = await door.request("manager", BIG_REFUND)
    await door.click_approve("manager", approval_id)
    said = "\n".join(s.text for s in door.private("manager"))
    assert "your own request" in said
    assert await refunded(door.services, "ch_jane_1") == 0


async def a_decision_taken_elsewhere_redraws_every_copy(door: DoorHarness, where: str) -> None:
    approval_id = await door.request("agent", BIG_REFUND)
    if where == "shell":
        elsewhere = person("maria", Role.manager, platform="shell")
        reply = await say(door.services, elsewhere, f"approve {approval_id}")
        outcome = ": done"
    elif where == "another door":
        other = "discord" if door.name == "slack" else "slack"
        elsewhere = person("U0ELSEWHERE", Role.manager, platform=other)
        reply = await say(door.services, elsewhere, f"deny {approval_id} reason: not a duplicate")
        outcome = ": denied"
    else:  # expiry
        from datetime import timedelta

        from sqlalchemy import update

        from bot.actors import SYSTEM
        from bot.approvals.workflow import expire_due, now
        from bot.store.tables import ApprovalRow

        async with door.services.db.write() as s:
            await s.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id)
                .values(expires_at=now() - timedelta(minutes=1))
            )
        assert await expire_due(door.services, SYSTEM) == 1
        reply = None
        outcome = "expired"
    assert reply is None or reply.error is None
    if not door.keeps_copies:
        return
    for copy in await door.redrawn(approval_id):
        assert outcome in copy.text.lower()
        assert not any("approve" in b or "deny" in b for b in copy.buttons)


async def an_approved_refund_executes_once_however_often_approve_is_clicked(
    door: DoorHarness,
) -> None:
    approval_id = await door.request("agent", BIG_REFUND)
    for who in ("manager", "manager", "other_manager"):
        await door.click_approve(who, approval_id)
    assert await refunded(door.services, "ch_jane_1") == 8000


async def an_alert_reaches_the_alerts_channel(door: DoorHarness) -> None:
    card = Card(title="New dispute dp_contract", sections=[Section(text="on ch_jane_1")])
    posted = await door.deliver_alert(card)
    if door.keeps_copies:
        assert len(posted) == 1 and "New dispute dp_contract" in posted[0].text
    else:
        assert posted == []  # the terminal keeps alerts in `/billing alerts`


async def unknown_users_move_no_money(door: DoorHarness) -> None:
    # A chat stranger is a customer; a helpdesk's unlisted teammate is read-only staff.
    stranger = await door.actor("stranger")
    assert stranger.roles in (frozenset({Role.customer}), frozenset({Role.viewer}))
    assert (await door.actor("manager")).has(Role.manager)
