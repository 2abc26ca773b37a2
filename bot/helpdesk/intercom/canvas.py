"""Canvas Kit: neutral cards and core forms drawn as Intercom canvases, and the canvas's sealed state.

Intercom shows an inbox app as a canvas: `{"content": {"components": [...]}, "stored_data": {...}}`
made of a fixed vocabulary (text, data-table, list, button, input, textarea, dropdown,
divider, spacer...; Intercom's published 2.11 description, `canvas_kit.json` in the
emulators). This module draws what the core already describes, and nothing else:
a neutral `Card` (bot/cards/model.py) and a core `Form` (bot/commands/forms.py, the
one Slack and Discord modals are built from). It reads no billing data itself.

Every datum is inert: text components render Markdown (links, bold), so data there is
escaped the way helpdesk notes are (bot/helpdesk/render.py); list items and data-table
cells are plain, one line, card numbers masked.

What a button does is never read from the button: each clickable component gets an
opaque ID (`b0`, `b1`...) and the action it stands for travels in `stored_data`, sealed
with an HMAC of the deployment's key. Intercom hands `stored_data` back with the next
submit; a seal that does not match is `Tampered`, and nothing runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.cards.model import Button, Card, Section, Table
from bot.commands.forms import Form, FormField
from bot.helpdesk.render import clean, link, markdown_inert

# Intercom's limit for a canvas's content, and for its stored_data, each.
MAX_BYTES = 64 * 1024
# Kept under the limit with room for what Intercom wraps around it.
BUDGET = MAX_BYTES - 2048
# Dropdowns take 2 to 10 options; anything else is typed.
DROPDOWN = range(2, 11)
FIELD = "f_"  # input component IDs: f_<form field name>
SUBMIT = "form_submit"
BACK = "form_back"
_SEAL = b"chargedesk:intercom-canvas:"

Component = dict[str, Any]
Action = dict[str, Any]


class Tampered(Exception):
    """stored_data that we did not seal, or that changed since: refused, nothing runs."""


def text(value: str, style: str = "paragraph") -> Component:
    return {"type": "text", "text": value, "style": style}


def inert(value: str, limit: int = 300) -> str:
    """One datum fit for a Markdown text component: one line, escaped, cut."""
    return markdown_inert(clean(value, limit))


_TONE_STYLE = {"danger": "error", "muted": "muted", "warning": "paragraph"}


@dataclass
class Canvas:
    """Components being drawn, and the action behind each clickable one."""

    components: list[Component] = field(default_factory=list)
    actions: dict[str, Action] = field(default_factory=dict)

    def add(self, *components: Component) -> None:
        self.components.extend(components)

    def note(self, value: str, style: str = "paragraph") -> None:
        self.add(text(inert(value, 600), style))

    def button(
        self, label: str, action: Action, *, style: str = "secondary", disabled: bool = False
    ) -> None:
        component_id = f"b{len(self.actions)}"
        self.actions[component_id] = action
        button: Component = {
            "type": "button", "id": component_id, "label": clean(label, 60),
            "style": style, "action": {"type": "submit"},
        }  # fmt: skip
        if disabled:
            button["disabled"] = True
        self.add(button)

    def card(
        self,
        card: Card,
        *,
        act: Callable[[Button], Action | None] | None = None,
        pager: Callable[[int, Table], list[tuple[str, Action]]] | None = None,
    ) -> None:
        """A neutral card: its actions become buttons where `act` says what each does
        (None: a read-only card); `pager` names the paging buttons under each long table."""
        self.add(text(f"**{inert(card.title, 200)}**", "header"))
        if card.subtitle:
            self.add(text(inert(card.subtitle), "muted"))
        for index, section in enumerate(card.sections):
            self._section(index, section, pager)
        buttons = [(b, act(b)) for b in card.actions] if act is not None else []
        shown = [(b, a) for b, a in buttons if a is not None]
        links = [b for b in card.actions if link(b.url)] if act is not None else []
        if shown or links:
            self.add({"type": "divider"})
        for button, action in shown:
            style = "primary" if button.style == "primary" else "secondary"
            self.button(button.label, action, style=style)
        for button in links:
            assert button.url is not None
            self.add({
                "type": "button", "id": f"u{len(self.components)}", "label": clean(button.label, 60),
                "style": "link", "action": {"type": "url", "url": button.url},
            })  # fmt: skip
        if card.footer:
            self.add(text(inert(card.footer), "muted"))

    def _section(
        self,
        index: int,
        section: Section,
        pager: Callable[[int, Table], list[tuple[str, Action]]] | None,
    ) -> None:
        style = _TONE_STYLE.get(section.tone, "paragraph")
        if section.title:
            title = f"**{inert(section.title, 200)}**"
            self.add(text(title, "error" if section.tone == "danger" else "paragraph"))
        if section.text:
            self.add(text(inert(section.text, 600), style))
        if section.facts:
            self.add({"type": "data-table", "items": [
                {"type": "field-value", "field": clean(f.label, 60), "value": clean(f.value) or "—"}
                for f in section.facts
            ]})  # fmt: skip
        table = section.table
        if table is not None and table.rows:
            self.add({"type": "list", "items": [
                _item(f"s{index}r{n}", row, table.columns) for n, row in enumerate(table.rows)
            ]})  # fmt: skip
            if table.more:
                self.add(text(f"and {table.more:,} more", "muted"))
            for label, action in pager(index, table) if pager is not None else []:
                self.button(label, action)

    def form(
        self,
        form: Form,
        *,
        values: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        """A core form: what it fixes shown, what it asks as inputs, Submit and Back."""
        values = values or {}
        self.add(text(f"**{inert(form.title, 200)}**", "header"))
        if form.given:
            self.add({"type": "data-table", "items": [
                {"type": "field-value", "field": clean(k, 60), "value": clean(v)}
                for k, v in form.given.items()
            ]})  # fmt: skip
        for form_field in form.fields:
            self.add(_input(form_field, values.get(form_field.name)))
        if error:
            self.add(text(inert(error, 600), "error"))
        self.components.append(
            {"type": "button", "id": SUBMIT, "label": clean(form.submit_label, 60),
             "style": "primary", "action": {"type": "submit"}}
        )  # fmt: skip
        self.actions[SUBMIT] = {"submit": True}
        self.button("Back", {"card": True})

    def drawn(self, stored_data: dict[str, Any]) -> dict[str, Any]:
        """The canvas object: content within Intercom's 64 KB, and the sealed state."""
        return {"content": {"components": fit(self.components)}, "stored_data": stored_data}


