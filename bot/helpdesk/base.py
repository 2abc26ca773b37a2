"""What every helpdesk door provides: read a signed delivery, post and find an internal note.

A helpdesk package (`bot/helpdesk/<name>/`) subclasses `Helpdesk`. The shared pipeline
(`bot/helpdesk/ticket_notes.py`) turns a new ticket into exactly one billing note, whatever
the helpdesk: it records the ticket once in SQL, posts through `post_note` from a job, and
after an outcome it cannot know (a timeout, a crash) asks `find_note` before posting again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal


class Forged(Exception):
    """A delivery whose signature is missing, wrong or stale: answered 401, nothing done."""


@dataclass(frozen=True)
class NewTicket:
    """A ticket a helpdesk told us was opened, as much as its delivery says."""

    helpdesk: str
    ticket_id: str
    requester_email: str | None  # the address the helpdesk received the ticket from
    subject: str
    text: str  # the first message, as plain text: IDs found here are matches "not verified"
    delivery_id: str | None = None  # the helpdesk's own delivery ID, where it sends one


@dataclass(frozen=True)
class Delivery:
    """What a genuine delivery asks of us."""

    ticket: NewTicket | None = None  # None: an event we do not act on
    # An answer the helpdesk expects instead of 200 {} (Front's challenge handshake).
    answer: Mapping[str, str] | None = None


NoteFormat = Literal["text", "html"]


class Helpdesk(ABC):
    """One helpdesk account the bot writes billing notes into."""

    name: ClassVar[str]
    note_format: ClassVar[NoteFormat]  # what `post_note` bodies are written in

    @abstractmethod
    def read_delivery(self, body: bytes, headers: Mapping[str, str], *, now: float) -> Delivery:
        """Verify a webhook delivery by the helpdesk's own scheme and read it; raise `Forged`.

        `headers` are case-insensitive (Starlette's); `now` is the Unix time to judge staleness.
        """

    @abstractmethod
    async def post_note(self, ticket_id: str, body: str) -> str:
        """Post an internal (private) note on the ticket; returns the note's ID."""

    @abstractmethod
    async def find_note(self, ticket_id: str, marker: str) -> str | None:
        """The ID of a note on the ticket whose body contains `marker`, if one exists."""

    async def close(self) -> None:  # noqa: B027 - most helpdesks hold one client to close
        """Release connections; called once at shutdown."""
