"""An HTTP-level Help Scout emulator on 127.0.0.1:0: the Mailbox API 2.0 notes, and webhooks.

It follows Help Scout's public reference (developer.helpscout.com/mailbox-api/) for what
the billing note needs: OAuth2 client credentials (`POST /v2/oauth2/token`, a bearer
token valid `expires_in` seconds), Create Note (`POST /v2/conversations/{id}/notes`
`{"text"}`: 201, no body, the thread ID in `Resource-ID` and `Location`) and List Threads
(`GET /v2/conversations/{id}/threads`: HAL JSON, newest first, paged by `page`). Requests
without a live token get 401; errors carry Help Scout's vnd.error body (`logRef`,
`message`, `_embedded.errors[]`).

It also signs deliveries exactly as Help Scout does: webhooks and dynamic-app requests
carry `X-HelpScout-Signature`, the base64 HMAC-SHA1 of the raw body with the secret key
(`signature`, `webhook`, `sidebar_request`).

State is seeded through Python (`add_conversation`), never over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from chargedesk_emulators.helpdesks import (
    Answer,
    ApiError,
    Handler,
    HelpdeskEmulator,
    Json,
    command,
    json_body,
    running,
)


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def signature(body: bytes, secret_key: str) -> str:
    """`X-HelpScout-Signature`: base64 HMAC-SHA1 of the raw body with the secret key."""
    return base64.b64encode(hmac.new(secret_key.encode(), body, hashlib.sha1).digest()).decode()


def vnd_error(status: int, message: str, errors: list[Json] | None = None) -> ApiError:
    body: Json = {"logRef": secrets.token_hex(8), "message": message}
    if errors:
        body["_embedded"] = {"errors": errors}
    return ApiError(status, body)


@dataclass
class Thread:
    id: int
    type: str  # customer | note | reply ...
    body: str
    created_by: Json
    created_at: str = field(default_factory=stamp)


@dataclass
class Conversation:
    id: int
    number: int
    mailbox_id: int
    subject: str
    customer: Json
    threads: list[Thread] = field(default_factory=list)
    created_at: str = field(default_factory=stamp)


class HelpScoutEmulator(HelpdeskEmulator):
    """Help Scout's Mailbox API 2.0 (notes and threads), stateful, in memory."""

    name = "Help Scout"

    def __init__(
        self,
        *,
        app_id: str = "chargedesk-helpscout-app",
        app_secret: str = "chargedesk-helpscout-secret",
        secret_key: str = "chargedesk-helpscout-key",
        token_ttl: float = 172800,
        page_size: int = 25,
        user_id: int = 4242,
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.secret_key = secret_key
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.user = {"id": user_id, "type": "user", "first": "Charge", "last": "Desk",
                     "email": "chargedesk@example.com"}  # fmt: skip
        self.tokens_issued = 0
        self.conversations: dict[int, Conversation] = {}
        self._tokens: dict[str, float] = {}
        self._ids = itertools.count(10_000_001)

    # --- seeding and switches ----------------------------------------------------------

    def add_conversation(
        self,
        email: str = "jane.doe@example.com",
        subject: str = "Question about my invoice",
        text: str = "Hello, I was charged twice.",
        *,
        first: str = "Jane",
        last: str = "Doe",
    ) -> int:
        with self._lock:
            conversation_id = next(self._ids)
            customer = {"id": next(self._ids), "type": "customer", "first": first, "last": last,
                        "email": email}  # fmt: skip
            conversation = Conversation(
                id=conversation_id,
                number=len(self.conversations) + 1,
                mailbox_id=1,
                subject=subject,
                customer=customer,
            )
            conversation.threads.append(
                Thread(
                    id=next(self._ids), type="customer", body=f"<p>{text}</p>", created_by=customer
                )
            )
            self.conversations[conversation_id] = conversation
            return conversation_id

    def notes(self, conversation_id: int) -> list[Thread]:
        with self._lock:
            return [t for t in self.conversations[conversation_id].threads if t.type == "note"]

    def revoke_tokens(self) -> None:
        """Forget every issued token, as when Help Scout revokes them (the API answers 401)."""
        with self._lock:
            self._tokens.clear()

    # --- deliveries, signed as Help Scout signs them -----------------------------------

    def conversation_object(self, conversation_id: int) -> Json:
        """A conversation as the v2 API and `convo.*` webhooks carry it."""
        c = self.conversations[conversation_id]
        return {
            "id": c.id, "number": c.number, "threads": len(c.threads), "type": "email",
            "folderId": 1, "status": "active", "state": "published", "subject": c.subject,
            "preview": c.threads[0].body.removeprefix("<p>").removesuffix("</p>")[:255],
            "mailboxId": c.mailbox_id, "createdBy": c.customer, "createdAt": c.created_at,
            "primaryCustomer": c.customer, "customerWaitingSince": {"time": c.created_at},
            "source": {"type": "email", "via": "customer"}, "tags": [], "cc": [], "bcc": [],
            "_embedded": {"threads": [self._thread(t) for t in reversed(c.threads)]},
        }  # fmt: skip

    def webhook(
        self, conversation_id: int, event: str = "convo.created", *, secret_key: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """A webhook delivery (body, headers) for one conversation, signed with the secret key."""
        body = json.dumps(self.conversation_object(conversation_id)).encode()
        return body, self.headers(body, event=event, secret_key=secret_key)

    def sidebar_request(
        self, customer: Json, *, ticket: Json | None = None, secret_key: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """What a legacy dynamic app receives when an agent opens a conversation."""
        payload = {
            "ticket": ticket or {"id": 1, "number": 1, "subject": "Billing question"},
            "customer": customer,
            "user": {"fname": "Alex", "lname": "Agent", "id": self.user["id"], "role": "user",
                     "convRedirect": 0},
            "mailbox": {"id": 1, "email": "support@example.com"},
        }  # fmt: skip
        body = json.dumps(payload).encode()
        return body, self.headers(body, secret_key=secret_key)

    def headers(
        self, body: bytes, *, event: str | None = None, secret_key: str | None = None
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "X-HelpScout-Signature": signature(body, secret_key or self.secret_key),
        }
        if event:
            headers["X-HelpScout-Event"] = event
        return headers

    def banner(self) -> list[str]:
        return [
            f"app id {self.app_id}, app secret {self.app_secret}, secret key {self.secret_key}",
            f"Try: CHARGEDESK_HELPDESK__HELPSCOUT__APP_ID={self.app_id} "
            f"CHARGEDESK_HELPDESK__HELPSCOUT__APP_SECRET={self.app_secret} "
            f"CHARGEDESK_HELPDESK__HELPSCOUT__SECRET_KEY={self.secret_key} "
            f"CHARGEDESK_HELPDESK__HELPSCOUT__BASE_URL={self.base_url} chargedesk serve",
        ]

    # --- the API ------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        return [
            ("/v2/oauth2/token", "POST", self._token, False),
            ("/v2/conversations/{id}/notes", "POST", self._create_note, True),
            ("/v2/conversations/{id}/threads", "GET", self._list_threads, True),
        ]

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        expires = (
            self._tokens.get(header.removeprefix("Bearer "))
            if header.startswith("Bearer ")
            else None
        )
        return expires is not None and expires > time.monotonic()

    def unauthorized(self) -> Answer:
        return vnd_error(401, "Unauthorized").answer

    def failure(self, status: int) -> Answer:
        message = {429: "Too Many Requests", 503: "Service Unavailable"}.get(
            status, "Internal Server Error"
        )
        answer = vnd_error(status, message).answer
        if status == 429:
            answer.headers.update({"X-RateLimit-Retry-After": "1", "Retry-After": "1"})
        return answer

    def _token(self, request: Request, body: bytes) -> Answer:
        given = json_body(body)
        if not isinstance(given, dict):  # Help Scout also takes the form and query encodings
            given = dict(parse_qsl(body.decode(errors="replace"))) or dict(request.query_params)
        if given.get("grant_type") != "client_credentials":
            return Answer(400, {"error": "unsupported_grant_type"})
        if not (
            hmac.compare_digest(str(given.get("client_id", "")), self.app_id)
            and hmac.compare_digest(str(given.get("client_secret", "")), self.app_secret)
        ):
            return Answer(401, {"error": "invalid_client", "error_description": "Bad credentials"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        return Answer(200, {"token_type": "bearer", "access_token": token,
                            "expires_in": int(self.token_ttl)})  # fmt: skip

    def _conversation(self, request: Request) -> Conversation:
        raw = request.path_params["id"]
        conversation = self.conversations.get(int(raw)) if raw.isdigit() else None
        if conversation is None:
            raise vnd_error(404, "Not Found")
        return conversation

    def _create_note(self, request: Request, body: bytes) -> Answer:
        conversation = self._conversation(request)
        given = json_body(body)
        text = given.get("text") if isinstance(given, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise vnd_error(400, "Bad request", [{"path": "text", "message": "may not be empty",
                                                   "rejectedValue": text, "source": "JSON"}])  # fmt: skip
        thread = Thread(id=next(self._ids), type="note", body=text, created_by=self.user)
        conversation.threads.append(thread)
        location = f"{self.base_url}/v2/conversations/{conversation.id}/threads/{thread.id}"
        return Answer(201, None, {"Resource-ID": str(thread.id), "Location": location})

    def _list_threads(self, request: Request, body: bytes) -> Answer:
        conversation = self._conversation(request)
        raw = request.query_params.get("page", "1")
        page = int(raw) if raw.isdigit() and int(raw) > 0 else 1
        threads = list(reversed(conversation.threads))  # newest first
        total_pages = max(1, -(-len(threads) // self.page_size))
        shown = threads[(page - 1) * self.page_size : page * self.page_size]
        path = f"{self.base_url}/v2/conversations/{conversation.id}/threads"
        links: Json = {"self": {"href": f"{path}?page={page}"}, "first": {"href": f"{path}?page=1"},
                       "last": {"href": f"{path}?page={total_pages}"}}  # fmt: skip
        if page < total_pages:
            links["next"] = {"href": f"{path}?page={page + 1}"}
        return Answer(200, {
            "_embedded": {"threads": [self._thread(t) for t in shown]},
            "_links": links,
            "page": {"size": self.page_size, "totalElements": len(threads),
                     "totalPages": total_pages, "number": page},
        })  # fmt: skip

    @staticmethod
    def _thread(thread: Thread) -> Json:
        return {
            "id": thread.id, "type": thread.type, "status": "active", "state": "published",
            "body": thread.body, "source": {"type": "api" if thread.type == "note" else "email",
                                            "via": "user" if thread.type == "note" else "customer"},
            "createdBy": thread.created_by, "createdAt": thread.created_at,
            "_embedded": {"attachments": []},
        }  # fmt: skip


@contextmanager
def helpscout_api(**options: Any) -> Iterator[HelpScoutEmulator]:
    """Run a Help Scout emulator on 127.0.0.1 with a free port, in a background thread."""
    with running(HelpScoutEmulator(**options)) as emulator:
        yield emulator


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Help Scout until interrupted; prints the settings that point the bot at it."""
    command(HelpScoutEmulator(), argv)


if __name__ == "__main__":
    main()
