"""A fake Zendesk Support API on 127.0.0.1: tickets, private comments, and signed trigger webhooks.

It serves what ChargeDesk calls, as Zendesk answers it:
- `PUT /api/v2/tickets/{id}` with `{"ticket": {"comment": {...}}}` adds a comment and
  answers `{"ticket", "audit"}` (the audit's `Comment` event carries the comment's ID);
- `GET /api/v2/tickets/{id}/comments` lists a ticket's comments (`sort_order=asc|desc`,
  `per_page`, offset `page`; `next_page` links the next page);
- `GET /api/v2/tickets/{id}.json` shows a ticket (`{"ticket": {"id", "subject",
  "requester_id", ...}}`), without its comments;
- `GET /api/v2/users/{id}.json` shows a user (`{"user": {"id", "name", "email", "role",
  "locale", ...}}`): the agents tests add (`agent()`), who open the agent panel, and each
  ticket's requester (an end user; one with no email address has none in the answer).
Credentials are checked as Zendesk does for API tokens: Basic `{email}/token:{token}`,
401 otherwise; an unknown ticket or user is 404 `RecordNotFound`. Every comment and answer
is validated against Zendesk's published schemas (data/zendesk/schemas.json, see SOURCE
and LICENSE beside it); anything off lands in `problems`, which tests assert empty.

Tests open tickets (`ticket()`), then get the webhook our trigger sends for one, signed as
Zendesk signs it (`delivery()`: base64 HMAC-SHA256 of timestamp + body with the webhook's
signing secret). `fail_next()` and `slow_next()` (chargedesk_emulators.helpdesks) make the
next calls fail or hang, also after the comment is stored (`after=True`: the work done,
the answer lost); `exchanges` records every call.
"""

from __future__ import annotations

import base64
import hashlib
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

