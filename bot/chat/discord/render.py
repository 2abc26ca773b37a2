"""Cards as Discord embeds and buttons, and forms as Discord modals, within Discord's limits.

Pure functions: a neutral Card, Reply or Form in, JSON-ready dicts out. Nothing
here calls Discord or knows billing; the adapter (adapter.py) turns
these into discord.py objects and supplies the custom_id of a page button.

Discord refuses a whole message when one limit is broken, so every text is
clipped, every list paged, and what still does not fit is cut with a note: a
customer with thousands of charges still gets a card.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

from bot.cards.model import Button, Card, Reply, Section
from bot.commands.forms import Form

# Discord's limits (discord.com/developers/docs/resources/message#embed-object-embed-limits,
# .../interactions/message-components).
EMBEDS = 10
EMBED_TOTAL = 6000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
ACTION_ROWS = 5
ROW_BUTTONS = 5
BUTTON_LABEL = 80
CUSTOM_ID = 100
URL = 512
LINK_STYLE = 5
MODAL_TITLE = 45
MODAL_ROWS = 5
INPUT_LABEL = 45
PLACEHOLDER = 100
INPUT_VALUE = 4000
CONTENT = 2000

PREFIX = "cd"
# What Discord reads as a mention: @everyone, @here, <@user>, <@!user>, <@&role>, <#channel>.
_MENTION = re.compile(r"@(?:everyone|here)|<(?:@[!&]?|#)")
PAGE_ROWS = 10
# A cell longer than this is data nobody reads in chat.
CELL_CHARS = 80
_COLOR = {
    "normal": 0x5865F2,
    "success": 0x57F287,
    "warning": 0xFEE75C,
    "danger": 0xED4245,
    "muted": 0x99AAB5,
}
_STYLE = {"primary": 1, "default": 2, "danger": 4}
_TONE = {"danger": "🔴 ", "warning": "⚠️ ", "success": "✅ "}

# (card index, section index, rows shown so far) -> custom_ids of (previous, next), or None.
Pager = Callable[[int, int, int, int], tuple[str | None, str | None] | None]


@dataclass(frozen=True)
class ButtonSpec:
    """A button: clicking sends its `custom_id` to the bot, or (a link button) opens `url`."""

    label: str
    custom_id: str
    style: int = 2
    url: str | None = None


@dataclass
class DiscordMessage:
    """One Discord message: text content, embeds (dicts), and rows of buttons.

    `ping`: the user IDs the bot itself mentions in `content` (the requester of an
    approval); the adapter lets exactly those ping, and nothing that came from data.
    """

    content: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    rows: list[list[ButtonSpec]] = field(default_factory=list)
    ping: tuple[str, ...] = ()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inert(text: str) -> str:
    """No mention can form: `@everyone`, `@here`, `<@123>`, `<@&role>`, `<#channel>` get a
    zero-width space after their first character, so Discord shows them as typed."""
    return _MENTION.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def escape(text: str) -> str:
    """Data is shown as typed: Markdown in it does nothing, and it mentions nobody."""
    for char in ("\\", "*", "_", "~", "`", "|", ">", "#", "[", "]"):
        text = text.replace(char, "\\" + char)
    return inert(text)


def custom_id(command: str) -> str | None:
    """A button's command as a stable custom_id: `refund ledger:ch_1 reason: ` -> `cd:refund:ledger:ch_1`.

    None when it would not fit: a cut command would run something else.
    """
    line = command.split(" reason:")[0].strip()
    verb, _, rest = line.partition(" ")
    if not verb or not verb.isalpha():
        return None
    made = (
        f"{PREFIX}:{verb.lower()}:{quote(rest, safe=':_-. ')}"
        if rest
        else f"{PREFIX}:{verb.lower()}"
    )
    return made if len(made) <= CUSTOM_ID else None


def command_of(made: str) -> str | None:
    """The command line a custom_id made by `custom_id` stands for."""
    parts = made.split(":", 2)
    if len(parts) < 2 or parts[0] != PREFIX or not parts[1].isalpha():
        return None
    return f"{parts[1]} {unquote(parts[2])}".strip() if len(parts) == 3 else parts[1]


def _field(name: str, value: str, inline: bool = False) -> dict[str, Any]:
    return {
        "name": clip(inert(name) or "\u200b", FIELD_NAME),
        "value": clip(value or "—", FIELD_VALUE),
        "inline": inline,
    }


def _lines(section: Section, shown: list[list[str]]) -> list[str]:
    out = []
    for row in shown:
        cells = [escape(clip(c, CELL_CHARS)) for c in row if c]
        if cells:
            # Inside a code span nothing renders, as long as data cannot close the span.
            cells[0] = f"`{inert(clip(row[0], CELL_CHARS).replace('`', 'ˋ'))}`"
        out.append(" · ".join(cells) or "—")
    return out


def _chunk(lines: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def card_embed(
    card: Card,
    *,
    index: int = 0,
    pager: Pager | None = None,
    max_rows: int = PAGE_ROWS,
    offset: int = 0,
) -> tuple[dict[str, Any], list[ButtonSpec]]:
    """One card as one embed (within 25 fields) and its page buttons."""
    embed: dict[str, Any] = {
        "title": clip(inert(_TONE.get(card.tone, "") + card.title), TITLE),
        "color": _COLOR.get(card.tone, _COLOR["normal"]),
    }
    text: list[str] = [escape(card.subtitle)] if card.subtitle else []
    fields: list[dict[str, Any]] = []
    pages: list[ButtonSpec] = []
    for number, part in enumerate(card.sections):
        title = (_TONE.get(part.tone, "") + part.title) if part.title else None
        if part.text and not part.facts and part.table is None:
            fields.append(_field(title or "\u200b", escape(part.text)))
            continue
        if part.text:
            text.append((f"**{escape(title)}**\n" if title else "") + escape(part.text))
        fields += [_field(f.label, escape(f.value), inline=True) for f in part.facts]
        if part.table is not None:
            table = part.table
            shown = table.rows[:max_rows]
            hidden = len(table.rows) - len(shown) + table.more
            head = title or " · ".join(table.columns)
            chunks = _chunk(_lines(part, shown), FIELD_VALUE) or ["—"]
            for n, chunk in enumerate(chunks):
                fields.append(_field(head if n == 0 else f"{head} (cont.)", chunk))
            if hidden > 0 or offset > 0:
                first = offset + 1 if shown else offset
                fields.append(
                    _field(
                        "\u200b",
                        f"Rows {first:,}–{offset + len(shown):,} of {offset + len(shown) + hidden:,}",
                    )
                )
                ids = pager(index, number, offset, len(shown)) if pager else None
                if ids is not None:
                    back, more = ids
                    name = (part.title or "rows").split(" (")[0]
                    if back:
                        pages.append(ButtonSpec(clip(f"◀ Previous {name}", BUTTON_LABEL), back))
                    if more and hidden > 0:
                        pages.append(ButtonSpec(clip(f"Next {name} ▶", BUTTON_LABEL), more))
    if text:
        embed["description"] = clip("\n\n".join(text), DESCRIPTION)
    if len(fields) > FIELDS:
        left = len(fields) - (FIELDS - 1)
        fields = [*fields[: FIELDS - 1], _field("\u200b", f"… {left} more parts did not fit")]
    if fields:
        embed["fields"] = fields
    if card.footer:
        embed["footer"] = {"text": clip(inert(card.footer), FOOTER)}
    return embed, pages


def action_buttons(buttons: list[Button]) -> list[ButtonSpec]:
    found = []
    for button in buttons:
        if button.url:
            if len(button.url) <= URL:
                found.append(
                    ButtonSpec(clip(button.label, BUTTON_LABEL), "", LINK_STYLE, button.url)
                )
            continue
        made = custom_id(button.command)
        if made is not None:
            found.append(ButtonSpec(clip(button.label, BUTTON_LABEL), made, _STYLE[button.style]))
    return found


def size(embed: dict[str, Any]) -> int:
    """What Discord counts toward the 6,000 characters of a message."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += len((embed.get("footer") or {}).get("text", ""))
    return total + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))


