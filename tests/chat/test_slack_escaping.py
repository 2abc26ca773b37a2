"""Nothing from data forms a Slack mention or link: in `text`, blocks, modals and threads.

Slack reads `&`, `<` and `>` as control characters in every text object and in
a message's top-level `text` (what notifications and screen readers use). A
customer named `<!channel>` or a reason holding `<https://evil|Verify your card>`
must reach Slack as `&lt;!channel&gt;`, shown as typed and pinging nobody.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import update

from bot.cards.model import Button, Card, Fact, Reply, Section, Table
from bot.chat.slack.render import (
    card_blocks,
    clip,
    error_message,
    form_view,
    notice_view,
    reply_messages,
)
from bot.commands.forms import Choice, Form, FormField
from bot.store.tables import LedgerCustomer
from tests.chat.test_slack import (  # noqa: F401  (fixtures)
    AGENT,
    APPROVALS,
    INTERNAL,
    MANAGER,
    api,
    button,
    slack,
)

NAME = "Jane <!channel> & <@U0EVIL1> <!subteam^S0EVIL1|@billing> <!here>"
REASON = "duplicate <https://evil.example/pay|Verify your card> <#C0EVIL1>"
E_NAME = (
    "Jane &lt;!channel&gt; &amp; &lt;@U0EVIL1&gt; &lt;!subteam^S0EVIL1|@billing&gt; &lt;!here&gt;"
)
E_REASON = "duplicate &lt;https://evil.example/pay|Verify your card&gt; &lt;#C0EVIL1&gt;"
# What Slack would turn into a ping or a link, if it reached it unescaped.
CONTROLS = ("<!channel>", "<!here>", "<@U0EVIL1>", "<!subteam^", "<https://evil", "<#C0EVIL1>")


def strings(node: Any) -> list[str]:
    """Every string anywhere in a payload: text, blocks, labels, options, hints."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def assert_inert(payload: Any) -> None:
    for text in strings(payload):
        for control in CONTROLS:
            assert control not in text, (control, text)


def hostile_card() -> Card:
    return Card(
        title=NAME,
        subtitle=REASON,
        sections=[
            Section(
                title=NAME,
                text=REASON,
                facts=[Fact(label=NAME, value=REASON)],
                table=Table(columns=[NAME, "Why"], rows=[[NAME, REASON]]),
            )
        ],
        actions=[Button(label=NAME, command="lookup jane.doe@example.com")],
        footer=REASON,
    )


def test_every_text_of_a_card_message_is_escaped_exactly():
    (message,) = reply_messages(Reply(cards=[hostile_card()]))
    assert message.text == f"{E_NAME}: {E_REASON}"  # the notification and screen-reader text
    blocks = message.blocks
    assert blocks[0]["text"] == {"type": "plain_text", "text": E_NAME, "emoji": True}
    assert blocks[1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": E_REASON, "verbatim": True}],
    }
    assert blocks[2]["text"]["text"] == f"*{E_NAME}*\n{E_REASON}"
    assert blocks[3]["fields"][0]["text"] == f"*{E_NAME}*\n{E_REASON}"
    assert blocks[4]["elements"][0]["text"] == f"{E_NAME} · Why"
    assert blocks[5]["text"]["text"] == f"`{E_NAME}` · {E_REASON}"
    assert blocks[6]["elements"][0]["text"]["text"] == clip(E_NAME, 75)  # the button's label
    assert blocks[7]["elements"][0]["text"] == E_REASON
    assert_inert(message.blocks)


def test_errors_are_escaped_in_text_and_blocks():
    for message in (reply_messages(Reply.fail("refused", REASON))[0], error_message(REASON)):
        assert message.text == E_REASON
        assert message.blocks[0]["text"]["text"] == f":x: {E_REASON}"


