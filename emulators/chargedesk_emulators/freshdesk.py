"""A fake Freshdesk API v2 on 127.0.0.1: tickets, private notes, and automation-rule webhooks.

It serves what ChargeDesk calls, as Freshdesk answers it:
- `POST /api/v2/tickets/{id}/notes` `{"body", "private"}` → 201 with the note;
- `GET /api/v2/tickets/{id}/conversations` → the ticket's replies and notes, oldest first
  (`page`, `per_page` up to 100).
The API key is the Basic user (any password, `X` by convention): 401 `invalid_credentials`
otherwise; an unknown ticket is 404. Requests and answers are validated against the shapes
Freshdesk documents (data/freshdesk/conversations.json, see SOURCE); anything off lands in
`problems`, which tests assert empty.

Freshdesk's ticket-creation rule calls our webhook with a custom header holding a shared
secret (it signs nothing): `delivery()` builds that request for a ticket, as the rule we
document sends it. `fail_next()` and `slow_next()` (chargedesk_emulators.helpdesks) make the
next calls fail or hang; `exchanges` records every call.
"""

from __future__ import annotations

import hmac
import html
import itertools
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request

from chargedesk_emulators import rules
from chargedesk_emulators.helpdesks import Answer, ApiError, Handler, HelpdeskEmulator, json_body
from chargedesk_emulators.serve import command_line, serving

DATA = Path(__file__).parent / "data" / "freshdesk"
AGENT_ID = 77_000_001
SECRET_HEADER = "X-ChargeDesk-Secret"
# The rule's "Trigger webhook" content (README: Freshdesk), placeholders filled and JSON-escaped.
RULE_BODY = {
    "event": "ticket.created",
    "ticket": {
        "id": "{{ticket.id}}",
        "subject": "{{ticket.subject}}",
        "description": "{{ticket.description}}",
        "requester_email": "{{ticket.requester.email}}",
    },
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def _definitions() -> dict[str, Any]:
    return json.loads((DATA / "conversations.json").read_text())


def schema_problems(name: str, value: Any) -> list[str]:
    """How `value` differs from the shape Freshdesk documents as `name`."""
    return rules.schema_problems(_definitions(), f"#/definitions/{name}", value)


@dataclass
class Ticket:
    id: int
    subject: str
    requester_email: str
    description: str  # HTML, as Freshdesk keeps it
    conversations: list[dict[str, Any]] = field(default_factory=list)


class FreshdeskEmulator(HelpdeskEmulator):
    name = "Freshdesk"

    def __init__(
        self,
        *,
        domain: str = "chargedesk.freshdesk.com",
        api_key: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        super().__init__()
        self.domain = domain
        self.api_key = api_key or secrets.token_urlsafe(20)
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(32)
        self.tickets: dict[int, Ticket] = {}
        self.problems: list[str] = []
        self._ticket_ids = itertools.count(101)
        self._ids = itertools.count(AGENT_ID + 1000)

    def ticket(self, subject: str, text: str, *, requester_email: str) -> int:
        """Open a ticket as an email to the support address would (its description is HTML)."""
        with self._lock:
            ticket_id = next(self._ticket_ids)
            markup = (
                "<div>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</div>"
            )
            self.tickets[ticket_id] = Ticket(ticket_id, subject, requester_email, markup)
            return ticket_id

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """The ticket's private notes, oldest first."""
        with self._lock:
            return [c for c in self.tickets[ticket_id].conversations if c["private"]]

    def delivery(
        self, ticket_id: int, *, secret: str | None = None, header: str = SECRET_HEADER
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of the rule's webhook for a new ticket: the shared secret in `header`."""
        with self._lock:
            ticket = self.tickets[ticket_id]
            values = {
                "{{ticket.id}}": str(ticket.id),
                "{{ticket.subject}}": ticket.subject,
                "{{ticket.description}}": ticket.description,
                "{{ticket.requester.email}}": ticket.requester_email,
            }
        body = json.dumps(rules.fill(RULE_BODY, values)).encode()
        headers = {"Content-Type": "application/json", header: secret or self.webhook_secret}
        return body, headers

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        return [
            ("/api/v2/tickets/{ticket_id:int}/notes", "POST", self._add_note, True),
            ("/api/v2/tickets/{ticket_id:int}/conversations", "GET", self._conversations, True),
        ]

    def authorized(self, request: Request) -> bool:
        """The API key as the Basic user; Freshdesk ignores the password (`X` by convention)."""
        given = rules.basic(request)
        return given is not None and hmac.compare_digest(given[0].encode(), self.api_key.encode())

    def unauthorized(self) -> Answer:
        return Answer(401, {"code": "invalid_credentials",
                            "message": "You have to be logged in to perform this action."})  # fmt: skip

    def failure(self, status: int) -> Answer:
        if status == 429:
            return Answer(429, {"message": "You have exceeded the limit of requests per hour"},
                          {"Retry-After": "1"})  # fmt: skip
        return Answer(status, {"code": "internal_error", "message": "emulated failure"})

    def _ticket(self, request: Request) -> Ticket:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            raise ApiError(404, {"code": "not_found", "message": "Record not found"})
        return ticket

    def _add_note(self, request: Request, body: bytes) -> Answer:
        ticket = self._ticket(request)
        payload = json_body(body)
        wrong = schema_problems("note_request", payload)
        if wrong:
            self.problems += wrong
            raise ApiError(400, {"description": "Validation failed", "errors": wrong})
        now = _now()
        note = {
            "id": next(self._ids), "body": payload["body"], "body_text": rules.plain(payload["body"]),
            "incoming": bool(payload.get("incoming", False)),
            "private": payload.get("private", True) is not False, "user_id": AGENT_ID,
            "support_email": None, "ticket_id": ticket.id, "notified_to": [],
            "attachments": [], "created_at": now, "updated_at": now, "source": 2,
        }  # fmt: skip
        self.problems += schema_problems("conversation", note)
        ticket.conversations.append(note)
        return Answer(201, note)

    def _conversations(self, request: Request, body: bytes) -> Answer:
        ticket = self._ticket(request)
        per_page = min(int(request.query_params.get("per_page", "30")), 100)
        page = int(request.query_params.get("page", "1"))
        shown = ticket.conversations[(page - 1) * per_page : page * per_page]
        self.problems += schema_problems("conversations", shown)
        return Answer(200, shown)  # type: ignore[arg-type] - Freshdesk answers a JSON array


@contextmanager
def freshdesk_api(**options: Any) -> Iterator[FreshdeskEmulator]:
    """Run the emulator on 127.0.0.1 with a free port, in a background thread."""
    emulator = FreshdeskEmulator(**options)
    with serving(emulator.app(), "Freshdesk emulator") as url:
        emulator.base_url = url
        yield emulator


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Freshdesk until interrupted; prints the settings that point the bot at it."""
    emulator = FreshdeskEmulator()

    def started(url: str) -> list[str]:
        emulator.base_url = url
        return [
            f"API key {emulator.api_key}, webhook secret {emulator.webhook_secret} "
            f"(header {SECRET_HEADER})",
            f"Settings: CHARGEDESK_HELPDESK__FRESHDESK__BASE_URL={url} "
            f"CHARGEDESK_HELPDESK__FRESHDESK__API_KEY={emulator.api_key} "
            f"CHARGEDESK_HELPDESK__FRESHDESK__WEBHOOK_SECRET={emulator.webhook_secret}",
        ]

    command_line("Freshdesk", emulator.app(), started, argv)


if __name__ == "__main__":
    main()
