"""The Block Kit renderer keeps every card within Slack's limits, whatever the data."""

from __future__ import annotations

import json

import pytest

from bot.cards.model import Button, Card, ErrorInfo, Fact, Reply, Section, Table
from bot.chat.slack.render import (
    card_blocks,
    escape,
    form_values,
    form_view,
    reply_messages,
)
from bot.commands.forms import Choice, Form, FormField
from chargedesk_emulators.slack import block_kit_problems, view_problems


def elements(blocks: list[dict]) -> list[dict]:
    found = [b["accessory"] for b in blocks if "accessory" in b]
    for block in blocks:
        if block["type"] == "actions":
            found += block["elements"]
    return found


def huge_card() -> Card:
    rows = [
        [f"ch_{i:05d}", "2026-01-01", "€19.99", "", "succeeded", "x" * 400 + "<&>"]
        for i in range(5000)
    ]
    return Card(
        title="T" * 500,
        subtitle="s" * 5000,
        sections=[
            Section(facts=[Fact(label=f"l{i}", value="v" * 3000) for i in range(25)]),
            Section(title="Notes", text="n" * 10_000),
            Section(title="Charges (5000)", table=Table(columns=["Charge", "Date"], rows=rows)),
        ],
        actions=[Button(label="Refund " + "r" * 100, command=f"refund ledger:ch_{i:05d} reason: ", style="danger")
                 for i in range(40)] + [Button(label="Run", command="lookup " + "q" * 2100)],
    )  # fmt: skip


def test_a_huge_card_fits_every_block_kit_limit():
    blocks = card_blocks(huge_card(), pager=lambda c, s, shown: json.dumps([c, s, shown]))
    assert block_kit_problems(blocks) == []
    assert len(blocks) <= 50
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        assert len(block.get("text", {}).get("text", "")) <= 3000
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
        if block["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
    buttons = elements(blocks)
    assert all(len(b["text"]["text"]) <= 75 and len(b["value"]) <= 2000 for b in buttons)
    assert len({b["action_id"] for b in buttons}) == len(buttons)
    # A command too long for a button value is left out rather than cut into another command.
    assert not any(b["value"].startswith("lookup") for b in buttons)


def test_long_lists_are_paged_with_a_more_button():
    blocks = card_blocks(huge_card(), max_rows=25, pager=lambda c, s, shown: f"{c}/{s}/{shown}")
    more = [b for b in elements(blocks) if b["action_id"].startswith("chargedesk.more.")]
    assert [b["value"] for b in more] == ["0/2/25"]
    assert "… and 4,975 more" in json.dumps(blocks, ensure_ascii=False)


def test_a_card_too_long_for_one_message_is_cut_and_says_so():
    card = Card(title="t", sections=[Section(title=f"part {n}", text="x") for n in range(80)])
    blocks = card_blocks(card)
    assert len(blocks) == 50 and block_kit_problems(blocks) == []
    assert "32 more parts of this card did not fit in Slack" in blocks[-1]["elements"][0]["text"]


def test_a_table_pages_when_it_fits():
    card = Card(
        title="Jane",
        sections=[
            Section(
                title="Charges (1000)",
                table=Table(columns=["Charge"], rows=[[f"ch_{i}"] for i in range(10)], more=990),
            )
        ],
    )
    blocks = card_blocks(card, pager=lambda c, s, shown: f"{c}/{s}/{shown}")
    more = [b for b in elements(blocks) if b["action_id"].startswith("chargedesk.more.")]
    assert [b["value"] for b in more] == ["0/0/10"] and more[0]["text"][
        "text"
    ] == "Show more Charges"
    assert "… and 990 more" in json.dumps(blocks, ensure_ascii=False)
    assert not any("chargedesk.more" in json.dumps(b) for b in card_blocks(card))  # no pager


def test_many_cards_split_into_messages_of_at_most_50_blocks():
    cards = [
        Card(title=f"Alert {n}", sections=[Section(text=f"s{i}") for i in range(12)])
        for n in range(10)
    ]
    messages = reply_messages(Reply(cards=cards))
    assert len(messages) > 1
    assert all(len(m.blocks) <= 50 and block_kit_problems(m.blocks) == [] for m in messages)
    shown = json.dumps([m.blocks for m in messages])
    assert all(f"Alert {n}" in shown for n in range(10))


def test_errors_and_data_are_escaped_never_markup():
    reply = Reply(
        error=ErrorInfo(code="x", message="<!channel> & <@U1>"),
        cards=[Card(title="t", sections=[Section(text="*bold* <https://evil|click>")])],
    )
    blocks = reply_messages(reply)[0].blocks
    assert blocks[0]["text"]["text"] == ":x: &lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape("<https://evil|click>") in json.dumps(blocks, ensure_ascii=False)


def test_dashboard_links_where_the_gateway_has_them():
    card = Card(
        title="Jane",
        sections=[
            Section(facts=[Fact(label="Customer", value="stripe:cus_1, ledger:cus_2")]),
            Section(table=Table(columns=["Charge"], rows=[["ch_1"], ["ch_2"]])),
        ],
        actions=[Button(label="Refund ch_1", command="refund stripe:ch_1 reason: ")],
    )

    def link(gateway: str, object_id: str) -> str | None:
        return f"https://dash.example/{object_id}" if gateway == "stripe" else None

    shown = json.dumps(card_blocks(card, link=link))
    assert "<https://dash.example/cus_1|stripe:cus_1>, ledger:cus_2" in shown
    assert "<https://dash.example/ch_1|ch_1>" in shown and "`ch_2`" in shown


def refund_form() -> Form:
    return Form(
        command="refund",
        title="Refund ch_3MmlLrLkdIwHu7ix0snN0B15",
        submit_label="Request refund",
        given={"charge": "stripe:ch_3MmlLrLkdIwHu7ix0snN0B15"},
        fields=[
            FormField(name="amount", label="Amount (EUR)", default="30.00 EUR", hint="Up to €30.00"),
            FormField(name="reason_code", label="Reason code", kind="select", default="goodwill",
                      choices=[Choice(value=v, label=v) for v in ("duplicate", "goodwill")]),
            FormField(name="reason_text", label="Reason", kind="textarea"),
        ],
    )  # fmt: skip


def test_forms_become_modals_within_their_limits():
    view = form_view(refund_form(), metadata="{}")
    assert view_problems(view) == []
    assert view["title"]["text"] == "Refund ch_3MmlLrLkdIwHu…"  # 24 characters
    assert "ch_3MmlLrLkdIwHu7ix0snN0B15" in view["blocks"][0]["text"]["text"]  # said in full
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert inputs["amount"]["element"]["initial_value"] == "30.00 EUR"
    assert inputs["reason_code"]["element"]["initial_option"]["value"] == "goodwill"
    assert inputs["reason_text"]["element"]["multiline"] is True
    with pytest.raises(ValueError, match="private_metadata"):
        form_view(refund_form(), metadata="x" * 3001)


def test_submitted_values_by_field_name():
    state = {
        "amount": {"amount": {"type": "plain_text_input", "value": "12"}},
        "reason_code": {"reason_code": {"type": "static_select", "selected_option": {"value": "goodwill"}}},
        "reason_text": {"reason_text": {"type": "plain_text_input", "value": None}},
    }  # fmt: skip
    assert form_values(state) == {"amount": "12", "reason_code": "goodwill", "reason_text": None}
