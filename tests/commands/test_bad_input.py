"""Bad input gets one clear line, and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.store.tables import ApprovalRow, AuditEntry, LedgerRefund
from tests.conftest import say


async def counts(services) -> tuple[int, int, int]:
    async with services.db.read() as s:
        return tuple(
            [
                await s.scalar(select(func.count()).select_from(t))
                for t in (ApprovalRow, AuditEntry, LedgerRefund)
            ]
        )  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        ("refund ch_nope 10 reason: duplicate x", "not_found", "no charge ch_nope in any gateway"),
        ("refund ch_jane_1 -5 reason: duplicate x", "invalid_amount", "negative"),
        ("refund ch_jane_1 0 reason: duplicate x", "invalid_amount", "greater than zero"),
        ("refund ch_jane_1 99999999999999 reason: duplicate x", "invalid_amount", "too large"),
        ("refund ch_jane_1 12.3.4 reason: duplicate x", "invalid_amount", "malformed"),
        ("refund ch_jane_1 ten reason: duplicate x", "invalid_amount", "malformed"),
        ("refund ch_jane_1 10 USD reason: duplicate x", "invalid_amount", "currency mismatch"),
        ("refund ch_jane_1 10", "invalid_arguments", "reason is required"),
        ("refund ch_jane_1 10 reason:", "invalid_arguments", "reason"),
        ("refund ch_jane_1 121 reason: duplicate x", "amount_too_large", "only €120.00"),
        ("refund ch_yuki_1 500.5 reason: duplicate x", "invalid_amount", "JPY has no minor unit"),
        ("refund ch_jane_disputed reason: duplicate x", "charge_disputed", "disputed"),
        ("refund ch_jane_auth reason: duplicate x", "not_settled", "void it"),
        ("refund 'drop; reason: duplicate x", "invalid_arguments", '"\'drop;" is malformed'),
        (
            "refund ch_jane_1 1 2 reason: duplicate x",
            "invalid_arguments",
            "method '2': type manual",
        ),
        ("refund ch_jane_1 1 manual 2 reason: duplicate x", "usage", "too many arguments"),
        ("frobnicate", "unknown_command", "unknown command 'frobnicate'"),
        ("", "unknown_command", "help"),
        (
            "cancel sub_nope reason: requested_by_customer x",
            "not_found",
            "no subscription sub_nope",
        ),
        (
            "cancel sub_jane_pro tomorrow reason: requested_by_customer x",
            "invalid_arguments",
            "when",
        ),
        ("capture ch_jane_1 reason: ship", "invalid_state", "only authorized charges"),
        ("capture ch_jane_auth 9999 reason: ship", "amount_too_large", "authorized"),
        ("approve apr_000000000000", "forbidden", "manager"),
        ("lookup nobody@example.com", "not_found", "no customer matches"),
        ("lookup", "invalid_arguments", "query is required"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_line_and_changes_nothing(
    services, agent, line, code, words
):
    before = await counts(services)
    reply = await say(services, agent, line)
    assert reply.error is not None, reply
    assert reply.error.code == code, reply.error
    assert words in reply.error.message
    assert "\n" not in reply.error.message and "Traceback" not in reply.error.message
    assert await counts(services) == before


async def test_unknown_approval_id(services, manager):
    reply = await say(services, manager, "approve apr_0123456789ab")
    assert (reply.error.code, reply.error.message) == (
        "not_found",
        "no approval request apr_0123456789ab",
    )
    malformed = await say(services, manager, "approve 42")
    assert malformed.error.code == "invalid_arguments"


async def test_customer_may_not_run_agent_commands(services, customer):
    reply = await say(services, customer, "lookup jane.doe@example.com")
    assert reply.error.code == "forbidden"
    assert not reply.cards


async def test_help_lists_only_what_you_may_run_from_docstrings(services, agent, manager):
    agent_help = await say(services, agent, "help")
    commands = [row[0].split()[0] for row in agent_help.cards[0].sections[0].table.rows]
    assert "refund" in commands and "approve" not in commands and "audit" not in commands
    manager_help = await say(services, manager, "help")
    assert "approve" in [row[0].split()[0] for row in manager_help.cards[0].sections[0].table.rows]
    detail = await say(services, agent, "help refund")
    assert "remains refundable" in detail.cards[0].sections[0].text
