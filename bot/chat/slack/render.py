"""Cards as Slack Block Kit messages, and forms as Slack modals, within Block Kit's limits.

Pure functions: a neutral Card, Reply or Form in, JSON-ready dicts out. Nothing
here calls Slack or knows billing; the adapter (adapter.py) supplies the
dashboard links and the value carried by a "more" button.

Slack refuses a whole message (`invalid_blocks`) when one limit is broken, so
every text is clipped, every list chunked, and a card that still does not fit
is cut with a note: a customer with thousands of charges still gets a card.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.cards.model import Button, Card, Reply, Section
from bot.commands.forms import Form, FormField

# Block Kit's limits (docs.slack.dev/reference/block-kit).
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
TEXT_CHARS = 3000
FIELDS = 10
FIELD_CHARS = 2000
HEADER_CHARS = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
MODAL_TITLE = 24
PRIVATE_METADATA = 3000
SELECT_OPTIONS = 100
OPTION_TEXT = 75
OPTION_VALUE = 150
LABEL_CHARS = 2000

ACTION_PREFIX = "chargedesk"
MORE = "more"
# A link button opens its page in the browser; Slack still reports the click, which is ignored.
LINK = "link"
FORM_CALLBACK = "chargedesk.form"
DEFAULT_ROWS = 25
# A cell longer than this is data nobody reads in chat (a 500-character description).
CELL_CHARS = 120

_TONE = {"danger": ":red_circle: ", "warning": ":warning: ", "success": ":white_check_mark: "}
_VERB = re.compile(r"[^a-z0-9_-]")
_URL = re.compile(r"https?://[^\s<>|]+")
_GATEWAY_REF = re.compile(r"\b([a-z][a-z0-9_-]{0,39}):([A-Za-z0-9][A-Za-z0-9_.\-]{1,99})\b")

# (gateway, object ID) -> the object's page in the gateway's dashboard, if it has one.
Link = Callable[[str, str], str | None]
# (card index, section index, rows shown so far) -> the value of a "more" button, or None.
Pager = Callable[[int, int, int], str | None]


@dataclass(frozen=True)
class SlackMessage:
    """One Slack message: `text` is the notification and screen-reader fallback.

    Both are mrkdwn as they stand: whatever came from data in them is escaped already.
    """

    text: str
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Slack's three control characters; anything else in data is shown as typed.

    With `<` and `>` escaped nothing from data can form a mention (`<!channel>`,
    `<@U123>`, `<!subteam^S1>`) or a link with a misleading label (`<https://x|y>`).
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut (never a broken `&amp;`)."""
    if len(text) <= limit:
        return text
    return re.sub(r"&[a-z]{0,3}$", "", text[: limit - 1]) + "…"


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object: Slack decodes the same three entities there, so data is escaped too."""
    return {"type": "plain_text", "text": clip(escape(text), limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = TEXT_CHARS) -> dict[str, Any]:
    # verbatim: data such as `#general` or a URL in a description is not turned into a link.
    return {"type": "mrkdwn", "text": clip(text, limit), "verbatim": True}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(text)]}


def error_message(message: str) -> SlackMessage:
    return SlackMessage(
        text=clip(escape(message), TEXT_CHARS), blocks=[section(f":x: {escape(message)}")]
    )


class _Blocks:
    """Builds the blocks of one message; action IDs stay unique across its cards."""

    def __init__(self, link: Link | None, pager: Pager | None, max_rows: int) -> None:
        self.link = link
        self.pager = pager
        self.max_rows = max_rows
        self.actions = 0

    def card(self, card: Card, index: int) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": plain(_TONE.get(card.tone, "") + card.title, HEADER_CHARS)}
        ]
        if card.subtitle:
            blocks.append(context(escape(card.subtitle)))
        targets = _targets(card.actions)
        placed: set[int] = set()
        for number, part in enumerate(card.sections):
            blocks += self.section(part, targets, placed, index, number)
        rest = [b for n, b in enumerate(card.actions) if n not in placed]
        blocks += self.action_blocks(rest)
        if card.footer:
            blocks.append(context(escape(card.footer)))
        return _fit(blocks, MESSAGE_BLOCKS)

    def section(
        self,
        part: Section,
        targets: dict[str, list[tuple[int, str | None, Button]]],
        placed: set[int],
        card_index: int,
        index: int,
    ) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        head = []
        if part.title:
            head.append(f"*{_TONE.get(part.tone, '')}{escape(part.title)}*")
        if part.text:
            head.append(escape(part.text))
        if head:
            blocks.append(section("\n".join(head)))
        for start in range(0, len(part.facts), FIELDS):
            fields = [
                mrkdwn(f"*{escape(f.label)}*\n{self.linked(f.value)}", FIELD_CHARS)
                for f in part.facts[start : start + FIELDS]
            ]
            blocks.append({"type": "section", "fields": fields})
        if part.table is not None:
            blocks += self.table(part, targets, placed, card_index, index)
        return blocks

    def table(
        self,
        part: Section,
        targets: dict[str, list[tuple[int, str | None, Button]]],
        placed: set[int],
        card_index: int,
        index: int,
    ) -> list[dict[str, Any]]:
        assert part.table is not None
        table = part.table
        shown = table.rows[: self.max_rows]
        hidden = len(table.rows) - len(shown) + table.more
        blocks: list[dict[str, Any]] = []
        if shown:
            blocks.append(context(escape(" · ".join(table.columns))))
        lines: list[str] = []
        for row in shown:
            buttons = targets.get(row[0], []) if row else []
            if not buttons:
                lines.append(self.row(row, None))
                continue
            blocks += _chunks(lines)
            lines = []
            gateway = next((g for _, g, _ in buttons if g), None)
            row_block = section(self.row(row, gateway))
            elements = [e for e in (self.button(b) for _, _, b in buttons) if e]
            placed.update(n for n, _, _ in buttons)
            if len(elements) == 1:
                row_block["accessory"] = elements[0]
                blocks.append(row_block)
            else:
                blocks.append(row_block)
                blocks += _actions(elements)
        blocks += _chunks(lines)
        if hidden > 0:
            blocks.append(context(f"… and {hidden:,} more"))
            value = self.pager(card_index, index, len(shown)) if self.pager else None
            if value is not None and len(value) <= BUTTON_VALUE:
                self.actions += 1
                more = {
                    "type": "button",
                    "text": plain(f"Show more {part.title or 'rows'}".split(" (")[0], BUTTON_TEXT),
                    "action_id": f"{ACTION_PREFIX}.{MORE}.{self.actions}",
                    "value": value,
                }
                blocks.append({"type": "actions", "elements": [more]})
        return blocks

    def row(self, row: list[str], gateway: str | None) -> str:
        cells = [escape(clip(cell, CELL_CHARS)) for cell in row if cell]
        if not cells:
            return "—"
        url = self.link(gateway, row[0]) if self.link and gateway and row[0] else None
        url = _safe_url(url)
        cells[0] = f"<{url}|{cells[0]}>" if url else f"`{cells[0]}`"
        return " · ".join(cells)

    def linked(self, value: str) -> str:
        """`stripe:cus_123` in a fact becomes a link to the dashboard where the gateway has one."""
        text = escape(value)
        if self.link is None:
            return text

        def replace(match: re.Match[str]) -> str:
            url = _safe_url(self.link(match.group(1), match.group(2)) if self.link else None)
            return f"<{url}|{match.group(0)}>" if url else match.group(0)

        return _GATEWAY_REF.sub(replace, text)

    def button(self, button: Button) -> dict[str, Any] | None:
        if button.url:
            if len(button.url) > BUTTON_URL:
                return None
            self.actions += 1
            link: dict[str, Any] = {
                "type": "button",
                "text": plain(button.label, BUTTON_TEXT),
                "action_id": f"{ACTION_PREFIX}.{LINK}.{self.actions}",
                "url": button.url,
            }
            if button.style != "default":
                link["style"] = button.style
            return link
        if not button.command or len(button.command) > BUTTON_VALUE:
            return None  # a cut command would run something else: leave the button out
        verb = _VERB.sub("", button.command.split(maxsplit=1)[0].lower()) or "run"
        self.actions += 1
        element: dict[str, Any] = {
            "type": "button",
            "text": plain(button.label, BUTTON_TEXT),
            "action_id": f"{ACTION_PREFIX}.{verb}.{self.actions}",
            "value": button.command,
        }
        if button.style != "default":
            element["style"] = button.style
        return element

    def action_blocks(self, buttons: list[Button]) -> list[dict[str, Any]]:
        return _actions([e for e in (self.button(b) for b in buttons) if e])


def _safe_url(url: str | None) -> str | None:
    """A dashboard URL fit for `<url|label>`: an object ID from data must not end the link early."""
    if url is None or not _URL.fullmatch(url):
        return None
    return url.replace("&", "&amp;")


def _targets(buttons: list[Button]) -> dict[str, list[tuple[int, str | None, Button]]]:
    """Buttons by the object they act on (`refund ledger:ch_1 ...` acts on ch_1 in ledger)."""
    found: dict[str, list[tuple[int, str | None, Button]]] = {}
    for n, button in enumerate(buttons):
        words = button.command.split()
        if len(words) < 2:
            continue
        gateway, _, object_id = words[1].rpartition(":")
        found.setdefault(object_id, []).append((n, gateway or None, button))
    return found


def _chunks(lines: list[str]) -> list[dict[str, Any]]:
    """Table lines as few section blocks as fit in 3,000 characters each."""
    blocks: list[dict[str, Any]] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = clip(line, TEXT_CHARS)
        if current and size + 1 + len(line) > TEXT_CHARS:
            blocks.append(section("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        blocks.append(section("\n".join(current)))
    return blocks


def _actions(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": "actions", "elements": elements[start : start + ACTIONS_ELEMENTS]}
        for start in range(0, len(elements), ACTIONS_ELEMENTS)
    ]


def _fit(blocks: list[dict[str, Any]], most: int) -> list[dict[str, Any]]:
    if len(blocks) <= most:
        return blocks
    left = len(blocks) - (most - 1)
    return [*blocks[: most - 1], context(f"… {left} more parts of this card did not fit in Slack")]


def card_blocks(
    card: Card,
    *,
    link: Link | None = None,
    pager: Pager | None = None,
    max_rows: int = DEFAULT_ROWS,
) -> list[dict[str, Any]]:
    """One card as at most 50 blocks."""
    return _Blocks(link, pager, max_rows).card(card, 0)


def fallback_text(reply: Reply) -> str:
    """The message's top-level `text` (notifications, screen readers): mrkdwn, so escaped."""
    if reply.error is not None:
        return clip(escape(reply.error.message), TEXT_CHARS)
    if reply.cards:
        first = reply.cards[0]
        said = first.title + (f": {first.subtitle}" if first.subtitle else "")
        return clip(escape(said), TEXT_CHARS)
    return "(empty)"