def test_modal_titles_labels_options_and_hints_are_escaped():
    form = Form(
        command="deny",
        title="<!channel>",
        submit_label="<!here>",
        fields=[
            FormField(
                name="reason_code",
                label=NAME,
                kind="select",
                hint=REASON,
                choices=[Choice(value="duplicate", label="<@U0EVIL1>")],
                default="duplicate",
            ),
            FormField(name="reason", label="Why", kind="textarea", default=REASON),
        ],
    )
    view = form_view(form, metadata="{}")
    assert view["title"]["text"] == "&lt;!channel&gt;"
    assert view["submit"]["text"] == "&lt;!here&gt;"
    select, text = view["blocks"]
    assert select["label"]["text"] == E_NAME and select["hint"]["text"] == E_REASON
    assert select["element"]["options"][0]["text"]["text"] == "&lt;@U0EVIL1&gt;"
    # What the person edits is their own text, as typed: an input's value is not a text object.
    assert text["element"]["initial_value"] == REASON
    notice = notice_view(NAME, REASON)
    assert notice["blocks"][0]["text"]["text"] == E_REASON
    assert_inert(notice)


def test_a_dashboard_link_is_dropped_when_an_object_id_could_end_it_early():
    evil = "ch_1>|<!channel"
    card = Card(
        title="Charges",
        sections=[Section(table=Table(columns=["ID"], rows=[[evil, "€1.00"]]))],
        actions=[Button(label="Refund", command=f"refund ledger:{evil} reason: ")],
    )
    blocks = card_blocks(card, link=lambda gateway, oid: f"https://dash.example/{oid}")
    row = next(b for b in blocks if b.get("accessory"))
    assert row["text"]["text"] == "`ch_1&gt;|&lt;!channel` · €1.00"
    assert_inert(blocks)
    fine = card_blocks(
        card.model_copy(
            update={
                "sections": [Section(table=Table(columns=["ID"], rows=[["ch_1", "€1.00"]]))],
                "actions": [Button(label="Refund", command="refund ledger:ch_1 reason: ")],
            }
        ),
        link=lambda gateway, oid: f"https://dash.example/{oid}?a=1&b=2",
    )
    row = next(b for b in fine if b.get("accessory"))
    assert row["text"]["text"] == "<https://dash.example/ch_1?a=1&amp;b=2|ch_1> · €1.00"


@pytest.mark.storage
async def test_hostile_names_and_reasons_reach_slack_inert(slack, api, services):  # noqa: F811
    # A customer, an agent and a manager with hostile names; a reason with a disguised link.
    api.user(AGENT, "Alex <!channel>")
    api.user(MANAGER, "Maria <!here> <@U0EVIL1>")
    async with services.db.write() as s:
        await s.execute(
            update(LedgerCustomer).where(LedgerCustomer.id == "cus_jane").values(name=NAME)
        )
    await slack.command(AGENT, "lookup jane.doe@example.com")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    assert card.params["text"].startswith(E_NAME)
    assert_inert(card.params)

    await slack.command(AGENT, f"refund ch_jane_1 80 reason: {REASON}")
    thread = (
        await slack.api.wait_for(
            "chat.postMessage",
            match=lambda c: c.params["channel"] == INTERNAL and "thread_ts" in c.params,
        )
    )[0]
    await slack.settle()
    await slack.click(MANAGER, thread, button(thread, "approve "))
    await slack.api.wait_for("chat.update", 2)
    told = (
        await slack.api.wait_for(
            "chat.postMessage",
            match=lambda c: "decided by" in c.params.get("text", ""),
        )
    )[0]
    await slack.settle()
    assert told.params["text"].startswith(f"<@{AGENT}> Refund of €80.00 on ch_jane_1: done")
    assert told.params["text"].endswith("(decided by Maria &lt;!here&gt; &lt;@U0EVIL1&gt;)")
    everything = [c.params for c in slack.api.calls if c.method.startswith(("chat.", "views."))]
    assert any(p.get("channel") == APPROVALS for p in everything)
    assert any(E_REASON in json.dumps(p, ensure_ascii=False) for p in everything)
    for params in everything:
        assert_inert({k: v for k, v in params.items() if k in ("text", "blocks", "view")})
