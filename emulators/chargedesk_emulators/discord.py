"""A fake Discord REST API on 127.0.0.1 that records every request and answers in Discord's shapes.

A Starlette app served by uvicorn in a background thread (port 0), for the real
discord.py HTTP client (`discord.http.Route.BASE` pointed at it). It serves what
ChargeDesk calls: login (`/users/@me`, `/oauth2/applications/@me`), command sync,
interaction callbacks, follow-ups and the original response, channel messages,
threads on messages, and guild roles. Messages may come as `multipart/form-data`
(`payload_json` plus `files[n]`, as discord.py sends attachments): the JSON part
is the body, and each file lands in `files`.

It keeps itself honest against Discord's published OpenAPI description
(data/discord/openapi.json, MIT, see the LICENSE beside it): every request must
name a path and method the description has, and carry the bot token. Messages
are held to Discord's limits (embeds, fields, components); anything wrong lands
in `problems`, which tests assert empty. Answers are `Content-Type:
application/json` exactly: discord.py compares that header literally.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.multipart import parse_form
from chargedesk_emulators.serve import command_line, serving

DATA = Path(__file__).parent / "data" / "discord"
TOKEN = "fake-token"
APPLICATION_ID = "1100000000000000001"
BOT_USER_ID = "1100000000000000002"

# Discord's message limits (discord.com/developers/docs/resources/message#embed-object-embed-limits).
EMBEDS = 10
EMBED_TOTAL = 6000
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
ACTION_ROWS = 5
ROW_BUTTONS = 5
BUTTON_LABEL = 80
CUSTOM_ID = 100
URL = 512
LINK_STYLE = 5
MODAL_TITLE = 45
CONTENT = 2000
FILES = 10  # files[0] to files[9]
CDN = "https://cdn.discordapp.com/attachments"


@dataclass(frozen=True)
class Call:
    """One request the bot made: method, path (as sent), the path template, and the JSON body."""

    method: str
    path: str
    template: str
    body: Any
    answer: Any
    files: tuple[SentFile, ...] = ()
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class SentFile:
    """A file sent with a message: the form part `files[n]` and the attachment it became."""

    index: int
    filename: str
    data: bytes
    attachment_id: str


@cache
def description() -> dict[str, Any]:
    return json.loads((DATA / "openapi.json").read_text())


@cache
def _templates() -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
    found = []
    for path, item in description()["paths"].items():
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path))
        methods = frozenset(m.upper() for m in item if m != "parameters")
        found.append((re.compile(f"^{pattern}$"), path, methods))
    # Literal segments (`@me`, `@original`) win over parameters.
    found.sort(key=lambda t: t[1].count("{"))
    return found


def template_of(method: str, path: str) -> str | None:
    """The OpenAPI path this request matches, or None when Discord has no such endpoint."""
    for pattern, template, methods in _templates():
        if pattern.match(path) and method in methods:
            return template
    return None


def embed_problems(embeds: list[dict[str, Any]]) -> list[str]:
    problems = []
    if len(embeds) > EMBEDS:
        problems.append(f"{len(embeds)} embeds (Discord takes {EMBEDS})")
    total = 0
    for n, embed in enumerate(embeds):
        title, text = embed.get("title") or "", embed.get("description") or ""
        footer = (embed.get("footer") or {}).get("text") or ""
        fields = embed.get("fields") or []
        if len(title) > EMBED_TITLE:
            problems.append(f"embed {n}: title of {len(title)} characters")
        if len(text) > EMBED_DESCRIPTION:
            problems.append(f"embed {n}: description of {len(text)} characters")
        if len(footer) > FOOTER:
            problems.append(f"embed {n}: footer of {len(footer)} characters")
        if len(fields) > EMBED_FIELDS:
            problems.append(f"embed {n}: {len(fields)} fields")
        total += len(title) + len(text) + len(footer)
        for f in fields:
            if not f.get("name") or not f.get("value"):
                problems.append(f"embed {n}: empty field name or value")
            if len(f.get("name", "")) > FIELD_NAME or len(f.get("value", "")) > FIELD_VALUE:
                problems.append(f"embed {n}: field {f.get('name', '')[:20]!r} too long")
            total += len(f.get("name", "")) + len(f.get("value", ""))
    if total > EMBED_TOTAL:
        problems.append(f"{total} characters across embeds (Discord takes {EMBED_TOTAL})")
    return problems


def component_problems(rows: list[dict[str, Any]], *, modal: bool = False) -> list[str]:
    problems = []
    if len(rows) > ACTION_ROWS:
        problems.append(f"{len(rows)} action rows (Discord takes {ACTION_ROWS})")
    ids: list[str] = []
    for row in rows:
        inner = row.get("components", [])
        if row.get("type") != 1 or not inner or len(inner) > ROW_BUTTONS:
            problems.append(f"action row of {len(inner)} components")
        for c in inner:
            if c.get("type") == 2 and c.get("style") == LINK_STYLE:
                # A link button opens its URL: it has one, and no custom_id.
                if not c.get("url") or len(c["url"]) > URL or "custom_id" in c:
                    problems.append(f"link button {c.get('label')!r}: needs a url and no custom_id")
                continue
            custom_id = c.get("custom_id") or ""
            if not custom_id or len(custom_id) > CUSTOM_ID:
                problems.append(f"custom_id {custom_id[:30]!r} of {len(custom_id)} characters")
            ids.append(custom_id)
            if c.get("type") == 2 and len(c.get("label") or "") > BUTTON_LABEL:
                problems.append(f"button label of {len(c['label'])} characters")
            if modal and c.get("type") == 4 and len(c.get("label") or "") > MODAL_TITLE:
                problems.append(f"text input label of {len(c['label'])} characters")
    if len(ids) != len(set(ids)):
        problems.append("duplicate custom_id in one message")
    return problems


def message_problems(body: dict[str, Any]) -> list[str]:
    problems = embed_problems(body.get("embeds") or [])
    problems += component_problems(body.get("components") or [])
    if len(body.get("content") or "") > CONTENT:
        problems.append("content over 2,000 characters")
    return problems


@dataclass
class DiscordAPI:
    """What this fake Discord knows, and every request made to it."""

    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    roles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    limited: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # 429s to come
    attachment_size_limit: int = 10_485_760  # what the interaction payloads in tests announce
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    # --- configuration ---

    def role(self, guild_id: str, role_id: str, name: str) -> None:
        """A role GET /guilds/{guild_id}/roles lists."""
        self.roles.setdefault(guild_id, []).append({
            "id": role_id, "name": name, "color": 0, "colors": {"primary_color": 0}, "hoist": False,
            "position": len(self.roles.get(guild_id, [])) + 1, "permissions": "0", "managed": False,
            "mentionable": False, "flags": 0,
        })  # fmt: skip

    def fail(self, template: str) -> None:
        """Make every later request to this OpenAPI path answer 403 Missing Permissions."""
        self.failing.add(template)

    def rate_limit(
        self, template: str, *, times: int = 1, retry_after: float = 1.0, scope: str = "user"
    ) -> None:
        """Answer the next `times` requests to this path as Discord does past a rate limit:
        429, `Retry-After`, the `X-RateLimit-*` headers (`X-RateLimit-Global` when `scope` is
        global) and `{"message", "retry_after", "global"}`."""
        self.limited.setdefault(template, []).extend([(retry_after, scope)] * times)

    # --- what happened ---

    def of(self, method: str, template: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.template == template]

    async def wait_for(
        self,
        method: str,
        template: str,
        count: int = 1,
        *,
        match: Callable[[Call], bool] | None = None,
        within: float = 10.0,
    ) -> list[Call]:
        """Poll (bounded) until `count` matching requests were recorded."""
        deadline = time.monotonic() + within
        while True:
            found = [c for c in self.of(method, template) if match is None or match(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                with self._lock:
                    seen = ", ".join(f"{c.method} {c.path}" for c in self.calls) or "nothing"
                raise AssertionError(
                    f"waited {within:g} s for {count} {method} {template}, got {len(found)}; saw: {seen}"
                )
            await asyncio.sleep(0.01)

    def callbacks(self, interaction_id: str) -> list[Any]:
        return [c.body for c in self.of("POST", CALLBACK) if c.path.split("/")[2] == interaction_id]

    # --- serving ---

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/api/v10/{path:path}",
                    self._serve,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ]
        )

    def _id(self) -> str:
        return str(1_200_000_000_000_000_000 + next(self._seq))

    async def _serve(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        method = request.method
        raw = await request.body()
        kind = request.headers.get("content-type", "")
        problems: list[str] = []
        files: tuple[SentFile, ...] = ()
        if kind.startswith("multipart/form-data"):
            body, files = self._form(kind, raw, problems)
        else:
            body = json.loads(raw) if raw and "json" in kind else None
        template = template_of(method, path)
        unauthorized = False
        if template is None:
            problems.append(f"{method} {path}: not in Discord's API description")
        elif (
            not template.startswith(("/interactions/", "/webhooks/"))
            and request.headers.get("authorization") != f"Bot {TOKEN}"
        ):
            problems.append(f"{method} {path}: without the bot token")
            unauthorized = True
        if isinstance(body, dict):
            data = body.get("data") if template == CALLBACK else body
            if isinstance(data, dict):
                problems += [f"{method} {path}: {p}" for p in message_problems(data)]
                if template == CALLBACK and body.get("type") == 9:
                    problems += component_problems(data.get("components") or [], modal=True)
                    if len(data.get("title") or "") > MODAL_TITLE:
                        problems.append(f"modal title of {len(data['title'])} characters")
        if files and template not in (CALLBACK, *MESSAGE_TEMPLATES):
            problems.append(f"{method} {path}: files sent where Discord takes none")
        with self._lock:
            waits = self.limited.get(template or "")
            limit = waits.pop(0) if waits else None
        if limit is not None:
            return self._limited(Call(method, path, template or "", body, None, files), *limit)
        if unauthorized:
            answer: Any = {"message": "401: Unauthorized", "code": 0}
            status = 401
        elif template in self.failing:
            answer = {"message": "Missing Permissions", "code": 50013}
            status = 403
        else:
            answer, status = self._answer(method, path, template or "", body, files)
        with self._lock:
            self.problems += problems
            self.calls.append(Call(method, path, template or "", body, answer, files))
        if status == 204:
            return Response(status_code=204)
        return Response(json.dumps(answer), status_code=status, media_type=None,
                        headers={"Content-Type": "application/json"})  # fmt: skip

    def _limited(self, call: Call, retry_after: float, scope: str) -> Response:
        answer = {"message": "You are being rate limited.", "retry_after": retry_after,
                  "global": scope == "global"}  # fmt: skip
        with self._lock:
            self.calls.append(replace(call, answer=answer))
        headers = {
            "Content-Type": "application/json", "Retry-After": f"{retry_after:g}",
            "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}", "X-RateLimit-Bucket": "emulated",
            "X-RateLimit-Scope": scope, "Via": "1.1 google",  # discord.py reads a 429 without Via as a ban
        }  # fmt: skip
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        return Response(json.dumps(answer), status_code=429, headers=headers)

    def _form(
        self, content_type: str, raw: bytes, problems: list[str]
    ) -> tuple[Any, tuple[SentFile, ...]]:
        """`payload_json` and `files[n]`, each file matched to its entry in `attachments`."""
        try:
            parts = parse_form(content_type, raw)
        except ValueError as exc:
            problems.append(f"unreadable multipart body: {exc}")
            return None, ()
        payload = next((p for p in parts if p.name == "payload_json"), None)
        body = json.loads(payload.data) if payload is not None else {}
        if payload is None:
            problems.append("multipart body without payload_json")
        data = body.get("data") if isinstance(body.get("data"), dict) else body
        listed = {str(a.get("id")): a for a in data.get("attachments") or [] if isinstance(a, dict)}
        files = []
        for part in parts:
            if part.name == "payload_json":
                continue
            match = re.fullmatch(r"files\[(\d+)\]", part.name)
            if match is None or part.filename is None:
                problems.append(f"form part {part.name!r} is neither payload_json nor files[n]")
                continue
            index = int(match.group(1))
            if index >= FILES:
                problems.append(f"{part.name}: Discord takes files[0] to files[{FILES - 1}]")
            if len(part.data) > self.attachment_size_limit:
                problems.append(f"{part.filename}: {len(part.data)} bytes, over the size limit")
            entry = listed.get(str(index))
            if entry is None or entry.get("filename") != part.filename:
                problems.append(f"{part.name} ({part.filename}) has no matching attachments entry")
            files.append(SentFile(index, part.filename, part.data, self._id()))
        return body, tuple(files)

    def _message(
        self,
        channel_id: str,
        body: dict[str, Any],
        message_id: str | None = None,
        files: tuple[SentFile, ...] = (),
    ) -> dict[str, Any]:
        message = {
            "id": message_id or self._id(), "channel_id": channel_id, "type": 0, "content": "",
            "author": {"id": BOT_USER_ID, "username": "ChargeDesk", "discriminator": "0", "avatar": None, "bot": True},
            "timestamp": "2026-11-21T10:00:00.000000+00:00", "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
            "embeds": [], "components": [], "pinned": False, "flags": 0,
            "application_id": APPLICATION_ID,
        }  # fmt: skip
        message.update(
            {k: v for k, v in body.items() if k in ("content", "embeds", "components", "flags")}
        )
        message["attachments"] = _attachments(channel_id, files)
        self.messages[message["id"]] = message
        return message

    def _answer(
        self, method: str, path: str, template: str, body: Any, files: tuple[SentFile, ...] = ()
    ) -> tuple[Any, int]:
        parts = path.strip("/").split("/")
        body = body or {}
        if template == "/users/@me":
            return {"id": BOT_USER_ID, "username": "ChargeDesk", "discriminator": "0", "avatar": None,
                    "bot": True, "global_name": None, "flags": 0}, 200  # fmt: skip
        if template == "/oauth2/applications/@me":
            return {
                "id": APPLICATION_ID, "name": "ChargeDesk", "icon": None, "description": "",
                "bot_public": False, "bot_require_code_grant": False, "verify_key": "0" * 64,
                "flags": 0, "team": None, "summary": "",
                "owner": {"id": "1100000000000000003", "username": "owner", "discriminator": "0", "avatar": None},
            }, 200  # fmt: skip
        if template.endswith("/commands") and method == "PUT":
            guild = parts[3] if "guilds" in parts else None
            return [
                {**c, "id": self._id(), "application_id": APPLICATION_ID, "version": self._id(),
                 "default_member_permissions": None, "guild_id": guild}
                for c in body
            ], 200  # fmt: skip
        if template == CALLBACK:
            kind = body.get("type")
            interaction = {"id": parts[1], "type": kind,
                           "response_message_loading": kind == 5,
                           "response_message_ephemeral": bool((body.get("data") or {}).get("flags", 0) & 64)}  # fmt: skip
            if kind in (4, 5):
                message = self._message("0", body.get("data") or {}, files=files)
                self.messages[f"@original:{parts[2]}"] = message
                interaction["response_message_id"] = message["id"]
                return {"interaction": interaction,
                        "resource": {"type": kind, "message": message}}, 200  # fmt: skip
            return {"interaction": interaction}, 200
        if template == "/webhooks/{webhook_id}/{webhook_token}":
            return self._message("0", body, files=files), 200
        if template == "/webhooks/{webhook_id}/{webhook_token}/messages/@original":
            key = f"@original:{parts[2]}"
            if method == "DELETE":
                self.messages.pop(key, None)
                return None, 204
            current = self.messages.get(key) or self._message("0", {})
            if method == "PATCH":
                current.update(
                    {k: v for k, v in body.items() if k in ("content", "embeds", "components")}
                )
                if "attachments" in body:  # the list names what stays; new files join it
                    kept = {str(a.get("id")) for a in body["attachments"]}
                    current["attachments"] = [
                        a for a in current.get("attachments", []) if a["id"] in kept
                    ] + _attachments("0", files)
            self.messages[key] = current
            return current, 200
        if template == "/channels/{channel_id}/messages" and method == "POST":
            return self._message(parts[1], body, files=files), 200
        if template == "/channels/{channel_id}/messages/{message_id}" and method == "PATCH":
            return self._message(parts[1], body, message_id=parts[3]), 200
        if template == "/channels/{channel_id}/messages/{message_id}/threads":
            thread = self._id()
            return {"id": thread, "type": 11, "guild_id": GUILD_ID, "parent_id": parts[1],
                    "name": body.get("name", ""), "owner_id": BOT_USER_ID, "flags": 0,
                    "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                        "archive_timestamp": "2026-11-21T10:00:00+00:00", "locked": False},
                    "message_count": 0, "member_count": 1, "rate_limit_per_user": 0}, 200  # fmt: skip
        if template == "/guilds/{guild_id}/roles" and method == "GET":
            return self.roles.get(parts[1], []), 200
        return {"message": "not served by the fake", "code": 0}, 404


CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
GUILD_ID = "1100000000000000010"
# Where a message with files may be sent or edited (besides the interaction callback).
MESSAGE_TEMPLATES = (
    "/webhooks/{webhook_id}/{webhook_token}",
    "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
    "/channels/{channel_id}/messages",
    "/channels/{channel_id}/messages/{message_id}",
)


def _attachments(channel_id: str, files: tuple[SentFile, ...]) -> list[dict[str, Any]]:
    """Attachment objects as Discord returns them for the files sent with a message."""
    return [
        {"id": f.attachment_id, "filename": f.filename, "size": len(f.data),
         "url": f"{CDN}/{channel_id}/{f.attachment_id}/{f.filename}",
         "proxy_url": f"{CDN}/{channel_id}/{f.attachment_id}/{f.filename}",
         "content_type": "application/pdf" if f.filename.endswith(".pdf") else "application/octet-stream"}
        for f in files
    ]  # fmt: skip


@contextmanager
def discord_api() -> Iterator[DiscordAPI]:
    """Run the fake on 127.0.0.1 with a free port, in a background thread."""
    api = DiscordAPI()
    with serving(api.app(), "fake Discord API") as url:
        api.base_url = f"{url}/api/v10"
        yield api


def main(argv: list[str] | None = None) -> None:
    """Serve Discord's HTTP API until interrupted."""
    api = DiscordAPI()

    def started(url: str) -> list[str]:
        api.base_url = f"{url}/api/v10"
        return [
            f"HTTP API base {api.base_url}, bot token {TOKEN}",
            f"Settings: CHARGEDESK_DISCORD__API_BASE={api.base_url} CHARGEDESK_DISCORD__TOKEN={TOKEN}",
        ]

    command_line("Discord", api.app(), started, argv)


if __name__ == "__main__":
    main()
