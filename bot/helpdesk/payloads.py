"""Reading what a helpdesk sent once its signature is checked: JSON objects and message text."""

from __future__ import annotations

import html
import json
import re
from typing import Any

_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/h\d|/tr)\b[^>]*>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")
_BLANKS = re.compile(r"[ \t\r\f\v]+")


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; `{}` for anything else (a genuine but unreadable delivery)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def member(payload: Any, *path: str) -> Any:
    """`payload[path[0]][path[1]]...`, or None where any step is missing or not an object."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def text(value: Any) -> str:
    """A string member as a string ('' when absent or not a string)."""
    return value if isinstance(value, str) else ""


def plain_text(markup: str) -> str:
    """HTML as the plain text a person reads: tags dropped, entities decoded, lines kept."""
    lines = html.unescape(_TAGS.sub("", _BREAKS.sub("\n", markup))).splitlines()
    return "\n".join(line for line in (_BLANKS.sub(" ", x).strip() for x in lines) if line)


def email(value: Any) -> str | None:
    """An email address as given, or None where the value is not one."""
    return value.strip() if isinstance(value, str) and "@" in value else None