def fit(embeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most 10 embeds and 6,000 characters: fields are dropped from the end, with a note."""
    embeds = embeds[:EMBEDS]
    note = _field(
        "\u200b", "… more did not fit in one Discord message: page on, or narrow the search"
    )
    cut = False
    while sum(size(e) for e in embeds) + (size({"fields": [note]}) if cut else 0) > EMBED_TOTAL:
        last = embeds[-1]
        if last.get("fields"):
            last["fields"].pop()
        elif last.get("description"):
            last["description"] = clip(last["description"], max(1, len(last["description"]) // 2))
            if len(last["description"]) <= 2:
                del last["description"]
        elif len(embeds) > 1:
            embeds.pop()
        else:
            break
        cut = True
    if cut:
        embeds[-1].setdefault("fields", [])
        if len(embeds[-1]["fields"]) >= FIELDS:
            embeds[-1]["fields"].pop()
        embeds[-1]["fields"].append(note)
    return embeds


def rows_of(buttons: list[ButtonSpec]) -> list[list[ButtonSpec]]:
    """Up to 5 rows of 5 buttons; unique custom_ids (Discord refuses repeats)."""
    seen: set[str] = set()
    unique = [b for b in buttons if not (_key(b) in seen or seen.add(_key(b)))]
    unique = unique[: ACTION_ROWS * ROW_BUTTONS]
    return [unique[i : i + ROW_BUTTONS] for i in range(0, len(unique), ROW_BUTTONS)]


def _key(button: ButtonSpec) -> str:
    return button.custom_id or f"url:{button.url}"


def reply_message(
    reply: Reply,
    *,
    pager: Pager | None = None,
    max_rows: int = PAGE_ROWS,
    offset: int = 0,
    content: str | None = None,
    actions: bool = True,
    ping: tuple[str, ...] = (),
) -> DiscordMessage:
    """A reply as one Discord message: an embed per card (at most 10), buttons below.

    `content` is the bot's own text, not data; the users it mentions on purpose are `ping`.
    """
    embeds: list[dict[str, Any]] = []
    pages: list[ButtonSpec] = []
    buttons: list[ButtonSpec] = []
    if reply.error is not None:
        embeds.append({"description": clip(f"❌ {escape(reply.error.message)}", DESCRIPTION),
                       "color": _COLOR["danger"]})  # fmt: skip
    for index, card in enumerate(reply.cards[: EMBEDS - len(embeds)]):
        embed, paging = card_embed(card, index=index, pager=pager, max_rows=max_rows, offset=offset)
        embeds.append(embed)
        pages += paging
        if actions:
            buttons += action_buttons(card.actions)
    # Page buttons first: they are what a long list needs to stay usable.
    return DiscordMessage(
        content=clip(content, CONTENT) if content else None,
        embeds=fit(embeds),
        rows=rows_of(pages + buttons),
        ping=ping,
    )


# --- modals -----------------------------------------------------------------------------

Style = Literal["short", "paragraph"]


@dataclass(frozen=True)
class Input:
    custom_id: str
    label: str
    style: Style
    required: bool
    value: str | None
    placeholder: str | None


@dataclass(frozen=True)
class Modal:
    custom_id: str
    title: str
    inputs: list[Input]


def form_id(form: Form) -> str | None:
    """The modal's custom_id: the command and what it fixes, so a submit needs no stored state."""
    given = "&".join(f"{quote(k)}={quote(v, safe=':_-.')}" for k, v in sorted(form.given.items()))
    made = f"{PREFIX}:form:{form.command}:{given}"
    return made if len(made) <= CUSTOM_ID else None


def form_given(made: str) -> tuple[str, dict[str, str]] | None:
    """(command, given) from a modal's custom_id made by `form_id`."""
    parts = made.split(":", 3)
    if len(parts) != 4 or parts[:2] != [PREFIX, "form"]:
        return None
    given = {}
    for pair in filter(None, parts[3].split("&")):
        key, _, value = pair.partition("=")
        given[unquote(key)] = unquote(value)
    return parts[2], given


def form_modal(form: Form) -> Modal | None:
    """A form as a modal of at most 5 text inputs; a choice lists its options in the placeholder."""
    made = form_id(form)
    if made is None:
        return None
    inputs = []
    for f in form.fields[:MODAL_ROWS]:
        hint = f.hint
        if f.kind == "select" and f.choices:
            hint = "One of: " + ", ".join(c.value for c in f.choices)
        inputs.append(
            Input(
                custom_id=f.name,
                label=clip(f.label, INPUT_LABEL),
                style="paragraph" if f.kind == "textarea" else "short",
                required=not f.optional,
                value=clip(f.default, INPUT_VALUE) if f.default else None,
                placeholder=clip(hint, PLACEHOLDER) if hint else None,
            )
        )
    return Modal(custom_id=made, title=clip(form.title, MODAL_TITLE), inputs=inputs)


def modal_values(components: list[dict[str, Any]]) -> dict[str, str]:
    """What was typed in a submitted modal, by field name (action rows or labels)."""
    values: dict[str, str] = {}
    for row in components:
        inner = row.get("components") or ([row["component"]] if "component" in row else [])
        for c in inner:
            if "value" in c:
                values[c["custom_id"]] = c["value"]
            elif c.get("values"):
                values[c["custom_id"]] = c["values"][0]
    return values