DATA = Path(__file__).parent / "data" / "zendesk"
AGENT_ID = 9_000_001
# The JSON body of the trigger an admin connects to our webhook (README: Zendesk), as
# Zendesk renders it: each placeholder replaced by the ticket's value, JSON-escaped.
TRIGGER_BODY = {
    "event": "ticket.created",
    "ticket": {
        "id": "{{ticket.id}}",
        "subject": "{{ticket.title}}",
        "description": "{{ticket.description}}",
        "requester_email": "{{ticket.requester.email}}",
    },
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Zendesk-Webhook-Signature`: base64(HMAC-SHA256(timestamp + body)) with the signing secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def timestamp(at: datetime | None = None) -> str:
    """`X-Zendesk-Webhook-Signature-Timestamp`: ISO 8601 in UTC to the second."""
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def _schemas() -> dict[str, Any]:
    return json.loads((DATA / "schemas.json").read_text())


def schema_problems(name: str, value: Any) -> list[str]:
    """How `value` differs from Zendesk's component schema `name`."""
    return rules.schema_problems(_schemas(), f"#/components/schemas/{name}", value)


@dataclass
class Ticket:
    id: int
    subject: str
    requester_email: str | None
    requester_name: str
    requester_id: int
    comments: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=timestamp)


class ZendeskEmulator(HelpdeskEmulator):
    name = "Zendesk"

    def __init__(
        self,
        *,
        subdomain: str = "chargedesk",
        email: str = "agent@example.com",
        api_token: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        super().__init__()
        self.subdomain = subdomain
        self.email = email
        self.api_token = api_token or secrets.token_urlsafe(24)
        self.webhook_secret = webhook_secret or base64.b64encode(secrets.token_bytes(32)).decode()
        self.tickets: dict[int, Ticket] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.problems: list[str] = []
        self._ids = itertools.count(AGENT_ID + 1000)

    # --- what Zendesk holds ------------------------------------------------------------------

    def ticket(
        self,
        subject: str,
        text: str,
        *,
        requester_email: str | None,
        requester_name: str = "Customer",
    ) -> int:
        """Open a ticket as a customer's message would: its requester becomes an end user of
        the account (with no email address when `requester_email` is None, as a caller's
        or a social message's would be), its first comment is public, by the requester."""
        requester = self.agent(requester_email, requester_name, role="end-user")
        with self._lock:
            ticket = Ticket(next(self._ids), subject, requester_email, requester_name, requester)
            ticket.comments.append(self._comment(text, markup=None, public=True, author=requester))
            self.tickets[ticket.id] = ticket
            return ticket.id

    def agent(
        self, email: str | None, name: str, *, locale: str = "en-US", role: str = "agent"
    ) -> int:
        """Add a user of the account (an agent, by default); their user ID."""
        with self._lock:
            user_id = next(self._ids)
            user = {
                "id": user_id, "url": f"{self.base_url}/api/v2/users/{user_id}.json",
                "name": name, "email": email, "role": role, "locale": locale,
                "active": True, "verified": True, "suspended": False,
            }  # fmt: skip
            if email is None:
                del user["email"]
            self.users[user_id] = user
            return user_id

    def forget_user(self, user_id: int) -> None:
        """Delete a user, as an admin can: their tickets still name them as requester."""
        with self._lock:
            self.users.pop(user_id, None)

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """The ticket's internal notes (private comments), oldest first."""
        with self._lock:
            return [c for c in self.tickets[ticket_id].comments if c["public"] is False]

    # --- the trigger's webhook ---------------------------------------------------------------

    def delivery(
        self,
        ticket_id: int,
        *,
        secret: str | None = None,
        at: datetime | None = None,
        invocation_id: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of the webhook our trigger sends for a new ticket, signed by Zendesk."""
        with self._lock:
            ticket = self.tickets[ticket_id]
            first = ticket.comments[0]["body"]
            values = {
                "{{ticket.id}}": str(ticket.id),
                "{{ticket.title}}": ticket.subject,
                # Zendesk's description: a rule, the author and date, then the first comment.
                "{{ticket.description}}": f"{'-' * 46}\n\n{ticket.requester_name}, "
                f"{ticket.created_at}\n\n{first}",
                "{{ticket.requester.email}}": ticket.requester_email or "",
            }
        body = json.dumps(rules.fill(TRIGGER_BODY, values)).encode()
        stamp = timestamp(at)
        headers = {
            "Content-Type": "application/json",
            "X-Zendesk-Account-Id": "123456",
            "X-Zendesk-Webhook-Id": "01HCHARGEDESKWEBHOOK00000",
            "X-Zendesk-Webhook-Invocation-Id": invocation_id or str(secrets.randbelow(10**10)),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": sign(secret or self.webhook_secret, stamp, body),
        }
        return body, headers

    # --- the API -----------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        return [
            ("/api/v2/tickets/{ticket_id:int}", "PUT", self._update, True),
            ("/api/v2/tickets/{ticket_id:int}.json", "GET", self._show, True),
            ("/api/v2/tickets/{ticket_id:int}/comments", "GET", self._comments, True),
            ("/api/v2/users/{user_id:int}.json", "GET", self._user, True),
        ]

    def authorized(self, request: Request) -> bool:
        """API token auth: Basic `{email}/token:{token}`."""
        given = rules.basic(request)
        expected = (f"{self.email}/token", self.api_token)
        return given is not None and all(
            hmac.compare_digest(a.encode(), b.encode())
            for a, b in zip(given, expected, strict=True)
        )

    def unauthorized(self) -> Answer:
        return Answer(401, {"error": "Couldn't authenticate you"})

    def failure(self, status: int) -> Answer:
        if status == 429:
            return Answer(429, {"error": "APIRateLimitExceeded"}, {"Retry-After": "1"})
        return Answer(status, {"error": "InternalError", "description": "emulated failure"})

    def _ticket(self, request: Request) -> Ticket:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            raise ApiError(404, {"error": "RecordNotFound", "description": "Not found"})
        return ticket

    def _user(self, request: Request, body: bytes) -> Answer:
        user = self.users.get(request.path_params["user_id"])
        if user is None:
            raise ApiError(404, {"error": "RecordNotFound", "description": "Not found"})
        answer = {"user": dict(user)}
        self.problems += schema_problems("UserResponse", answer)
        return Answer(200, answer)

    def _show(self, request: Request, body: bytes) -> Answer:
        ticket = self._ticket(request)
        first = ticket.comments[0]
        # Zendesk's nulls (type, priority, assignee_id...) are left out: the OAS does not
        # declare them nullable.
        shown = {
            "id": ticket.id, "url": f"{self.base_url}/api/v2/tickets/{ticket.id}.json",
            "subject": ticket.subject, "raw_subject": ticket.subject,
            "description": first["plain_body"], "status": "new", "tags": [],
            "requester_id": ticket.requester_id, "submitter_id": ticket.requester_id,
            "is_public": True, "has_incidents": False, "via": {"channel": "email"},
            "created_at": ticket.created_at, "updated_at": timestamp(),
        }  # fmt: skip
        answer = {"ticket": shown}
        self.problems += schema_problems("TicketResponse", answer)
        return Answer(200, answer)

    def _update(self, request: Request, body: bytes) -> Answer:
        ticket = self._ticket(request)
        payload = json_body(body)
        self.problems += schema_problems("TicketUpdateRequest", payload)
        comment = payloads_comment(payload)
        if comment is None:
            raise ApiError(
                422, {"error": "RecordInvalid", "description": "Record validation errors"}
            )
        stored = self._comment(
            comment.get("body"), markup=comment.get("html_body"),
            public=comment.get("public", True) is not False, author=AGENT_ID,
        )  # fmt: skip
        ticket.comments.append(stored)
        audit = {
            "id": stored["audit_id"], "ticket_id": ticket.id, "author_id": AGENT_ID,
            "created_at": stored["created_at"], "metadata": {},
            "events": [{"id": stored["id"], "type": "Comment", "body": stored["body"]}],
        }  # fmt: skip
        self.problems += schema_problems("AuditObject", audit)
        return Answer(200, {"ticket": {"id": ticket.id, "subject": ticket.subject}, "audit": audit})

    def _comments(self, request: Request, body: bytes) -> Answer:
        ticket = self._ticket(request)
        comments = list(ticket.comments)
        order = request.query_params.get("sort_order", "asc")
        if order == "desc":
            comments.reverse()
        per_page = min(int(request.query_params.get("per_page", "100")), 100)
        page = int(request.query_params.get("page", "1"))
        shown = comments[(page - 1) * per_page : page * per_page]
        url = f"{self.base_url}{request.url.path}?sort_order={order}&per_page={per_page}&page="
        answer = {
            "comments": shown,
            "next_page": f"{url}{page + 1}" if len(comments) > page * per_page else None,
            "previous_page": f"{url}{page - 1}" if page > 1 else None,
            "count": len(comments),
        }
        self.problems += schema_problems("TicketCommentsResponse", answer)
        return Answer(200, answer)

    def _comment(
        self, body: str | None, *, markup: str | None, public: bool, author: int
    ) -> dict[str, Any]:
        plain = body if body is not None else rules.plain(markup or "")
        comment = {
            "id": next(self._ids), "type": "Comment", "author_id": author, "body": plain,
            "html_body": markup if markup is not None else f"<p>{html.escape(plain)}</p>",
            "plain_body": plain, "public": public, "attachments": [],
            "audit_id": next(self._ids), "created_at": timestamp(), "metadata": {},
            "via": {"channel": "api" if author == AGENT_ID else "email", "source": {}},
        }  # fmt: skip
        self.problems += schema_problems("TicketCommentObject", comment)
        return comment


def payloads_comment(payload: Any) -> dict[str, Any] | None:
    """The comment of a ticket update, if it has a body (Zendesk refuses an empty one)."""
    ticket = payload.get("ticket") if isinstance(payload, dict) else None
    comment = ticket.get("comment") if isinstance(ticket, dict) else None
    if isinstance(comment, dict) and (comment.get("body") or comment.get("html_body")):
        return comment
    return None


@contextmanager
def zendesk_api(**options: Any) -> Iterator[ZendeskEmulator]:
    """Run the emulator on 127.0.0.1 with a free port, in a background thread."""
    emulator = ZendeskEmulator(**options)
    with serving(emulator.app(), "Zendesk emulator") as url:
        emulator.base_url = url
        yield emulator


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Zendesk until interrupted; prints the settings that point the bot at it."""
    emulator = ZendeskEmulator()

    def started(url: str) -> list[str]:
        emulator.base_url = url
        return [
            f"agent {emulator.email}, API token {emulator.api_token}, "
            f"webhook signing secret {emulator.webhook_secret}",
            f"Settings: CHARGEDESK_HELPDESK__ZENDESK__BASE_URL={url} "
            f"CHARGEDESK_HELPDESK__ZENDESK__EMAIL={emulator.email} "
            f"CHARGEDESK_HELPDESK__ZENDESK__API_TOKEN={emulator.api_token} "
            f"CHARGEDESK_HELPDESK__ZENDESK__WEBHOOK_SECRET={emulator.webhook_secret}",
        ]

    command_line("Zendesk", emulator.app(), started, argv)


if __name__ == "__main__":
    main()
