"""Four-eyes compares people: not a spelling of one's own name, nor one's other platforms."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.actors import Actor, Role
from bot.approvals.policy import Policy, load_policy
from bot.chat.shell.adapter import Shell, parse_identity
from bot.services import Services
from bot.settings import ConfigError
from tests.conftest import REPO, say

pytestmark = pytest.mark.approvals

PEOPLE = """
[people]
"alex@example.com" = ["slack:U0ALEX", "shell:alex", "discord:4242"]
"maria@example.com" = ["slack:U0MARIA", "shell:maria"]
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    """The shipped policy, plus alex and maria each declared on several platforms."""
    path = tmp_path / "policy.toml"
    path.write_text((REPO / "config" / "policy.toml").read_text() + PEOPLE)
    return load_policy(path)


def on_slack(user: str, role: Role) -> Actor:
    return Actor(platform="slack", id=user, name=user, roles=frozenset({role}))


async def pending_refund(services: Services, requester: Actor) -> str:
    reply = await say(services, requester, "refund ch_jane_1 80 reason: duplicate charged twice")
    assert reply.approval.state == "pending"
    return reply.approval.id


@pytest.mark.parametrize(
    "variant",
    ["ALEX", "Alex", " alex ", "ａｌｅｘ", "al\u200bex", "alex\u00ad", "ALEX\u200d", "alex\u2060"],
)
async def test_a_spelling_of_the_requesters_name_cannot_approve_in_the_shell(
    services: Services, variant: str
) -> None:
    out = io.StringIO()
    shell = Shell(services, parse_identity("agent:alex"), json_lines=True, out=out)
    approval_id = await pending_refund(services, shell.actor)
    shell.actor = parse_identity(f"manager:{variant}")  # what `/as manager:ALEX` does
    refused = await shell.handle(f"approve {approval_id}")
    assert refused.error is not None and refused.error.code == "own_request"
    shell.actor = parse_identity("manager:maria")
    assert (await shell.handle(f"approve {approval_id}")).approval.state == "succeeded"


async def test_the_as_command_with_an_uppercase_name_cannot_approve(services: Services) -> None:
    shell = Shell(services, parse_identity("agent:alex"), json_lines=True, out=io.StringIO())
    approval_id = await pending_refund(services, shell.actor)
    await shell.handle("/as manager:ALEX")
    refused = await shell.handle(f"approve {approval_id}")
    assert refused.error is not None and refused.error.code == "own_request"
    denied = await shell.handle(f"deny {approval_id} reason: not my own")
    assert denied.error is not None and denied.error.code == "own_request"


async def test_a_person_cannot_approve_on_slack_what_they_requested_in_the_shell(
    services: Services,
) -> None:
    approval_id = await pending_refund(services, parse_identity("agent:alex"))
    refused = await say(services, on_slack("U0ALEX", Role.manager), f"approve {approval_id}")
    assert refused.error is not None and refused.error.code == "own_request"
    # Someone else on Slack may.
    approved = await say(services, on_slack("U0MARIA", Role.manager), f"approve {approval_id}")
    assert approved.approval.state == "succeeded"


async def test_a_person_cannot_approve_in_the_shell_what_they_requested_on_discord(
    services: Services,
) -> None:
    requester = Actor(platform="discord", id="4242", name="alex", roles=frozenset({Role.agent}))
    approval_id = await pending_refund(services, requester)
    refused = await say(services, parse_identity("manager:Alex"), f"approve {approval_id}")
    assert refused.error is not None and refused.error.code == "own_request"


async def test_one_person_on_two_platforms_is_one_approver_of_n(services: Services) -> None:
    services.policy.refund.approvals = 2
    approval_id = await pending_refund(services, parse_identity("agent:alex"))
    first = await say(services, parse_identity("manager:maria"), f"approve {approval_id}")
    assert first.approval.state == "pending"
    again = await say(services, on_slack("U0MARIA", Role.manager), f"approve {approval_id}")
    assert again.error is not None and again.error.code == "already_voted"
    second = await say(services, on_slack("U0MARK", Role.manager), f"approve {approval_id}")
    assert second.approval.state == "succeeded"


def test_an_identity_declared_for_two_people_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[people]\n"a@example.com" = ["slack:U1"]\n"b@example.com" = ["Slack:u1"]\n')
    with pytest.raises(ConfigError, match=r"declared for both a@example\.com and b@example\.com"):
        load_policy(path)


def test_an_identity_without_its_platform_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[people]\n"a@example.com" = ["U0123ABC"]\n')
    with pytest.raises(ConfigError, match="is not PLATFORM:ID"):
        load_policy(path)


async def test_one_person_on_two_platforms_spends_one_daily_budget(services: Services) -> None:
    # Agents refund up to 50.00 EUR alone and 200.00 EUR a day (config/policy.toml).
    shell, slack = parse_identity("agent:alex"), on_slack("U0ALEX", Role.agent)
    spent = [
        (shell, "refund ch_jane_1 50 reason: goodwill sorry"),
        (shell, "refund ch_jane_1 45 reason: goodwill sorry"),
        (shell, "refund ch_jane_2 20 reason: goodwill sorry"),
        (slack, "refund ch_kowalski_1 45 reason: goodwill sorry"),  # 160.00 of 200.00
    ]
    for actor, line in spent:
        assert (await say(services, actor, line)).approval.state == "succeeded", line
    over = await say(services, slack, "refund ch_kowalski_1 41 reason: goodwill sorry")
    assert over.approval.state == "pending"  # 201.00: the budget is alex's, not his Slack ID's
    assert "daily budget" in over.model_dump_json()
