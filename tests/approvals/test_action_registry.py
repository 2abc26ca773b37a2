"""Every action is described once (bot/approvals/actions.py) and known everywhere it must be."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.approvals.actions import ACTIONS
from bot.approvals.policy import Policy
from bot.approvals.workflow import ActionRequest
from bot.commands import COMMANDS


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_has_a_command_and_a_policy_table(name: str) -> None:
    assert name in COMMANDS, f"no command asks for {name}"
    assert ACTIONS[name].target in COMMANDS[name].args.model_fields
    Policy().for_action(name)  # a table of its own in policy.toml, safe by default


def test_a_request_for_an_action_nobody_described_is_refused() -> None:
    with pytest.raises(ValidationError, match="no action is called 'transfer'"):
        ActionRequest(action="transfer", gateway="ledger", target_id="ch_1", reason="x")
