"""An HTTP-level Front emulator on 127.0.0.1:0: comments on conversations, and app webhooks.

It follows Front's Core API reference (dev.frontapp.com/reference) for what the billing
note needs: Add comment (`POST /conversations/{id}/comments` `{"body", "author_id"?}`:
201 and the comment) and List conversation comments (`GET /conversations/{id}/comments`:
`_results`, newest first, `_pagination.next` carrying a `page_token`). Every call needs
the API token as a bearer; errors are Front's `{"_error": {"status", "title", "message"}}`,
429 with `Retry-After`.

It also sends application webhooks as Front does: `X-Front-Signature`, the base64
HMAC-SHA256 of `<X-Front-Request-Timestamp>:<raw body>` with the app's secret, the
timestamp in milliseconds, the full event in `payload`, and the signed `sync` request
with `X-Front-Challenge` that Front sends when the webhook is saved.

State is seeded through Python (`add_conversation`, `add_teammate`), never over HTTP.
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
from typing import Any

from starlette.requests import Request

from chargedesk_emulators.helpdesks import (
    Answer,
    ApiError,
    Handler,
    HelpdeskEmulator,
    Json,
    command,
    has_bearer,
    json_body,
    running,
)

PAGE_LIMIT = 50  # Front's default page size; `limit` asks for fewer, 100 at most


def signature(body: bytes, timestamp: str, app_secret: str) -> str:
    """`X-Front-Signature`: base64 HMAC-SHA256 of `timestamp:body` with the app secret."""
    message = timestamp.encode() + b":" + body
    return base64.b64encode(
        hmac.new(app_secret.encode(), message, hashlib.sha256).digest()
    ).decode()


def error(status: int, title: str, message: str) -> ApiError:
    return ApiError(status, {"_error": {"status": status, "title": title, "message": message}})


@dataclass
class Comment:
    id: str
    body: str
    author: Json
    posted_at: float = field(default_factory=time.time)


@dataclass
class Conversation:
    id: str
    subject: str
    sender: str
    message_id: str
    text: str
    comments: list[Comment] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)


class FrontEmulator(HelpdeskEmulator):
    """Front's conversations and comments, stateful, in memory."""

    name = "Front"

    def __init__(
        self,
        *,
        api_token: str = "chargedesk-front-token",
        app_secret: str = "chargedesk-front-app-secret",
        company_id: str = "cmp_chd1",
    ) -> None:
        super().__init__()
        self.api_token = api_token
        self.app_secret = app_secret
        self.company_id = company_id
        self.teammates: dict[str, Json] = {}
        self.bot = self._teammate("tea_bot1", "API bot", "api-bot@example.com", is_bot=True)
        self.conversations: dict[str, Conversation] = {}
        self._ids = itertools.count(1001)

    # --- seeding ------------------------------------------------------------------------

    def _teammate(self, teammate_id: str, name: str, email: str, *, is_bot: bool = False) -> Json:
        first, _, last = name.partition(" ")
        teammate = {
            "_links": {"self": f"{self.base_url}/teammates/{teammate_id}"},
            "id": teammate_id, "email": email, "username": email.split("@")[0],
            "first_name": first, "last_name": last, "is_admin": False, "is_available": True,
            "is_blocked": False, "type": "user" if not is_bot else "visitor",
            "custom_fields": {},
        }  # fmt: skip
        self.teammates[teammate_id] = teammate
        return teammate

    def add_teammate(self, name: str = "Alex Agent", email: str = "alex@example.com") -> str:
        with self._lock:
            teammate_id = f"tea_{next(self._ids):x}"
            self._teammate(teammate_id, name, email)
            return teammate_id

    def add_conversation(
        self,
        email: str = "jane.doe@example.com",
        subject: str = "Question about my invoice",
        text: str = "Hello, I was charged twice.",
    ) -> str:
        with self._lock:
            conversation_id = f"cnv_{next(self._ids):x}"
            self.conversations[conversation_id] = Conversation(
                id=conversation_id, subject=subject, sender=email,
                message_id=f"msg_{next(self._ids):x}", text=text,
            )  # fmt: skip
            return conversation_id

    def comments(self, conversation_id: str) -> list[Comment]:
        with self._lock:
            return list(self.conversations[conversation_id].comments)

    # --- application webhooks, signed as Front signs them -------------------------------

    def event(self, conversation_id: str, kind: str = "inbound_received") -> Json:
        """An application webhook body: the event type, the company, the full event."""
        c = self.conversations[conversation_id]
        message = {
            "_links": {"self": f"{self.base_url}/messages/{c.message_id}"},
            "id": c.message_id, "type": "email", "is_inbound": True, "is_draft": False,
            "created_at": c.created_at, "blurb": c.text[:100], "subject": c.subject,
            "author": None, "body": f"<div>{c.text}</div>", "text": c.text,
            "recipients": [
                {"_links": {"related": {"contact": None}}, "handle": c.sender, "role": "from"},
                {"_links": {"related": {"contact": None}}, "handle": "support@example.com",
                 "role": "to"},
            ],
            "attachments": [], "metadata": {},
        }  # fmt: skip
        return {
            "type": kind,
            "authorization": {"id": self.company_id},
            "payload": {
                "_links": {"self": f"{self.base_url}/events/evt_{next(self._ids):x}"},
                "id": f"evt_{next(self._ids):x}",
                "type": {"inbound_received": "inbound", "outbound_sent": "outbound"}.get(kind, kind),
                "emitted_at": time.time(),
                "conversation": {
                    "_links": {"self": f"{self.base_url}/conversations/{c.id}"},
                    "id": c.id, "subject": c.subject, "status": "unassigned",
                    "created_at": c.created_at, "is_private": False,
                },
                "source": {"_meta": {"type": "inboxes"}, "data": []},
                "target": {"_meta": {"type": "message"}, "data": message},
            },
        }  # fmt: skip

    def webhook(
        self,
        conversation_id: str,
        kind: str = "inbound_received",
        *,
        timestamp_ms: int | None = None,
        app_secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(self.event(conversation_id, kind)).encode()
        return body, self.headers(body, timestamp_ms=timestamp_ms, app_secret=app_secret)

    def challenge(self, *, app_secret: str | None = None) -> tuple[bytes, dict[str, str], str]:
        """The validation request Front sends when the webhook is saved: body, headers, challenge."""
        body = json.dumps({"type": "sync", "authorization": {"id": self.company_id}}).encode()
        value = secrets.token_urlsafe(18)
        headers = self.headers(body, app_secret=app_secret) | {"X-Front-Challenge": value}
        return body, headers, value

    def headers(
        self, body: bytes, *, timestamp_ms: int | None = None, app_secret: str | None = None
    ) -> dict[str, str]:
        stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        return {
            "Content-Type": "application/json",
            "X-Front-Request-Timestamp": stamp,
            "X-Front-Signature": signature(body, stamp, app_secret or self.app_secret),
        }

    def banner(self) -> list[str]:
        return [
            f"api token {self.api_token}, app secret {self.app_secret}",
            f"Try: CHARGEDESK_HELPDESK__FRONT__API_TOKEN={self.api_token} "
            f"CHARGEDESK_HELPDESK__FRONT__APP_SECRET={self.app_secret} "
            f"CHARGEDESK_HELPDESK__FRONT__BASE_URL={self.base_url} chargedesk serve",
        ]

    # --- the API ------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        return [
            ("/conversations/{id}/comments", "POST", self._add_comment, True),
            ("/conversations/{id}/comments", "GET", self._list_comments, True),
        ]

    def authorized(self, request: Request) -> bool:
        return has_bearer(request, self.api_token)

    def unauthorized(self) -> Answer:
        return error(401, "Unauthenticated", "Invalid token").answer

    def failure(self, status: int) -> Answer:
        if status == 429:
            answer = error(429, "Too Many Requests", "Rate limit exceeded").answer
            answer.headers.update({"Retry-After": "1", "X-RateLimit-Limit": "50",
                                   "X-RateLimit-Remaining": "0"})  # fmt: skip
            return answer
        if status == 403:
            return error(403, "Forbidden", "You are not allowed to access this resource").answer
        return error(status, "Internal Server Error", "Something went wrong").answer

    def _conversation(self, request: Request) -> Conversation:
        conversation = self.conversations.get(request.path_params["id"])
        if conversation is None:
            raise error(404, "Not found", "Unknown conversation")
        return conversation

    def _comment(self, conversation: Conversation, comment: Comment) -> Json:
        link = f"{self.base_url}/comments/{comment.id}"
        return {
            "_links": {"self": link, "related": {
                "conversation": f"{self.base_url}/conversations/{conversation.id}",
                "mentions": f"{link}/mentions"}},
            "id": comment.id, "author": comment.author, "body": comment.body,
            "posted_at": comment.posted_at, "attachments": [], "is_pinned": False,
        }  # fmt: skip

    def _add_comment(self, request: Request, body: bytes) -> Answer:
        conversation = self._conversation(request)
        given = json_body(body)
        if (
            not isinstance(given, dict)
            or not isinstance(given.get("body"), str)
            or not given["body"]
        ):
            raise error(400, "Bad request", "body is required")
        author = self.bot
        if given.get("author_id") is not None:
            author = self.teammates.get(str(given["author_id"]))
            if author is None:
                raise error(404, "Not found", "Unknown teammate")
        comment = Comment(id=f"com_{next(self._ids):x}", body=given["body"], author=author)
        conversation.comments.append(comment)
        return Answer(201, self._comment(conversation, comment))

    def _list_comments(self, request: Request, body: bytes) -> Answer:
        conversation = self._conversation(request)
        raw_limit = request.query_params.get("limit", str(PAGE_LIMIT))
        limit = min(100, max(1, int(raw_limit))) if raw_limit.isdigit() else PAGE_LIMIT
        token = request.query_params.get("page_token", "0")
        start = int(token) if token.isdigit() else 0
        newest_first = list(reversed(conversation.comments))
        shown = newest_first[start : start + limit]
        path = f"{self.base_url}/conversations/{conversation.id}/comments"
        following = (
            f"{path}?limit={limit}&page_token={start + limit}"
            if start + limit < len(newest_first)
            else None
        )
        return Answer(200, {"_pagination": {"next": following}, "_links": {"self": path},
                            "_results": [self._comment(conversation, c) for c in shown]})  # fmt: skip


@contextmanager
def front_api(**options: Any) -> Iterator[FrontEmulator]:
    """Run a Front emulator on 127.0.0.1 with a free port, in a background thread."""
    with running(FrontEmulator(**options)) as emulator:
        yield emulator


def main(argv: list[str] | None = None) -> None:
    """Serve an empty Front until interrupted; prints the settings that point the bot at it."""
    command(FrontEmulator(), argv)


if __name__ == "__main__":
    main()
