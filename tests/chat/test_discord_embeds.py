"""Neutral cards as Discord embeds: custom_ids round-trip, and every limit holds for oversized cards."""

from __future__ import annotations

from bot.cards.model import Button, Card, Fact, Reply, Section, Table
from bot.chat.discord.render import (
    command_of,
    custom_id,
    form_given,
    form_id,
    reply_message,
    size,
)
from bot.commands.forms import Form, FormField


def test_button_commands_round_trip_through_custom_ids():
    made = custom_id("cancel ledger:sub_jane_pro period-end reason: ")
    assert made == "cd:cancel:ledger:sub_jane_pro period-end"
    assert command_of(made) == "cancel ledger:sub_jane_pro period-end"
    assert command_of(custom_id("approve apr_0a1b2c3d4e5f") or "") == "approve apr_0a1b2c3d4e5f"
    assert custom_id("refund ledger:" + "c" * 120 + " reason: ") is None  # never cut
    assert command_of("other:refund:x") is None


def test_form_ids_carry_what_the_form_fixes():
    form = Form(command="refund", title="Refund ch_1", submit_label="Request", given={"charge": "ledger:ch_1"},
                fields=[FormField(name="amount", label="Amount")])  # fmt: skip
    assert form_given(form_id(form) or "") == ("refund", {"charge": "ledger:ch_1"})


def test_an_oversized_card_stays_within_discords_limits():
    card = Card(
        title="T" * 400,
        subtitle="S" * 5000,
        sections=[Section(facts=[Fact(label="L" * 300, value="V" * 2000) for _ in range(40)])]
        + [
            Section(title=f"List {n}", table=Table(columns=["a"], rows=[["r" * 200]] * 50, more=9))
            for n in range(5)
        ],
        actions=[
            Button(label="B" * 100, command=f"refund ledger:ch_{n} reason: ") for n in range(40)
        ],
    )
    message = reply_message(Reply(cards=[card] * 12))
    assert 1 <= len(message.embeds) <= 10
    assert sum(size(e) for e in message.embeds) <= 6000
    for embed in message.embeds:
        assert len(embed["title"]) <= 256 and len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        assert all(
            len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed.get("fields", [])
        )
    assert len(message.rows) <= 5 and all(len(row) <= 5 for row in message.rows)
    ids = [b.custom_id for row in message.rows for b in row]
    assert len(ids) == len(set(ids)) and all(len(i) <= 100 for i in ids)
    assert all(len(b.label) <= 80 for row in message.rows for b in row)
    assert "did not fit" in message.embeds[-1]["fields"][-1]["value"]
