"""A neutral card as the body of a helpdesk note: plain text or HTML, with every datum inert.

Data in a note comes from customers (a name, a ticket subject, a charge description):
it must read as the customer wrote it and do nothing else. In HTML every datum is
escaped; in text the characters that start Markdown or mentions (`*`, `` ` ``, `[`,
`<`, `|`, `~`, `#`, `\\`, and `_` at a word's edge) get a backslash, since some helpdesks
render note text as Markdown. Everywhere, line breaks, control and bidirectional-override characters in a
datum collapse to a space (a name cannot start a line of its own), and a run of digits
shaped like a card number is masked to its last four.

Only links the bot made itself (http or https) become anchors.
"""

from __future__ import annotations

import html
import re
import unicodedata

from bot.cards.model import Card, Section

# `_` only where it could open or close emphasis: IDs (ch_1, past_due) stay as they are.
_MARKUP = re.compile(r"([\\`*~\[\]<>|#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_PAN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_LINK = re.compile(r"^https?://[^\s<>\"']+$")


def clean(value: str, limit: int = 300) -> str:
    """One line of data: no breaks, controls or direction overrides; card numbers masked; cut."""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in value)
    one_line = " ".join(_PAN.sub(_mask, kept).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _mask(found: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", found.group(0))
    return f"•••• {digits[-4:]}" if _luhn(digits) else found.group(0)


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def markdown_inert(value: str) -> str:
    """Customer text for a Markdown body: one line, its markup characters backslashed."""
    return _MARKUP.sub(r"\\\1", clean(value))


def _html(value: str) -> str:
    return html.escape(clean(value), quote=True)


def link(url: str | None) -> str | None:
    """`url` if it is a plain http(s) link fit for an anchor, else None."""
    return url if url is not None and _LINK.match(url) else None


def as_text(card: Card) -> str:
    lines = [markdown_inert(card.title)]
    if card.subtitle:
        lines.append(markdown_inert(card.subtitle))
    for section in card.sections:
        lines.append("")
        lines.extend(_text_section(section))
    for button in card.actions:
        if link(button.url):
            lines.append(f"{markdown_inert(button.label)}: {button.url}")
    if card.footer:
        lines += ["", f"-- {markdown_inert(card.footer)}"]
    return "\n".join(lines) + "\n"


def _text_section(section: Section) -> list[str]:
    lines = [markdown_inert(section.title)] if section.title else []
    if section.text:
        lines.append(markdown_inert(section.text))
    lines += [f"{markdown_inert(f.label)}: {markdown_inert(f.value)}" for f in section.facts]
    if section.table is not None:
        lines += [
            "- " + " · ".join(markdown_inert(cell) for cell in row if cell)
            for row in section.table.rows
        ]
        if section.table.more:
            lines.append(f"  and {section.table.more:,} more")
    return lines


def as_html(card: Card) -> str:
    parts = [f"<p><strong>{_html(card.title)}</strong>"]
    if card.subtitle:
        parts.append(f"<br>{_html(card.subtitle)}")
    parts.append("</p>")
    for section in card.sections:
        parts.append(_html_section(section))
    anchors = [
        f'<a href="{html.escape(button.url, quote=True)}">{_html(button.label)}</a>'
        for button in card.actions
        if button.url is not None and link(button.url)
    ]
    if anchors:
        parts.append("<p>" + " · ".join(anchors) + "</p>")
    if card.footer:
        parts.append(f"<p><small>{_html(card.footer)}</small></p>")
    return "".join(parts)


def _html_section(section: Section) -> str:
    parts = []
    if section.title:
        parts.append(f"<p><strong>{_html(section.title)}</strong></p>")
    if section.text:
        parts.append(f"<p>{_html(section.text)}</p>")
    if section.facts:
        parts.append(
            "<p>"
            + "<br>".join(f"<b>{_html(f.label)}:</b> {_html(f.value)}" for f in section.facts)
            + "</p>"
        )
    if section.table is not None:
        items = [
            "<li>" + " · ".join(_html(cell) for cell in row if cell) + "</li>"
            for row in section.table.rows
        ]
        if section.table.more:
            items.append(f"<li>and {section.table.more:,} more</li>")
        parts.append("<ul>" + "".join(items) + "</ul>")
    return "".join(parts)
