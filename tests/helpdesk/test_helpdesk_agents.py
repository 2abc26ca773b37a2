"""Helpdesk agents are people with roles, by the email their helpdesk sends (bot/helpdesk/agents.py).

Listed emails get their roles in every helpdesk; spellings of one email are one person; an
unlisted agent is read-only staff (`Role.viewer`): it looks up, and the router refuses it
everything that moves money, with nothing recorded; four-eyes holds across a helpdesk and
Slack for a person declared in `[people]`; a forged request never names an agent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.actors import Actor, People, Role
from bot.approvals.policy import Policy, load_policy
from bot.approvals.requests import decide, submit
from bot.approvals.workflow import ActionRequest
from bot.commands import COMMANDS
from bot.errors import UserError
from bot.helpdesk.agents import helpdesk_actor
from bot.helpdesk.base import Forged
from bot.helpdesk.helpscout import sidebar
from bot.money import parse_money
from bot.services import Services
from bot.settings import (
    ConfigError,
    FreshdeskSettings,
    FrontSettings,
    HelpScoutSettings,
    ZendeskSettings,
)
from bot.store.tables import ApprovalRow, AuditEntry
from tests.approvals.test_four_eyes_people import on_slack
from tests.conftest import refunded, say

ALEX = "alex@example.com"
MARIA = "maria@example.com"
SAM = "sam@example.com"
NOBODY = "new.hire@example.com"
SECTIONS = {
    "zendesk": ZendeskSettings,
    "freshdesk": FreshdeskSettings,
    "helpscout": HelpScoutSettings,
    "front": FrontSettings,
}


def section(name: str = "helpscout", **lists: list[str]):
    return SECTIONS[name](**{"agents": [ALEX], "managers": [MARIA], "admins": [SAM], **lists})


# --- roles by email, in every helpdesk -------------------------------------------------------


@pytest.mark.parametrize("helpdesk", sorted(SECTIONS))
def test_listed_emails_get_their_roles_in_every_helpdesk(helpdesk: str) -> None:
    desk = section(helpdesk)
    alex = helpdesk_actor(helpdesk, desk, ALEX, "Alex Agent", 7)
    maria = helpdesk_actor(helpdesk, desk, MARIA, "Maria", 8)
    sam = helpdesk_actor(helpdesk, desk, SAM, None, 9)
    assert alex.roles == {Role.agent}
    assert maria.roles == {Role.manager, Role.agent}
    assert sam.roles == {Role.admin, Role.manager, Role.agent}
    assert alex.key == f"{helpdesk}:{ALEX}" and alex.name == "Alex Agent" and alex.email == ALEX
    assert sam.name == SAM  # no display name: the email


@pytest.mark.parametrize(
    "spelling",
    [
        "Alex@Example.com",
        "ALEX@EXAMPLE.COM",
        " alex@example.com ",
        "ａｌｅｘ@ｅｘａｍｐｌｅ.ｃｏｍ",  # fullwidth
        "al\u200bex@example.com",  # zero-width space
        "alex\u00ad@example.com",  # soft hyphen
        "\u202ealex@example.com",  # bidi override
    ],
)
def test_spellings_of_one_email_are_one_person_with_one_set_of_roles(spelling: str) -> None:
    actor = helpdesk_actor("helpscout", section(), spelling, "Alex", 7)
    assert actor.key == f"helpscout:{ALEX}" and actor.roles == {Role.agent}
    # The configured list may be spelled any way too.
    listed = helpdesk_actor("helpscout", section(agents=[spelling]), ALEX, "Alex", 7)
    assert listed.roles == {Role.agent}
    # And [people] may name the identity in any spelling.
    people = People({ALEX: [f"HelpScout:{spelling}", "slack:U0ALEX"]})
    assert people.same(actor.key, "slack:U0ALEX")


def test_an_unlisted_agent_is_read_only_staff_never_a_customer() -> None:
    actor = helpdesk_actor("zendesk", section("zendesk"), NOBODY, "New Hire", 99)
    assert actor.roles == {Role.viewer}
    assert not actor.has(Role.agent) and not actor.has(Role.customer)
    assert actor.key == f"zendesk:{NOBODY}"


def test_an_agent_without_an_email_is_read_only_and_known_by_user_id() -> None:
    for missing in (None, "", "   ", "not-an-email"):
        actor = helpdesk_actor("front", section("front", agents=["not-an-email"]), missing, "", 42)
        assert actor.roles == {Role.viewer}
        assert actor.key == "front:id:42" and actor.email is None and actor.name == "id:42"
    with pytest.raises(ValueError, match="named no agent"):
        helpdesk_actor("front", section("front"), None, "Alex", None)


def test_the_viewer_role_adds_nothing_to_anyone() -> None:
    """Read-only staff may run help and lookup only; a customer's commands are unchanged."""
    viewer = Actor(platform="t", id="v", name="v", roles=frozenset({Role.viewer}))
    customer = Actor(platform="t", id="c", name="c")
    assert {n for n, c in COMMANDS.items() if c.allowed(viewer)} == {"help", "lookup"}
    assert {n for n, c in COMMANDS.items() if c.allowed(customer)} == {
        "help", "me", "verify", "portal", "ask",
    }  # fmt: skip
    both = Actor(platform="t", id="b", name="b", roles=frozenset({Role.viewer, Role.customer}))
    assert not COMMANDS["refund"].allowed(both)