def reply_messages(
    reply: Reply,
    *,
    link: Link | None = None,
    pager: Pager | None = None,
    max_rows: int = DEFAULT_ROWS,
) -> list[SlackMessage]:
    """A reply as Slack messages: its cards packed into as few messages as fit 50 blocks each."""
    builder = _Blocks(link, pager, max_rows)
    text = fallback_text(reply)
    messages: list[SlackMessage] = []
    current: list[dict[str, Any]] = []
    if reply.error is not None:
        current.append(section(f":x: {escape(reply.error.message)}"))
    for index, card in enumerate(reply.cards):
        blocks = builder.card(card, index)
        if current and len(current) + 1 + len(blocks) > MESSAGE_BLOCKS:
            messages.append(SlackMessage(text=text, blocks=current))
            current = []
        if current:
            current.append({"type": "divider"})
        current += blocks
    if current or not messages:
        messages.append(SlackMessage(text=text, blocks=current or [section(text)]))
    return messages


def walk(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every interactive element in these blocks (accessories and actions)."""
    for block in blocks:
        if "accessory" in block:
            yield block["accessory"]
        yield from block.get("elements", []) if block.get("type") == "actions" else []


# --- modals -----------------------------------------------------------------------------


def form_view(form: Form, *, metadata: str, callback_id: str = FORM_CALLBACK) -> dict[str, Any]:
    """A form as a modal: one input block per field, `block_id` and `action_id` = field name."""
    if len(metadata) > PRIVATE_METADATA:
        raise ValueError(f"private_metadata of {len(metadata)} characters (Slack keeps 3,000)")
    blocks: list[dict[str, Any]] = []
    if len(form.title) > MODAL_TITLE:
        blocks.append(section(f"*{escape(form.title)}*"))
    blocks += [_input(f) for f in form.fields[: MODAL_BLOCKS - len(blocks)]]
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(form.title, MODAL_TITLE),
        "submit": plain(form.submit_label, MODAL_TITLE),
        "close": plain("Close", MODAL_TITLE),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def _input(field: FormField) -> dict[str, Any]:
    element: dict[str, Any]
    if field.kind == "select" and field.choices:
        options = [
            {"text": plain(c.label, OPTION_TEXT), "value": c.value}
            for c in field.choices
            if len(c.value) <= OPTION_VALUE
        ][:SELECT_OPTIONS]
        element = {"type": "static_select", "action_id": field.name, "options": options}
        initial = next((o for o in options if o["value"] == field.default), None)
        if initial is not None:
            element["initial_option"] = initial
    else:
        element = {
            "type": "plain_text_input",
            "action_id": field.name,
            "multiline": field.kind == "textarea",
        }
        if field.default:
            element["initial_value"] = field.default
    block: dict[str, Any] = {
        "type": "input",
        "block_id": field.name,
        "label": plain(field.label, LABEL_CHARS),
        "element": element,
        "optional": field.optional,
    }
    if field.hint:
        block["hint"] = plain(field.hint, LABEL_CHARS)
    return block


def form_values(state: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str | None]:
    """What was typed or chosen in a submitted modal, by field name."""
    values: dict[str, str | None] = {}
    for actions in state.values():
        for name, element in actions.items():
            if element.get("type") == "static_select":
                values[name] = (element.get("selected_option") or {}).get("value")
            else:
                values[name] = element.get("value")
    return values


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (loading, or why nothing can be done)."""
    return {
        "type": "modal",
        "title": plain(title, MODAL_TITLE),
        "close": plain("Close", MODAL_TITLE),
        "blocks": [section(escape(text))],
    }
