"""Traces: what an agent did from the panel, told by the ticket itself as an internal note.

When an action taken from the agent panel succeeds or is decided, the panel calls `trace`
with a topic naming the event (`reply:<id>`, `decided:<approval id>`) and a card saying
what happened. The note is written at once (text or HTML, as the helpdesk takes notes,
through `render.py`, so every datum in it is inert) with the marker of its row, recorded
once per (helpdesk, ticket, topic) and posted by the same job as the billing note
(`ticket_notes.py`): retried, recovered after an unknown outcome, swept if its job is lost.

A note is read by every agent on the ticket and kept by the helpdesk, so a trace holds no
link (a link may open something: a billing page, a payment) and no button; whatever else
the card says is the caller's to keep free of secrets.
"""

from __future__ import annotations

import logging
import re

from bot.cards.model import Card, Fact, Section, Table
from bot.helpdesk import registry, ticket_notes
from bot.helpdesk.base import NoteFormat
from bot.helpdesk.render import as_html, as_text
from bot.services import Services

log = logging.getLogger(__name__)

# A helpdesk's ticket ID as its API takes it in a path (`errors.segment`), within the column.
_TICKET = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Printable ASCII without spaces, within the column: `reply:42`, `decided:apr_3f…`.
_TOPIC = re.compile(r"[!-~]{1,120}")
# Anything that reads as a link, which a helpdesk may turn into one (a scheme, www.), and
# the schemes that run something.
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*://\S*|www\.\S*|(?:javascript|vbscript|data):\S+)")
LEFT_OUT = "(link left out)"


async def trace(services: Services, helpdesk: str, ticket_id: str, topic: str, card: Card) -> bool:
    """Put `card` on the ticket as an internal note, once for `topic`; True if this call recorded it.

    False, with nothing recorded, when the topic is already on record for that ticket (a
    double click, a redraw run by two processes), when the helpdesk is unknown or not
    configured, or when the ticket or topic cannot be one. Posting happens in the job queue;
    nothing here raises into the caller's request.
    """
    try:
        return await _trace(services, helpdesk, ticket_id, topic, card)
    except Exception:
        log.warning(
            "no trace %r on %r ticket %r: not recorded",
            topic[:120], helpdesk[:40], ticket_id[:64], exc_info=True,
        )  # fmt: skip
        return False


async def _trace(services: Services, helpdesk: str, ticket_id: str, topic: str, card: Card) -> bool:
    if helpdesk not in registry.FACTORIES:
        log.warning("no trace: %r is not a helpdesk", helpdesk[:40])
        return False
    if not _TICKET.fullmatch(ticket_id):
        log.warning("no trace: %r is not a %s ticket ID", ticket_id[:64], helpdesk)
        return False
    if topic == ticket_notes.BILLING or not _TOPIC.fullmatch(topic):
        log.warning(
            "no trace on %s ticket %s: %r is not a trace topic", helpdesk, ticket_id, topic[:120]
        )
        return False
    desk = registry.open_helpdesk(services.settings, helpdesk)
    if desk is None:
        log.warning("no trace on %s ticket %s: %s is not configured", helpdesk, ticket_id, helpdesk)
        return False
    try:
        note_format = desk.note_format
    finally:
        await desk.close()
    row = ticket_notes.draft(helpdesk, ticket_id, topic)
    row.body = note_body(card, row.marker, note_format)
    return await ticket_notes.add(services, row)


def note_body(card: Card, mark: str, note_format: NoteFormat) -> str:
    """The card as a note: no links or buttons, its footer a line of its own, `mark` last."""
    sections = [_unlinked_section(s) for s in card.sections]
    if card.footer:
        # The marker stands alone in the footer, where no long footer can cut it short.
        sections.append(Section(text=_unlinked(card.footer), tone="muted"))
    note = Card(
        title=_unlinked(card.title),
        subtitle=_unlinked(card.subtitle) if card.subtitle is not None else None,
        tone=card.tone,
        sections=sections,
        actions=[],
        footer=mark,
    )
    return as_html(note) if note_format == "html" else as_text(note)


def _unlinked(value: str) -> str:
    return _URL.sub(LEFT_OUT, value)


def _unlinked_section(section: Section) -> Section:
    table = section.table
    return Section(
        title=_unlinked(section.title) if section.title is not None else None,
        text=_unlinked(section.text) if section.text is not None else None,
        facts=[Fact(label=_unlinked(f.label), value=_unlinked(f.value)) for f in section.facts],
        table=Table(
            columns=[_unlinked(c) for c in table.columns],
            rows=[[_unlinked(cell) for cell in row] for row in table.rows],
            more=table.more,
        )
        if table is not None
        else None,
        tone=section.tone,
    )