@pytest.mark.parametrize("field", ["requesters", "alone_roles", "limits", "daily_budget"])
def test_the_policy_refuses_to_let_a_viewer_move_money(tmp_path: Path, field: str) -> None:
    value = '{ viewer = { EUR = "10" } }' if field in ("limits", "daily_budget") else '["viewer"]'
    path = tmp_path / "policy.toml"
    path.write_text(f"[refund]\n{field} = {value}\n")
    with pytest.raises(ConfigError, match="viewer is read-only"):
        load_policy(path)


# --- the router and the approvals API refuse read-only staff ---------------------------------


async def counts(services: Services) -> tuple[int, int]:
    async with services.db.read() as s:
        approvals = await s.scalar(select(func.count()).select_from(ApprovalRow))
        audit = await s.scalar(select(func.count()).select_from(AuditEntry))
    return int(approvals or 0), int(audit or 0)


@pytest.mark.storage
async def test_an_unlisted_agent_can_look_up_but_moves_no_money(services: Services) -> None:
    viewer = helpdesk_actor("helpscout", section(), NOBODY, "New Hire", 99)
    looked = await say(services, viewer, "lookup jane.doe@example.com")
    assert looked.error is None and "ch_jane_1" in looked.model_dump_json()
    before = await counts(services)
    for line in (
        "refund ch_jane_1 10 reason: duplicate charged twice",
        "refund ch_jane_1 reason: duplicate charged twice",
        "cancel sub_jane_pro period-end reason: customer asked",
        "capture ch_jane_auth 10 reason: shipped part of the order",
        "void ch_jane_auth reason: order cancelled",
    ):
        refused = await say(services, viewer, line)
        assert refused.error is not None and refused.error.code == "forbidden", line
        message = refused.error.message
        assert "\n" not in message and len(message) <= 300
        command = line.split()[0]
        assert message == (
            f"{command} needs the agent role: you are read-only staff and may only look up billing"
        )
        assert refused.approval is None and not refused.cards
    assert await counts(services) == before  # no request, no audit entry
    assert await refunded(services, "ch_jane_1") == 0


@pytest.mark.storage
async def test_the_approvals_api_refuses_read_only_staff_too(services: Services) -> None:
    viewer = helpdesk_actor("helpscout", section(), NOBODY, "New Hire", 99)
    request = ActionRequest(
        action="refund", gateway="ledger", target_id="ch_jane_1", customer_id="cus_jane",
        amount=parse_money("10", "EUR"), reason="duplicate charged twice",
    )  # fmt: skip
    with pytest.raises(UserError) as refused:
        await submit(services, viewer, request)
    assert refused.value.code == "forbidden"
    assert await counts(services) == (0, 0)