# Columns whose cell reads ambiguously without its name (a second amount, a second date).
_NAMED = frozenset({"Refunded", "Due", "Evidence due", "Renews / ends", "Charge"})


def _item(item_id: str, row: list[str], columns: list[str]) -> Component:
    """One table row as a list item: the first cell as its title, the rest below it."""
    item: Component = {"type": "item", "id": item_id, "title": clean(row[0], 120) if row else "—"}
    named = [
        f"{column.lower()} {cell}" if column in _NAMED else cell
        for column, cell in zip([*columns, *[""] * len(row)], row, strict=False)
    ]
    rest = " · ".join(clean(cell, 120) for cell, raw in zip(named[1:], row[1:], strict=True) if raw)
    if rest:
        item["subtitle"] = rest
    return item


def _input(form_field: FormField, value: str | None) -> Component:
    component_id = FIELD + form_field.name
    label = form_field.label + ("" if not form_field.optional else " (optional)")
    shown = value if value is not None else form_field.default
    if form_field.kind == "select" and len(form_field.choices) in DROPDOWN:
        dropdown: Component = {
            "type": "dropdown", "id": component_id, "label": clean(label, 80),
            "options": [
                {"type": "option", "id": c.value, "text": clean(c.label, 80)}
                for c in form_field.choices
            ],
        }  # fmt: skip
        if shown in {c.value for c in form_field.choices}:
            dropdown["value"] = shown
        return dropdown
    kind = "textarea" if form_field.kind == "textarea" else "input"
    component: Component = {"type": kind, "id": component_id, "label": clean(label, 80)}
    if shown:
        component["value"] = shown
    hint = form_field.hint or (
        ", ".join(c.value for c in form_field.choices) if form_field.choices else None
    )
    if hint:
        component["placeholder"] = clean(hint, 120)
    return component


def form_values(form: Form, input_values: Mapping[str, Any]) -> dict[str, str]:
    """What was typed into the form's inputs, by field name (other inputs ignored)."""
    names = {f.name for f in form.fields}
    out: dict[str, str] = {}
    for key, value in input_values.items():
        name = key.removeprefix(FIELD)
        if key.startswith(FIELD) and name in names and isinstance(value, str | int | float):
            out[name] = str(value)
    return out


def size(components: list[Component]) -> int:
    return len(json.dumps({"components": components}, separators=(",", ":")).encode())


def fit(components: list[Component]) -> list[Component]:
    """The components within the budget: the longest lists lose their last items first,
    and a line says the card was shortened."""
    if size(components) <= BUDGET:
        return components
    kept = [dict(c) for c in components]
    lists = [c for c in kept if c.get("type") == "list"]
    for component in lists:
        component["items"] = list(component["items"])
    kept.append(text("Shortened to fit Intercom's 64 KB: page through the lists.", "muted"))
    while size(kept) > BUDGET:
        longest = max(lists, key=lambda c: len(c["items"]), default=None)
        if longest is None or len(longest["items"]) <= 1:
            break
        longest["items"].pop()
    return kept


# --- the state a canvas carries to the next request ---------------------------------------


def seal(state: Mapping[str, Any], key: bytes) -> dict[str, str]:
    """stored_data for `state`: the state as canonical JSON, and its HMAC."""
    body = json.dumps(state, sort_keys=True, separators=(",", ":"))
    if len(body.encode()) > BUDGET:
        raise ValueError("a canvas state over Intercom's 64 KB")
    return {"state": body, "seal": _mac(key, body)}


def unseal(stored: Any, key: bytes) -> dict[str, Any]:
    """The state we sealed into stored_data; `Tampered` for anything else."""
    if not isinstance(stored, dict):
        raise Tampered("the canvas carries no state of ours")
    body, given = stored.get("state"), stored.get("seal")
    if not isinstance(body, str) or not isinstance(given, str):
        raise Tampered("the canvas carries no state of ours")
    if not hmac.compare_digest(_mac(key, body).encode(), given.encode()):
        raise Tampered("the canvas state does not match its seal")
    state = json.loads(body)
    if not isinstance(state, dict):
        raise Tampered("the canvas state is not ours")
    return state


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, _SEAL + body.encode(), hashlib.sha256).hexdigest()
