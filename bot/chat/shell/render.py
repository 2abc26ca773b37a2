"""Cards for the terminal (rich) and as JSON lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from bot.cards.model import Card, Reply, Section

_COLOURS = {
    "normal": "cyan",
    "success": "green",
    "warning": "yellow",
    "danger": "red",
    "muted": "bright_black",
}


def to_json(reply: Reply, *, saved: Sequence[Path | None] = ()) -> str:
    """One JSON object per reply: `cards`, plus `error`, `approval` and `files` when present.

    A file is its name, type and size (never its bytes), and the `path` it was
    saved to when the caller saved it (`saved`, in the order of `reply.files`).
    """
    data = reply.model_dump(mode="json", exclude_none=True)
    if not reply.files:
        data.pop("files", None)
    for entry, path in zip(data.get("files", []), saved, strict=False):
        if path is not None:
            entry["path"] = str(path)
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def render(reply: Reply, console: Console) -> None:
    if reply.error:
        console.print(Text(f"✗ {reply.error.message}", style="bold red"))
    for card in reply.cards:
        console.print(_card(card))


def _card(card: Card) -> Panel:
    parts: list[RenderableType] = []
    if card.subtitle:
        parts.append(Text(card.subtitle, style="dim"))
    parts.extend(_section(s) for s in card.sections)
    if card.actions:
        buttons = Text("Next: ", style="dim")
        for i, button in enumerate(card.actions):
            if i:
                buttons.append("  ·  ", style="dim")
            shown = f"{button.label}: {button.url}" if button.url else button.command
            buttons.append(shown, style="bold red" if button.style == "danger" else "bold")
        parts.append(buttons)
    if card.footer:
        parts.append(Text(card.footer, style="dim italic"))
    colour = _COLOURS[card.tone]
    return Panel(
        Group(*parts),
        title=Text(card.title, style=f"bold {colour}"),
        border_style=colour,
        title_align="left",
    )


def _section(section: Section) -> RenderableType:
    items: list[RenderableType] = []
    colour = _COLOURS[section.tone]
    if section.title:
        items.append(Text(section.title, style=f"bold {colour}"))
    if section.text:
        items.append(Text(section.text, style=colour if section.tone != "normal" else ""))
    if section.facts:
        grid = RichTable.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for fact in section.facts:
            grid.add_row(Text(fact.label), Text(fact.value))
        items.append(grid)
    if section.table:
        table = RichTable(show_edge=False, header_style="bold", pad_edge=False)
        for column in section.table.columns:
            table.add_column(Text(column))
        for row in section.table.rows:
            # Text, not str: card content is data, never rich markup (`[amount]` must stay).
            table.add_row(*(Text(cell) for cell in row))
        items.append(table)
        if section.table.more:
            items.append(Text(f"… and {section.table.more} more", style="dim"))
    return Group(*items)