# --- four-eyes compares people across a helpdesk and Slack ------------------------------------

PEOPLE = {
    ALEX: ["slack:U0ALEX", f"helpscout:{ALEX}", "shell:alex"],
    MARIA: ["slack:U0MARIA", f"zendesk:{MARIA}"],
}


@pytest.fixture
def policy(policy: Policy) -> Policy:
    """The shipped policy, with alex and maria declared across chat and helpdesks."""
    return policy.model_copy(update={"people": Policy(people=PEOPLE).people})


def refund_of(euros: str) -> ActionRequest:
    return ActionRequest(
        action="refund", gateway="ledger", target_id="ch_jane_1", customer_id="cus_jane",
        amount=parse_money(euros, "EUR"), refundable=parse_money("120", "EUR"),
        reason="duplicate charged twice", reason_code="duplicate",
    )  # fmt: skip


@pytest.mark.approvals
async def test_a_person_cannot_approve_in_slack_what_they_asked_in_help_scout(
    services: Services,
) -> None:
    alex = helpdesk_actor("helpscout", section(), "Alex@Example.com", "Alex", 7)
    assert alex.roles == {Role.agent}
    view = await submit(services, alex, refund_of("80"))
    assert view.state == "pending" and view.requester_key == f"helpscout:{ALEX}"
    with pytest.raises(UserError) as own:
        await decide(services, on_slack("U0ALEX", Role.manager), view.id, approve=True)
    assert own.value.code == "own_request"
    # Nor in Help Scout once made a manager there, under another spelling of his email.
    promoted = helpdesk_actor("helpscout", section(managers=[ALEX]), "ALEX@example.com", "", 7)
    assert promoted.has(Role.manager)
    with pytest.raises(UserError) as own_again:
        await decide(services, promoted, view.id, approve=True)
    assert own_again.value.code == "own_request"
    # maria, a manager in Zendesk, is someone else: she may.
    maria = helpdesk_actor("zendesk", section("zendesk"), MARIA, "Maria", 8)
    approved = await decide(services, maria, view.id, approve=True)
    assert approved.state == "succeeded"
    assert await refunded(services, "ch_jane_1") == 8000


@pytest.mark.approvals
async def test_a_person_cannot_approve_in_zendesk_what_they_asked_in_slack(
    services: Services,
) -> None:
    view = await submit(services, on_slack("U0MARIA", Role.agent), refund_of("80"))
    maria = helpdesk_actor("zendesk", section("zendesk"), "Maria@Example.COM", "Maria", 8)
    with pytest.raises(UserError) as own:
        await decide(services, maria, view.id, approve=True)
    assert own.value.code == "own_request"


# --- a forged request never names an agent ---------------------------------------------------


@pytest.mark.parametrize("tamper", ["unsigned", "wrong secret", "body changed", "empty"])
def test_a_forged_sidebar_request_never_yields_an_actor(
    monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    import base64
    import hashlib
    import hmac

    secret = "the-app-secret-key"
    named: list[object] = []
    monkeypatch.setattr(sidebar, "helpdesk_actor", lambda *a, **k: named.append(a))
    body = json.dumps({"customer": {"email": "jane.doe@example.com"},
                       "user": {"id": 7, "email": ALEX, "fname": "Alex"}}).encode()  # fmt: skip

    def sign(data: bytes, key: str = secret) -> dict[str, str]:
        digest = hmac.new(key.encode(), data, hashlib.sha1).digest()
        return {"X-HelpScout-Signature": base64.b64encode(digest).decode()}

    headers = {
        "unsigned": {},
        "wrong secret": sign(body, "not-ours"),
        "body changed": sign(body.replace(b"jane", b"john")),
        "empty": {"X-HelpScout-Signature": ""},
    }[tamper]
    with pytest.raises(Forged):
        sidebar.read_request(body, headers, secret, section())
    assert named == []
    # The same body, signed, names its agent.
    payload, _ = sidebar.read_request(body, sign(body), secret, section())
    assert payload["user"]["email"] == ALEX and len(named) == 1
