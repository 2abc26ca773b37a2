"""An HTTP-level Intercom emulator on 127.0.0.1:0: admin notes on conversations, and webhooks.

It serves what the billing note needs from Intercom's REST API, shaped as Intercom's
published 2.16 description (data/intercom/conversations_notes.json, pruned from
Intercom-OpenAPI, MIT): `GET /me`, `GET /conversations/{id}` (the conversation with its
parts, the 500 most recent) and `POST /conversations/{id}/reply` (a note from an admin:
`{"message_type": "note", "type": "admin", "admin_id", "body"}`). Every call needs the
access token as a bearer (401 `error.list` otherwise); errors are Intercom's
`{"type": "error.list", "request_id", "errors": [{"code", "message"}]}`.
`schema_problems` checks recorded exchanges against the description.

It also sends webhook notifications as Intercom does: a `notification_event` envelope
signed with the app's client secret, `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>`.

State is seeded through Python (`add_conversation`), never over HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from starlette.requests import Request

from chargedesk_emulators.helpdesks import (
    Answer,
    ApiError,
    Exchange,
    Handler,
    HelpdeskEmulator,
    Json,
    command,
    has_bearer,
    json_body,
    running,
)

DESCRIPTION = Path(__file__).resolve().parent / "data" / "intercom" / "conversations_notes.json"
SERVER = "https://api.intercom.io"
MAX_PARTS = 500


def signature(body: bytes, client_secret: str) -> str:
    """`X-Hub-Signature`: `sha1=` and the hex HMAC-SHA1 of the raw body with the client secret."""
    return "sha1=" + hmac.new(client_secret.encode(), body, hashlib.sha1).hexdigest()


def error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, {"type": "error.list", "request_id": str(uuid.uuid4()),
                             "errors": [{"code": code, "message": message}]})  # fmt: skip


@dataclass
class Part:
    id: str
    part_type: str
    body: str | None
    author: Json
    created_at: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Conversation:
    id: str
    contact: Json
    subject: str
    body: str
    created_at: int = field(default_factory=lambda: int(time.time()))
    parts: list[Part] = field(default_factory=list)


class IntercomEmulator(HelpdeskEmulator):
    """Intercom's conversations and notes, stateful, in memory."""

    name = "Intercom"

    def __init__(
        self,
        *,
        access_token: str = "chargedesk-intercom-token",
        client_secret: str = "chargedesk-intercom-client-secret",
        admin_id: str = "991267001",
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.client_secret = client_secret
        self.admins: dict[str, Json] = {
            admin_id: {"type": "admin", "id": admin_id, "name": "ChargeDesk Bot",
                       "email": "chargedesk@example.com"},
        }  # fmt: skip
        self.me = admin_id
        self.conversations: dict[str, Conversation] = {}
        self._ids = itertools.count(700_001)

    # --- seeding ------------------------------------------------------------------------

    def add_admin(self, name: str = "Alex Agent", email: str = "alex@example.com") -> str:
        with self._lock:
            admin_id = str(next(self._ids))
            self.admins[admin_id] = {"type": "admin", "id": admin_id, "name": name, "email": email}
            return admin_id

    def add_conversation(
        self,
        email: str = "jane.doe@example.com",
        subject: str = "",
        body: str = "<p>Hello, I was charged twice.</p>",
        *,
        name: str = "Jane Doe",
        contact_type: str = "user",
    ) -> str:
        with self._lock:
            conversation_id = str(next(self._ids))
            contact = {"type": contact_type, "id": uuid.uuid4().hex[:24], "name": name,
                       "email": email}  # fmt: skip
            self.conversations[conversation_id] = Conversation(
                id=conversation_id, contact=contact, subject=subject, body=body
            )
            return conversation_id

    def notes(self, conversation_id: str) -> list[Part]:
        with self._lock:
            return [p for p in self.conversations[conversation_id].parts if p.part_type == "note"]

    # --- notifications, signed as Intercom signs them -----------------------------------

    def notification(
        self,
        conversation_id: str,
        topic: str = "conversation.user.created",
        *,
        created_at: int | None = None,
        client_secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A webhook notification (body, headers) about one conversation."""
        sent = int(time.time()) if created_at is None else created_at
        body = json.dumps({
            "type": "notification_event", "app_id": "chargedesk1",
            "data": {"type": "notification_event_data",
                     "item": self.conversation_object(self.conversations[conversation_id])},
            "links": {}, "id": f"notif_{uuid.uuid4()}", "topic": topic,
            "delivery_status": "pending", "delivery_attempts": 1, "delivered_at": 0,
            "first_sent_at": sent, "created_at": sent, "self": None,
        }).encode()  # fmt: skip
        return body, self.headers(body, client_secret=client_secret)

    def ping(self) -> tuple[bytes, dict[str, str]]:
        """The `ping` notification Intercom sends when a webhook is saved or tested."""
        body = json.dumps({"type": "notification_event", "topic": "ping", "id": f"notif_{uuid.uuid4()}",
                           "created_at": int(time.time()), "data": {"item": {"type": "ping",
                           "message": "Hello from Intercom"}}}).encode()  # fmt: skip
        return body, self.headers(body)

    def headers(self, body: bytes, *, client_secret: str | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Hub-Signature": signature(body, client_secret or self.client_secret),
        }

    def conversation_object(self, c: Conversation) -> Json:
        parts = c.parts[-MAX_PARTS:]
        return {
            "type": "conversation", "id": c.id, "created_at": c.created_at,
            "updated_at": max([c.created_at, *(p.created_at for p in parts)]),
            "waiting_since": c.created_at, "snoozed_until": None, "open": True, "state": "open",
            "read": False, "priority": "none", "title": None,
            "source": {"type": "conversation", "id": str(int(c.id) + 1_000_000),
                       "delivered_as": "customer_initiated", "subject": c.subject, "body": c.body,
                       "author": c.contact, "attachments": [], "url": None, "redacted": False},
            "contacts": {"type": "contact.list", "contacts": [
                {"type": "contact", "id": c.contact["id"], "external_id": None}]},
            "tags": {"type": "tag.list", "tags": []}, "custom_attributes": {},
            "conversation_parts": {"type": "conversation_part.list",
                                   "conversation_parts": [self._part(p) for p in parts],
                                   "total_count": len(c.parts)},
            "ai_agent_participated": False,
        }  # fmt: skip

    @staticmethod
    def _part(p: Part) -> Json:
        return {
            "type": "conversation_part", "id": p.id, "part_type": p.part_type, "body": p.body,
            "created_at": p.created_at, "updated_at": p.created_at, "notified_at": p.created_at,
            "author": p.author, "attachments": [], "external_id": None,
            "redacted": False, "metadata": {}, "app_package_code": None,
        }  # fmt: skip

    def banner(self) -> list[str]:
        return [
            f"access token {self.access_token}, client secret {self.client_secret}, admin {self.me}",
            f"Try: CHARGEDESK_HELPDESK__INTERCOM__ACCESS_TOKEN={self.access_token} "
            f"CHARGEDESK_HELPDESK__INTERCOM__CLIENT_SECRET={self.client_secret} "
            f"CHARGEDESK_HELPDESK__INTERCOM__BASE_URL={self.base_url} chargedesk serve",
        ]

    # --- the API ------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        return [
            ("/me", "GET", self._me, True),
            ("/conversations/{id}", "GET", self._get_conversation, True),
            ("/conversations/{id}/reply", "POST", self._reply, True),
        ]

    def authorized(self, request: Request) -> bool:
        return has_bearer(request, self.access_token)

    def unauthorized(self) -> Answer:
        return error(401, "unauthorized", "Access Token Invalid").answer

    def failure(self, status: int) -> Answer:
        if status == 429:
            answer = error(
                429, "rate_limit_exceeded", "Exceeded rate limit of 1000 in 10_seconds"
            ).answer
            answer.headers.update({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0",
                                   "X-RateLimit-Reset": str(int(time.time()) + 10)})  # fmt: skip
            return answer
        if status == 403:
            return error(403, "api_plan_restricted", "Active subscription needed.").answer
        return error(status, "server_error", "Server Error").answer

    def _me(self, request: Request, body: bytes) -> Answer:
        admin = self.admins[self.me]
        return Answer(200, {**admin, "email_verified": True, "has_inbox_seat": True,
                            "app": {"type": "app", "id_code": "chargedesk1", "name": "ChargeDesk test",
                                    "created_at": 1734537243, "secure": False,
                                    "identity_verification": False, "timezone": "UTC",
                                    "region": "US"},
                            "avatar": {"type": "avatar", "image_url": None}})  # fmt: skip

    def _conversation(self, request: Request) -> Conversation:
        conversation = self.conversations.get(request.path_params["id"])
        if conversation is None:
            raise error(404, "not_found", "Resource Not Found")
        return conversation

    def _get_conversation(self, request: Request, body: bytes) -> Answer:
        return Answer(200, self.conversation_object(self._conversation(request)))

    def _reply(self, request: Request, body: bytes) -> Answer:
        conversation = self._conversation(request)
        given = json_body(body)
        if not isinstance(given, dict):
            raise error(400, "parameter_invalid", "Invalid JSON")
        if given.get("type") != "admin" or given.get("message_type") not in ("comment", "note"):
            raise error(400, "parameter_invalid", "message_type and type are required")
        admin = self.admins.get(str(given.get("admin_id")))
        if admin is None:
            raise error(404, "admin_not_found", "Admin not found")
        text = given.get("body")
        if not isinstance(text, str) or not text.strip():
            raise error(400, "parameter_invalid", "Body is required")
        part = Part(
            id=str(next(self._ids)), part_type=given["message_type"], body=text, author=admin
        )
        conversation.parts.append(part)
        return Answer(200, self.conversation_object(conversation))


@contextmanager
def intercom_api(**options: Any) -> Iterator[IntercomEmulator]:
    """Run an Intercom emulator on 127.0.0.1 with a free port, in a background thread."""
    with running(IntercomEmulator(**options)) as emulator:
        yield emulator


@cache
def description() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(DESCRIPTION.read_text()))


def schema_problems(exchanges: Iterable[Exchange]) -> list[str]:
    """Every request and answer Intercom's published description refuses.

    The description lists no 429 or 5xx answers (Intercom sends them all the same):
    the failures `fail_next` injects are left out.
    """
    problems: list[str] = []
    for exchange in exchanges:
        path = exchange.path
        if exchange.status == 429 or exchange.status >= 500:
            continue
        request = MockRequest(SERVER, exchange.method.lower(), path, args=exchange.query,
                              headers=exchange.headers, data=exchange.body or None,
                              content_type="application/json")  # fmt: skip
        response = MockResponse(exchange.response, status_code=exchange.status,
                                content_type="application/json")  # fmt: skip
        label = f"{exchange.method} {path} -> {exchange.status}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # A request refused for its credentials is one the description forbids: by design.
            for check in ("request", "response") if exchange.status != 401 else ("response",):
                try:
                    if check == "request":
                        description().validate_request(request)
                    else:
                        description().validate_response(request, response)
                except Exception as exc:
                    said = str(exc.__cause__ or exc)
                    if exchange.status == 401 and "Unknown response http status" in said:
                        continue  # `GET /me` documents no 401, though Intercom answers one
                    problems.append(f"{check} {label}: {said}")
    return problems


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Intercom until interrupted; prints the settings that point the bot at it."""
    command(IntercomEmulator(), argv)


if __name__ == "__main__":
    main()
