"""A fake Slack Web API on 127.0.0.1 that records every call and answers in Slack's shapes.

A Starlette app served by uvicorn in a background thread (port 0 unless told),
for the real `slack_sdk` AsyncWebClient that slack-bolt uses. It serves the
methods ChargeDesk calls: auth.test, chat.postMessage, chat.postEphemeral,
chat.update, views.open, views.update, conversations.info, conversations.open,
usergroups.users.list and users.info, plus `response_url` posts at
/response/<key>, and file uploads as `files_upload_v2` makes them:
files.getUploadURLExternal hands out an upload URL on this server
(/upload/v1/<key>), the bytes are POSTed there, and
files.completeUploadExternal shares them; each shared file lands in `files`.

It keeps itself honest against Slack's published Web API description
(data/slack/web_api.json, MIT, see the LICENSE beside it): every request must
carry the bearer token, the method's required parameters and no parameter the
method does not take; every answer, success or error, is validated against the
method's schema. Messages and modals are also held to Block Kit's limits (50
blocks a message, 3,000 characters a text, ...), which Slack enforces with
`invalid_blocks`. Anything wrong lands in `problems`, which tests assert empty.

Tests configure what Slack knows (`channel()`, `user()`, `usergroup()`,
`fail()`), then wait for the calls the bot makes after its ack with
`await api.wait_for("chat.postMessage")`: a bounded poll, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chargedesk_emulators.multipart import parse_form
from chargedesk_emulators.serve import command_line, serving

DATA = Path(__file__).parent / "data" / "slack"
TEAM_ID = "T0CHARGE01"
BOT_ID = "B0CHARGE001"
BOT_USER = "U0CHARGEBOT"
DEFAULT_TOKEN = "xoxb-chargedesk-test"
# Parameters Slack takes beyond the 2021 description: slack_sdk adds `team_id` to every
# call made through a Bolt context's client (org-wide tokens need it).
NEWER_PARAMS = frozenset({"team_id"})
JSON_PARAMS = frozenset({"blocks", "attachments", "view", "files"})

# Block Kit's limits, as Slack documents them (docs.slack.dev/reference/block-kit).
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
SECTION_TEXT = 3000
FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255
MODAL_TITLE = 24
PRIVATE_METADATA = 3000
SELECT_OPTIONS = 100
OPTION_TEXT = 75
OPTION_VALUE = 150


@dataclass(frozen=True)
class Call:
    """One request the bot made: the Web API method (or `response_url`) and its parameters."""

    method: str
    params: dict[str, Any]
    answer: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Upload:
    """One file on its way in: announced by files.getUploadURLExternal, its bytes POSTed after."""

    file_id: str
    filename: str
    length: int
    key: str
    data: bytes | None = None
    completed: bool = False


@dataclass(frozen=True)
class SharedFile:
    """A file files.completeUploadExternal shared: where, and its bytes as uploaded."""

    file_id: str
    filename: str
    title: str | None
    data: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None


@cache
def description() -> dict[str, Any]:
    return json.loads((DATA / "web_api.json").read_text())


def _operation(method: str) -> dict[str, Any] | None:
    path = description()["paths"].get(f"/{method}")
    return next(iter(path.values())) if path else None


def _validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator({**schema, "definitions": description()["definitions"]})


def answer_problems(method: str, answer: dict[str, Any]) -> list[str]:
    """How an answer differs from what the description says the method returns."""
    operation = _operation(method)
    if operation is None:
        return [f"{method}: not in the Web API description"]
    which = "200" if answer.get("ok") else "default"
    schema = operation["responses"].get(which, {}).get("schema")
    if schema is None:
        return []
    return [
        f"{method} answer: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}"
        for e in _validator(schema).iter_errors(answer)
    ]


def request_problems(method: str, params: dict[str, Any]) -> list[str]:
    """Required parameters missing, or parameters the method does not take."""
    operation = _operation(method)
    if operation is None:
        return [f"{method}: not in the Web API description"]
    described = {p["name"]: p for p in operation.get("parameters", [])}
    problems = [
        f"{method}: missing required parameter {name}"
        for name, p in described.items()
        if p.get("required") and name != "token" and params.get(name) in (None, "")
    ]
    known = set(described) | NEWER_PARAMS
    problems += [f"{method}: unknown parameter {name}" for name in params if name not in known]
    return problems


# --- Block Kit --------------------------------------------------------------------------


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def block_kit_problems(blocks: list[dict[str, Any]], *, surface: str = "message") -> list[str]:
    """Every Block Kit limit these blocks break (Slack would answer `invalid_blocks`)."""
    problems: list[str] = []
    most = MESSAGE_BLOCKS if surface == "message" else MODAL_BLOCKS
    if len(blocks) > most:
        problems.append(f"{len(blocks)} blocks in a {surface} (at most {most})")
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(block_ids) != len(set(block_ids)):
        problems.append("block_id used twice")
    action_ids: list[str] = []
    for n, block in enumerate(blocks):
        where = f"block {n} ({block.get('type')})"
        if len(block.get("block_id", "")) > BLOCK_ID:
            problems.append(f"{where}: block_id longer than {BLOCK_ID}")
        kind = block.get("type")
        if kind == "header" and len(_text_of(block.get("text"))) > HEADER_TEXT:
            problems.append(f"{where}: header text longer than {HEADER_TEXT}")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if len(_text_of(block.get("text"))) > SECTION_TEXT:
                problems.append(f"{where}: text longer than {SECTION_TEXT}")
            fields = block.get("fields", [])
            if len(fields) > FIELDS:
                problems.append(f"{where}: {len(fields)} fields (at most {FIELDS})")
            problems += [
                f"{where}: a field longer than {FIELD_TEXT}"
                for f in fields
                if len(_text_of(f)) > FIELD_TEXT
            ]
            if "accessory" in block:
                problems += _element_problems(block["accessory"], where, action_ids)
        if kind == "context":
            elements = block.get("elements", [])
            if not elements or len(elements) > CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (1 to {CONTEXT_ELEMENTS})")
            problems += [
                f"{where}: context text longer than {SECTION_TEXT}"
                for e in elements
                if len(_text_of(e)) > SECTION_TEXT
            ]
        if kind == "actions":
            elements = block.get("elements", [])
            if not elements or len(elements) > ACTIONS_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (1 to {ACTIONS_ELEMENTS})")
            for element in elements:
                problems += _element_problems(element, where, action_ids)
        if kind == "input":
            if surface != "modal":
                problems.append(f"{where}: input blocks belong in modals")
            problems += _element_problems(block.get("element", {}), where, action_ids)
    return problems


def _element_problems(element: dict[str, Any], where: str, action_ids: list[str]) -> list[str]:
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None:
        if len(action_id) > ACTION_ID:
            problems.append(f"{where}: action_id longer than {ACTION_ID}")
        if action_id in action_ids:
            problems.append(f"{where}: action_id {action_id} used twice")
        action_ids.append(action_id)
    if element.get("type") == "button":
        if not 0 < len(_text_of(element.get("text"))) <= BUTTON_TEXT:
            problems.append(f"{where}: button text empty or longer than {BUTTON_TEXT}")
        if len(element.get("value", "")) > BUTTON_VALUE:
            problems.append(f"{where}: button value longer than {BUTTON_VALUE}")
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(f"{where}: button style {element.get('style')!r}")
    if element.get("type") == "static_select":
        options = element.get("options", [])
        if not 0 < len(options) <= SELECT_OPTIONS:
            problems.append(f"{where}: {len(options)} options (1 to {SELECT_OPTIONS})")
        for option in options:
            if len(_text_of(option.get("text"))) > OPTION_TEXT:
                problems.append(f"{where}: option text longer than {OPTION_TEXT}")
            if len(option.get("value", "")) > OPTION_VALUE:
                problems.append(f"{where}: option value longer than {OPTION_VALUE}")
    return problems


def view_problems(view: dict[str, Any]) -> list[str]:
    """A modal's own limits, then its blocks'."""
    problems = []
    for key in ("title", "submit", "close"):
        if key in view and len(_text_of(view[key])) > MODAL_TITLE:
            problems.append(f"view {key} longer than {MODAL_TITLE}")
    if "title" not in view:
        problems.append("view without a title")
    if len(view.get("private_metadata", "")) > PRIVATE_METADATA:
        problems.append(f"private_metadata longer than {PRIVATE_METADATA}")
    if any(b.get("type") == "input" for b in view.get("blocks", [])) and "submit" not in view:
        problems.append("a modal with inputs needs a submit button")
    return problems + block_kit_problems(view.get("blocks", []), surface="modal")


# --- the fake ---------------------------------------------------------------------------


@dataclass
class SlackAPI:
    """What this fake Slack knows, and every call made to it."""

    token: str = DEFAULT_TOKEN
    team_id: str = TEAM_ID
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    # method -> the Retry-After of each 429 still to answer
    limited: dict[str, list[float]] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    ims: dict[str, str] = field(default_factory=dict)  # user -> DM channel ID
    uploads: dict[str, Upload] = field(default_factory=dict)
    files: list[SharedFile] = field(default_factory=list)
    holds: list[tuple[str, Callable[[dict[str, Any]], bool], threading.Event]] = field(
        default_factory=list
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    # --- configuration ---

    def channel(
        self,
        channel_id: str,
        name: str,
        *,
        private: bool = False,
        shared: bool = False,
        ext_shared: bool = False,
    ) -> None:
        """A channel conversations.info knows (others answer `channel_not_found`)."""
        created = 1_700_000_000
        self.channels[channel_id] = {
            "id": channel_id, "name": name, "name_normalized": name, "created": created,
            "creator": "U0CREATOR1", "is_archived": False, "is_channel": not private,
            "is_general": False, "is_mpim": False, "is_group": private, "is_org_shared": False,
            "is_im": False, "is_shared": shared or ext_shared, "is_ext_shared": ext_shared,
            "is_pending_ext_shared": False, "is_private": private, "is_member": True,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }  # fmt: skip

    def user(
        self, user_id: str, name: str, *, team_id: str | None = None, stranger: bool = False
    ) -> None:
        """A user users.info knows; `team_id` other than ours makes them external."""
        self.users[user_id] = {
            "id": user_id, "name": name.lower(), "real_name": name, "team_id": team_id or self.team_id,
            "is_bot": False, "is_app_user": False, "updated": 1_700_000_000, "is_stranger": stranger,
            "profile": {
                "real_name": name, "display_name": name, "avatar_hash": "", "real_name_normalized": name,
                "display_name_normalized": name, "title": "", "phone": "", "skype": "",
                "status_text": "", "status_emoji": "", "fields": None,
            },
        }  # fmt: skip

    def usergroup(self, group_id: str, members: list[str]) -> None:
        self.usergroups[group_id] = list(members)

    def hold(
        self, method: str, match: Callable[[dict[str, Any]], bool] = lambda params: True
    ) -> threading.Event:
        """Keep matching calls of `method` unanswered until the returned event is set."""
        gate = threading.Event()
        self.holds.append((method, match, gate))
        return gate

    def rate_limit(self, method: str, *, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next `times` calls of `method` as Slack does when an app goes too fast:
        HTTP 429, `Retry-After: <seconds>`, `{"ok": false, "error": "ratelimited"}`."""
        self.limited.setdefault(method, []).extend([retry_after] * times)

    def fail(self, method: str, error: str) -> None:
        """Make every later call to `method` answer `{"ok": false, "error": error}`."""
        self.failures[method] = error

    # --- what happened ---

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        match: Callable[[Call], bool] | None = None,
        within: float = 10.0,
    ) -> list[Call]:
        """Poll (bounded) until `count` calls of `method` (matching `match`) were recorded."""
        deadline = time.monotonic() + within
        while True:
            found = [c for c in self.of(method) if match is None or match(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = ", ".join(c.method for c in self.calls) or "nothing"
                raise AssertionError(
                    f"waited {within:g} s for {count} {method} call(s), got {len(found)}; saw: {seen}"
                )
            await asyncio.sleep(0.01)

    # --- serving ---

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{key}", self._response_url, methods=["POST"]),
                Route("/upload/v1/{key}", self._upload, methods=["POST"]),
            ]
        )

    def response_url(self) -> str:
        return f"{self.base_url}/response/{secrets.token_hex(8)}"

    def _ts(self) -> str:
        n = next(self._seq)
        return f"{1_700_000_000 + n}.{n:06d}"

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await _params(request)
        for held, match, gate in list(self.holds):
            if held == method and match(params):
                await asyncio.to_thread(gate.wait, 30)  # set by the test, from its own thread
        problems = []
        with self._lock:
            waits = self.limited.get(method)
            retry_after = waits.pop(0) if waits else None
        if retry_after is not None:
            limited = {"ok": False, "error": "ratelimited"}
            with self._lock:
                self.calls.append(Call(method, params, limited))
            return JSONResponse(
                limited, status_code=429, headers={"Retry-After": f"{retry_after:g}"}
            )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
        else:
            problems += request_problems(method, params)
            answer = self._answer(method, params, problems)
        problems += answer_problems(method, answer)
        with self._lock:
            self.calls.append(Call(method, params, answer))
            self.problems += problems
        return JSONResponse(answer)

    async def _response_url(self, request: Request) -> Response:
        payload = json.loads(await request.body())
        problems = block_kit_problems(payload.get("blocks", []))
        with self._lock:
            self.calls.append(Call("response_url", payload, {"ok": True}))
            self.problems += problems
        return Response("ok")

    async def _upload(self, request: Request) -> Response:
        """The upload URL: the bytes, raw or as a multipart file part (Slack takes both)."""
        key = request.path_params["key"]
        with self._lock:
            upload = next((u for u in self.uploads.values() if u.key == key), None)
        if upload is None or upload.completed:
            return Response("upload URL unknown or used", status_code=404)
        data = await request.body()
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            part = next((p for p in parse_form(kind, data) if p.filename is not None), None)
            data = part.data if part is not None else b""
        with self._lock:
            upload.data = data
            self.calls.append(Call("upload", {"file_id": upload.file_id, "size": len(data)}, {}))
            if len(data) != upload.length:
                self.problems.append(
                    f"upload {upload.file_id}: {len(data)} bytes sent, {upload.length} announced"
                )
        return Response(f"OK - {len(data)}", media_type="text/plain")

    def _answer(self, method: str, params: dict[str, Any], problems: list[str]) -> dict[str, Any]:
        if method in self.failures:
            return {"ok": False, "error": self.failures[method]}
        if "blocks" in params:
            found = block_kit_problems(params["blocks"])
            if found:
                problems += [f"{method}: {p}" for p in found]
                return {"ok": False, "error": "invalid_blocks"}
        if "view" in params:
            found = view_problems(params["view"])
            if found:
                problems += [f"{method}: {p}" for p in found]
                return {"ok": False, "error": "invalid_arguments"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(params)

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True, "url": "https://chargedesk-test.slack.com/", "team": "ChargeDesk Test",
            "user": "chargedesk", "team_id": self.team_id, "user_id": BOT_USER, "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }  # fmt: skip

    def _message(self, params: dict[str, Any], ts: str) -> dict[str, Any]:
        message = {
            "type": "message", "ts": ts, "user": BOT_USER, "bot_id": BOT_ID, "team": self.team_id,
            "text": params.get("text") or "", "blocks": params.get("blocks", []),
        }  # fmt: skip
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        return message

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = self._ts()
        return {
            "ok": True,
            "channel": params["channel"],
            "ts": ts,
            "message": self._message(params, ts),
        }

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._ts()}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text") or ""
        message = {"text": text, "blocks": params.get("blocks", [])}
        return {"ok": True, "channel": params["channel"], "ts": params["ts"], "text": text, "message": message}  # fmt: skip

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = f"V{next(self._seq):08d}"
        view = {
            **params["view"],
            "id": view_id,
            "hash": secrets.token_hex(6),
            "team_id": self.team_id,
        }
        self.views[view_id] = view
        return {"ok": True, "view": view}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        old = self.views.get(params.get("view_id", ""))
        if old is None:
            return {"ok": False, "error": "not_found"}
        if params.get("hash") and params["hash"] != old["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        view = {
            **params["view"],
            "id": old["id"],
            "hash": secrets.token_hex(6),
            "team_id": self.team_id,
        }
        self.views[old["id"]] = view
        return {"ok": True, "view": view}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(params.get("channel", ""))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": channel}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) > 1:
            return {
                "ok": False,
                "error": "method_not_supported_for_channel_type",
            }  # no group DMs here
        if users[0] not in self.users:
            return {"ok": False, "error": "user_not_found"}
        opened = users[0] in self.ims
        dm = self.ims.setdefault(users[0], f"D{next(self._seq):09d}")
        answer: dict[str, Any] = {"ok": True, "channel": {"id": dm}}
        if opened:
            answer |= {"already_open": True, "no_op": True}
        return answer

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(params["length"])
        except (TypeError, ValueError):
            return {"ok": False, "error": "invalid_arguments"}
        if length <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._seq):09d}"
        key = secrets.token_hex(12)
        self.uploads[file_id] = Upload(file_id, str(params["filename"]), length, key)
        return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{key}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        listed = params.get("files")
        if not isinstance(listed, list) or not listed:
            return {"ok": False, "error": "invalid_arguments"}
        channel = params.get("channel_id") or None
        if params.get("channels"):
            return {"ok": False, "error": "invalid_arguments"}  # ChargeDesk shares to one place
        if (
            channel is not None
            and channel not in self.channels
            and channel not in self.ims.values()
        ):
            return {"ok": False, "error": "channel_not_found"}
        if params.get("thread_ts") and channel is None:
            return {"ok": False, "error": "invalid_arguments"}
        uploads = [self.uploads.get(str(f.get("id"))) for f in listed]
        if any(u is None or u.data is None or u.completed for u in uploads):
            return {"ok": False, "error": "file_not_found"}  # not announced, not sent, or done
        shared = []
        for upload, entry in zip(uploads, listed, strict=True):
            assert upload is not None and upload.data is not None
            upload.completed = True
            title = entry.get("title")
            self.files.append(SharedFile(
                upload.file_id, upload.filename, title, upload.data, channel,
                params.get("thread_ts"), params.get("initial_comment"),
            ))  # fmt: skip
            shared.append({"id": upload.file_id, "title": title or upload.filename})
        return {"ok": True, "files": shared}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        members = self.usergroups.get(params["usergroup"])
        if members is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": members}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(params.get("user", ""))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}


async def _params(request: Request) -> dict[str, Any]:
    """The parameters however slack_sdk sent them: query string, form or JSON body."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body:
        if request.headers.get("content-type", "").startswith("application/json"):
            params.update(json.loads(body))
        else:
            params.update(parse_qsl(body.decode()))
    for name in JSON_PARAMS & params.keys():
        if isinstance(params[name], str):
            params[name] = json.loads(params[name])
    return params


@contextmanager
def slack_api(**options: Any) -> Iterator[SlackAPI]:
    """Run the fake on 127.0.0.1 with a free port, in a background thread."""
    api = SlackAPI(**options)
    with serving(api.app(), "fake Slack API") as url:
        api.base_url = url
        yield api


def main(argv: list[str] | None = None) -> None:
    """Serve Slack's Web API until interrupted; prints the bot token it accepts."""
    api = SlackAPI()

    def started(url: str) -> list[str]:
        api.base_url = url
        return [
            f"Web API base {url}/api/, bot token {api.token}",
            f"Settings: CHARGEDESK_SLACK__BASE_URL={url}/api/ CHARGEDESK_SLACK__BOT_TOKEN={api.token}",
        ]

    command_line("Slack", api.app(), started, argv)


if __name__ == "__main__":
    main()
