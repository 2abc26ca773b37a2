"""Hostile input gets one short line saying what is wrong, never a traceback, and stores nothing.

The audit fed every argument of every command with values chosen to break a
parser: numbers too large for a date, digits from other scripts, control
characters, unpaired surrogates, walls of text. Each must come back as a
refusal the person typing can read, on one line, with their input quoted short.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.actors import Actor, Role
from bot.commands import COMMANDS, Context, dispatch, run
from bot.commands.lookup import LOOKUP_PAGE
from bot.money import MoneyError, parse_money
from bot.store.tables import (
    ApprovalRow,
    AuditEntry,
    EmailRow,
    LedgerRefund,
    Notification,
    VerificationCode,
)
from tests.conftest import CHANNEL, say

pytestmark = pytest.mark.storage

WALL = "9" * 10_000
HOSTILE = [
    "99999999d",
    "9999999999999999999999d",
    "99999999999999s",
    "١٢",
    "１２",
    "²",
    "a\x00b",
    "a\rb",
    "\x1b[2J",
    "a\ud800b",
    "a\u202eb",
    "1e309",
    "nan",
    "0x1F",
    "-0",
    "%s%n{0}",
    "<!channel>",
    WALL,
    "x" * 10_000,
]
# Everyone at once, so that every command gets past its role check to its arguments.
EVERYONE = Actor(platform="test", id="eve", name="Eve", roles=frozenset(Role))


async def counts(services) -> tuple[int, ...]:
    async with services.db.read() as s:
        return tuple(
            [
                await s.scalar(select(func.count()).select_from(t))
                for t in (
                    ApprovalRow,
                    AuditEntry,
                    LedgerRefund,
                    Notification,
                    EmailRow,
                    VerificationCode,
                )
            ]
        )


def assert_one_short_line(reply, *, typed: str = "") -> None:
    assert reply.error is not None, reply
    message = reply.error.message
    assert reply.error.code != "internal", message
    assert "\n" not in message and "\r" not in message and "Traceback" not in message
    assert len(message) <= 300, message
    assert "\x00" not in message and "\x1b" not in message and "\ud800" not in message
    if len(typed) > 100:
        assert typed[:100] not in message


@pytest.mark.parametrize(
    "line",
    [
        "audit 99999999d",
        "audit 9999999999999999999999d",
        "audit 99999999999999s",
        "audit maria 99999999d",
        "audit 99999999h",
    ],
)
async def test_a_time_too_far_back_is_one_line_not_a_crash(services, manager, line):
    reply = await say(services, manager, line)
    assert_one_short_line(reply)
    assert reply.error.code == "invalid_arguments"
    assert "too far back" in reply.error.message


async def test_a_reasonable_audit_still_answers(services, manager):
    for line in ("audit 7d", "audit maria 24h", "audit 2026-11-01", "audit józef"):
        reply = await say(services, manager, line)
        assert reply.error is None, (line, reply.error)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
async def test_every_typed_argument_of_every_command_refuses_hostile_text_on_one_line(
    services, value
):
    before = await counts(services)
    ctx = Context(services, EVERYONE, CHANNEL)
    for name, spec in COMMANDS.items():
        lines = [f"{name} {value}"] if spec.positional else []
        lines += (
            [f"{name} ch_jane_1 {value} reason: duplicate x"] if len(spec.positional) > 1 else []
        )
        if "reason" in spec.args.model_fields:
            lines.append(f"{name} ch_nope reason: duplicate {value}")
        for line in lines:
            reply = await dispatch(ctx, line)
            if reply.error is not None:
                assert_one_short_line(reply, typed=value)
    assert await counts(services) == before


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
async def test_every_field_filled_by_a_form_refuses_hostile_text_on_one_line(services, value):
    # Slack modals and Discord options fill the argument models directly, field by field.
    before = await counts(services)
    ctx = Context(services, EVERYONE, CHANNEL)
    for spec in [*COMMANDS.values(), LOOKUP_PAGE]:
        for field in spec.args.model_fields:
            reply = await run(ctx, spec, {field: value})
            if reply.error is not None:  # some are fine text there: a question, a name
                assert_one_short_line(reply, typed=value)
    assert await counts(services) == before


@pytest.mark.parametrize(
    ("line", "typed"),
    [
        ("refund ch_jane_1 ١٢ reason: duplicate x", "'12'"),
        ("refund ch_jane_1 １２ reason: duplicate x", "'12'"),
        ("refund ch_jane_1 ١٢٫٥٠ EUR reason: duplicate x", "'12.50 EUR'"),
        ("capture ch_jane_auth €１０ reason: ship", "'€10'"),
    ],
)
async def test_amounts_in_other_digits_are_refused_naming_how_to_type_them(
    services, agent, line, typed
):
    before = await counts(services)
    reply = await say(services, agent, line)
    assert_one_short_line(reply)
    assert reply.error.code == "invalid_amount"
    if typed:
        assert "other digits than 0-9" in reply.error.message and typed in reply.error.message
    assert await counts(services) == before


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("alerts ١٢", "type it as '12'"),
        ("alerts １０", "type it as '10'"),
        ("audit ١٢d", "type it as '12d'"),
        ("audit maria ７d", "type it as '7d'"),
        ("audit ٢٠٢٦-١١-٠١", "type it as '2026-11-01'"),
    ],
)
async def test_counts_and_durations_in_other_digits_are_refused(services, manager, line, words):
    reply = await say(services, manager, line)
    assert_one_short_line(reply)
    assert reply.error.code == "invalid_arguments" and words in reply.error.message


def test_parse_money_refuses_other_digits_and_walls_of_text():
    for text in ("١٢", "１２.５０", "12.5０", "€１２", "¹²"):
        with pytest.raises(MoneyError, match="other digits than 0-9"):
            parse_money(text, "EUR")
    with pytest.raises(MoneyError) as wall:
        parse_money(WALL, "EUR")
    assert len(str(wall.value)) < 120 and "…" in str(wall.value)
    assert parse_money("12.50", "EUR").minor == 1250  # plain digits are what they always were


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\r", "\u202e"])
async def test_a_control_character_in_a_reason_is_refused_and_nothing_is_stored(
    services, agent, control
):
    before = await counts(services)
    typed = await say(services, agent, f"refund ch_jane_1 10 reason: duplicate char{control}ged")
    assert_one_short_line(typed)
    assert typed.error.code == "invalid_arguments"
    assert f"reason contains the character U+{ord(control):04X}" in typed.error.message
    spec = COMMANDS["refund"]
    ctx = Context(services, agent, CHANNEL)
    formed = await run(ctx, spec, {"charge": "ch_jane_1", "reason": f"duplicate {control}"})
    assert formed.error is not None and formed.error.code == "invalid_arguments"
    assert await counts(services) == before


async def test_nul_in_any_free_text_is_refused_before_it_reaches_sql(services, customer):
    before = await counts(services)
    ctx = Context(services, EVERYONE, CHANNEL)
    for spec, raw in [
        (COMMANDS["ask"], {"question": "why\x00 twice?"}),
        (COMMANDS["lookup"], {"query": "jane\x00@example.com"}),
        (COMMANDS["verify"], {"email": "jane.doe@example.com\x00"}),
        (COMMANDS["deny"], {"id": "apr_0123456789ab", "reason": "no\x00pe"}),
        (COMMANDS["audit"], {"who": "maria\x00"}),
        (COMMANDS["links"], {"who": "slack:U\x00"}),
    ]:
        reply = await run(ctx, spec, raw)
        assert reply.error is not None and "U+0000" in reply.error.message, (spec.name, reply)
        assert_one_short_line(reply)
    assert await counts(services) == before


async def test_a_multi_line_reason_from_a_modal_is_still_text(services, agent):
    spec = COMMANDS["refund"]
    reply = await run(
        Context(services, agent, CHANNEL),
        spec,
        {"charge": "ch_jane_1", "amount": "10", "reason": "duplicate\ncharged\ttwice"},
    )
    assert reply.error is None, reply.error


@pytest.mark.parametrize(
    "line",
    [
        f"frobnicate{'x' * 10_000}",
        f"refund ch_{'x' * 10_000}! reason: duplicate x",
        f"help {'x' * 10_000}",
        f"approvals {'x' * 10_000}",
        f"me pdf{'x' * 10_000}",
        f"links {'x' * 10_000}@",
        f"receipt ch_jane_1 {'x' * 10_000}",
        f"invoice {'x' * 10_000} in_1",
        f"audit {'x' * 10_000}",
    ],
)
async def test_a_10kb_input_is_echoed_cut_short(services, manager, line):
    reply = await say(services, manager, line)
    assert_one_short_line(reply, typed="x" * 10_000)
