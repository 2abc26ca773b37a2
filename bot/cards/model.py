"""The neutral card: what a reply shows, before any platform draws it.

Renderers (terminal, JSON; later Block Kit and Discord embeds) turn it into
their own idiom. Nothing here knows about a platform.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

Tone = Literal["normal", "success", "warning", "danger", "muted"]


class Fact(BaseModel):
    label: str
    value: str


class Table(BaseModel):
    columns: list[str]
    rows: list[list[str]]
    more: int = Field(0, description="rows left out; a `more` action pages on")


class Section(BaseModel):
    title: str | None = None
    text: str | None = None
    facts: list[Fact] = Field(default_factory=list)
    table: Table | None = None
    tone: Tone = "normal"


class Button(BaseModel):
    """An action the user can take next: the text `command` it runs, or a `url` it opens."""

    label: str
    command: str = ""
    style: Literal["primary", "danger", "default"] = "default"
    url: str | None = Field(None, description="a link button: opens this page, runs nothing")


class Card(BaseModel):
    title: str
    subtitle: str | None = None
    tone: Tone = "normal"
    sections: list[Section] = Field(default_factory=list)
    actions: list[Button] = Field(default_factory=list)
    footer: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str


class ApprovalRef(BaseModel):
    id: str
    state: str


class Attachment(BaseModel):
    """A file that comes with a reply (a PDF invoice); each platform delivers the bytes its way.

    The bytes stay out of the JSON form (`model_dump`): it carries name, type and size.
    """

    name: str = Field(min_length=1, max_length=200)
    mime: str = "application/octet-stream"
    content: bytes = Field(exclude=True, repr=False)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def size(self) -> int:
        return len(self.content)


class Reply(BaseModel):
    """What a command answers: cards, or an error, the approval it touched, and files."""

    cards: list[Card] = Field(default_factory=list)
    error: ErrorInfo | None = None
    approval: ApprovalRef | None = None
    ephemeral: bool = False
    files: list[Attachment] = Field(default_factory=list)

    @classmethod
    def fail(cls, code: str, message: str) -> Reply:
        return cls(error=ErrorInfo(code=code, message=message))
