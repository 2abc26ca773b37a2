"""What a string typed after `lookup` might be, read without asking anyone.

A string can be several things at once: `JANE-0003` is an ID to some gateways and an invoice
number to Stripe; `Smith` is an ID to some and a name to others. Every reading is kept, most
precise first; the registry asks each gateway the readings it understands.
"""

from __future__ import annotations

import re
import unicodedata

# Kinds that may match many customers. Only `lookup` asks them (bot/commands/lookup.py);
# a gateway answers them with the customers alone (no charges), at most MAX_MATCHES + 1
# of them, so the one more says "there are more".
BROAD_KINDS = frozenset({"name", "partial_email"})
MAX_MATCHES = 10

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# `JANE-0003` (Stripe: prefix, dash, sequence), `INV-2026-000042` (ours), `ACME-2026-0042`.
_INVOICE_NUMBER = re.compile(r"[A-Z0-9]{1,12}(?:-[A-Z0-9]{1,12})*-\d{3,12}", re.IGNORECASE)
# Letters (any script) in words joined by one space, apostrophe, hyphen or dot: `Jane Doe`,
# `O'Brien`, `Jean-Luc`, `Zoë`, `山田 太郎`. Digits and markup characters make it something else.
_NAME = re.compile(r"[^\W\d_]+(?:[ '’.\-]{1,2}[^\W\d_]+)*\.?")


def readings(text: str) -> list[tuple[str, str]]:
    """(kind, value) pairs `text` might be, most precise first (text already trimmed)."""
    if "@" in text:
        if _EMAIL.fullmatch(text):
            return [("email", text.lower())]
        return [("partial_email", text.lower())]
    if any(c.isspace() for c in text):
        return [("name", text)] if _NAME.fullmatch(text) else [("id", text)]
    found = [("id", text)]
    if _INVOICE_NUMBER.fullmatch(text) and any(c.isdigit() for c in text):
        found.append(("invoice_number", text.upper()))
    if _NAME.fullmatch(text):
        found.append(("name", text))
    return found


def folded(text: str) -> str:
    """How names compare: Unicode-normalised (NFKC), case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def partial_email_problem(value: str) -> str | None:
    """Why a part of an email is too broad to search, or None when it may be searched.

    `jane@`, `jane.doe@exa`, `@example.com` and `doe@example` are searchable; `@`, `a@`,
    `@com` are not: each part typed must have at least 3 characters, and a domain alone
    must be a whole domain (with a dot), never a bare top-level one.
    """
    if value.count("@") != 1 or any(c.isspace() for c in value):
        return "type one part of one email, such as `jane@` or `@example.com`"
    local, domain = value.split("@")
    if not (local or domain) or 0 < len(local) < 3 or 0 < len(domain) < 3:
        return "type at least 3 characters before or after the @"
    if not local and "." not in domain.strip("."):
        return "type a whole domain after the @, such as `@example.com`"
    return None


def like_escaped(text: str) -> str:
    """`text` for a LIKE pattern with `\\` as the escape: `%` and `_` typed match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def email_pattern(part: str) -> str:
    """The LIKE pattern of part of an email: `jane@` a prefix, `@example.com` a suffix,
    `jane@exa` anywhere."""
    local, _, domain = part.partition("@")
    escaped = like_escaped(part)
    return f"{escaped}%" if not domain else f"%{escaped}" if not local else f"%{escaped}%"
