"""Argument types shared by commands: validated before any command runs.

Every argument model derives from `Args`, which refuses, before any field is
read, text that cannot be stored or shown safely: control characters (NUL
makes PostgreSQL abort the transaction; a carriage return rewrites a terminal
line), unpaired surrogates (not encodable), and bidirectional overrides (they
make an audit reason read differently from what was stored). A number typed
with other digits than 0-9 (`١٢`, `１２`) is refused where a count is expected.
"""

from __future__ import annotations

import types
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

# `ch_123` or `ledger:ch_123` (naming the gateway when an ID exists in several).
ObjectRef = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        pattern=r"^([a-z][a-z0-9_-]{0,39}:)?[A-Za-z0-9][A-Za-z0-9_.\-]{1,99}$",
    ),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]
AmountText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


@dataclass(frozen=True, eq=False)
class Asked:
    """How a form (a Discord slash option) asks for an argument, where its type does not say.

    Put it in the field's annotation: `charge: Annotated[ObjectRef, Asked(suggest="charges")]`.
    - `suggest`: IDs of this kind are offered as the person types ("charges", "subscriptions");
    - `labels`: what the values of a choice read as; a value without a label reads as itself;
    - `never`: no form asks for it: a button or the typed grammar fills it (`again <id>`); a
      command with a required argument that is never asked has no form (no slash subcommand);
    - `name`, `implies`: asked under another name; given, the arguments in `implies` take those
      values too (`me pdf <id>` is one option `pdf`: the document, with the action `pdf`).
    """

    suggest: Literal["charges", "subscriptions"] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    never: bool = False
    name: str | None = None
    implies: Mapping[str, str] = field(default_factory=dict)


# Filled by a button or typed, never asked by a form (the request `again <id>` repeats).
NOT_ASKED = Asked(never=True)
# A charge or a subscription: forms suggest the IDs of the customer looked up last.
ChargeRef = Annotated[ObjectRef, Asked(suggest="charges")]
SubscriptionRef = Annotated[ObjectRef, Asked(suggest="subscriptions")]

# How much of what someone typed an error repeats: enough to recognise it, never a wall.
ECHO_CHARS = 40
# Line breaks and tabs are text in a multi-line reason or question (Slack and Discord modals).
_TEXT_CONTROLS = frozenset("\n\t")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def echo(text: object, limit: int = ECHO_CHARS) -> str:
    """What the user typed, quoted for an error message: at most `limit` characters, then `…`.

    `repr` shows control characters as escapes, so the echo is always one harmless line.
    """
    value = str(text)
    return repr(value if len(value) <= limit else value[:limit] + "…")


def unsafe_character(text: str) -> str | None:
    """The first character of `text` that may not be stored or shown, named (`U+0000`), or None."""
    for char in text:
        if char in _TEXT_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or char in _BIDI or char in "\u2028\u2029":
            return f"U+{ord(char):04X}"
    return None


def foreign_digits(text: str) -> bool:
    """Digits other than ASCII 0-9 (Arabic-Indic `١٢`, fullwidth `１２`, superscript `²`)."""
    return any(char.isdigit() and not char.isascii() for char in text)


def ascii_digits(text: str) -> str:
    """`١٢` -> `12`: how to type it, for the error that refuses it."""
    return "".join(
        str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c for c in text
    )


def _takes_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return int in get_args(annotation)
    return False


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _safe_text(cls, data: Any) -> Any:
        """Refuse what no field may hold, naming the field, before any field validator runs."""
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            if not isinstance(value, str):
                continue
            found = unsafe_character(value)
            if found is not None:
                label = name if name in cls.model_fields else echo(name)
                raise ValueError(f"{label} contains the character {found}: remove it")
            field = cls.model_fields.get(str(name))
            if field is not None and _takes_int(field.annotation) and foreign_digits(value):
                raise ValueError(
                    f"{name} {echo(value)} uses other digits than 0-9: type it as "
                    f"{echo(ascii_digits(value))}"
                )
        return data
