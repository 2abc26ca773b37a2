"""Slack: `/billing`, Block Kit cards, buttons and modals, approvals in threads, helpdesk lookups.

A chat adapter on slack-bolt's AsyncApp. It turns a Slack request into
(Actor, Channel, command), calls the core (`dispatch`, `run`, `forms.submit`;
Approve and Deny are the `approve`/`deny` commands, which go through `decide`),
and draws the Reply as Block Kit. No billing rule lives here.

- Every request is acked at once; the work runs after the ack in a lazy
  listener, so a slow gateway never makes Slack time out. A modal submission
  waits up to `modal_budget` seconds for its command, so that a refusal about a
  field can go back into the modal; anything slower is posted when done.
- Bolt verifies each request's signature and age (401 otherwise). Events API
  retries are dropped by `event_id` in Redis, after that check, for an hour.
- Where people outside the company can read (Slack Connect channels, external
  users), agent answers are ephemeral and nothing is posted publicly; when the
  conversation cannot be checked, the bot answers nothing there and says why.
- Files of a reply (invoice and receipt PDFs) are uploaded beside a public
  answer in an internal channel; anywhere else they go to the requester's direct
  messages with the bot, and the private answer says so. A customer's own
  billing (`me`, `portal`, `verify`) is always private, so its PDFs always go
  to direct messages.
- Queued alerts and customers' questions are posted to their Slack channel
  (never a shared one) right after a command, after a webhook, and every few
  seconds; each card message is the thread root where agents discuss it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.requests import Request
from starlette.responses import Response

from bot import deliveries, lookup_slots, references
from bot.actors import Actor, ChannelKind, Role
from bot.approvals.workflow import ApprovalView
from bot.cards.billing import approval_card
from bot.cards.model import Attachment, Card, Reply
from bot.chat.slack.limits import LimitedWebClient
from bot.chat.slack.render import (
    FORM_CALLBACK,
    LINK,
    MESSAGE_BLOCKS,
    MORE,
    PRIVATE_METADATA,
    Pager,
    SlackMessage,
    clip,
    context,
    error_message,
    escape,
    form_values,
    form_view,
    notice_view,
    reply_messages,
    section,
)
from bot.commands import Context
from bot.commands.forms import (
    Form,
    asks_first,
    form_for,
    submit,
)
from bot.commands.lookup import LOOKUP_PAGE
from bot.commands.lookup_quoted import TIMED_OUT
from bot.commands.router import Command, parse
from bot.doors.base import ALERT_SECONDS, DECISIONS, Copy, Door, PostFailed, Refused, decided_in
from bot.errors import UserError
from bot.rate_limits import SharedLimiter
from bot.services import Services
from bot.settings import SlackSettings

log = logging.getLogger(__name__)

PLATFORM = "slack"
ACTION = re.compile(r"^chargedesk\.")
# Slack retries an event for about five minutes; an hour leaves room for a slow retry.
EVENT_WINDOW = 3600
# Slack waits three seconds for a modal submission's answer: keep room for the network.
ACK_SECONDS = 2.5
HELPDESK_WINDOW = 30 * 24 * 3600
CHANNEL_TTL = 300
GROUP_TTL = 300
USER_TTL = 600
COMPACT_ROWS = 3
MAX_CANDIDATES = 3
NOTICES_AT_ONCE = 2  # "Busy: … the card follows" messages being sent at once

_ARGUMENT = re.compile(r"^[a-z]+: (?P<field>[a-z_]+)\b")
# Refusals that belong to one field of a form, by error code.
_FIELD_OF = {
    "invalid_amount": "amount",
    "amount_too_large": "amount",
    "currency_mismatch": "amount",
    "reason_code": "reason_code",
    "reason_required": "reason",
    "empty_question": "question",
    "question_too_long": "question",
}
ALERT_NOTE = "Discuss it in this message's thread."


@dataclass(frozen=True)
class Place:
    """Where an answer goes: a channel (and thread), for whom, and the fallback response_url."""

    channel: str
    user: str
    thread_ts: str | None = None
    response_url: str | None = None


def find_references(event: dict[str, Any]) -> list[str]:
    """Customer emails and gateway IDs a message names, most precise first, no repeats."""
    texts: list[str] = []
    _collect_text(event.get("text"), texts)
    _collect_text(event.get("attachments"), texts)
    _collect_text(event.get("blocks"), texts)
    return references.find_references("\n".join(texts))


def _collect_text(node: Any, out: list[str]) -> None:
    # Integrations put the ticket in attachments (Zendesk, Freshdesk) or blocks (Front,
    # Intercom): every string in them is searched, wherever it sits.
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, list):
        for item in node:
            _collect_text(item, out)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in ("type", "style", "action_id", "block_id", "url", "image_url"):
                _collect_text(value, out)


def field_errors(form: Form, reply: Reply) -> dict[str, str]:
    """A refusal that belongs to one field of the form, keyed by that field's block_id."""
    if reply.error is None:
        return {}
    field = _FIELD_OF.get(reply.error.code)
    if reply.error.code == "invalid_arguments":
        match = _ARGUMENT.match(reply.error.message)
        field = match.group("field") if match else None
    names = {f.name for f in form.fields}
    if field == "reason" and "reason" not in names:
        field = "reason_text"
    if field in names:
        return {field: clip(reply.error.message, 300)}
    return {}


class SlackBot(Door[Place]):
    """The Slack door: one AsyncApp whose listeners call the core; bind the services before use."""

    platform = PLATFORM

    def __init__(
        self,
        settings: SlackSettings,
        *,
        modal_budget: float = 2.0,
        form_budget: float = 1.0,
        alert_seconds: float = ALERT_SECONDS,
    ) -> None:
        self.settings = settings
        token = settings.bot_token.get_secret_value() if settings.bot_token else None
        base_url = str(settings.base_url) if settings.base_url else AsyncWebClient.BASE_URL
        self.client = LimitedWebClient(token=token, base_url=base_url)
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
        # process_before_response: the ack is awaited directly instead of polled every 10 ms;
        # lazy listeners still run after the response.
        self.app = AsyncApp(client=self.client, signing_secret=secret, process_before_response=True)
        self.handler = AsyncSlackRequestHandler(self.app)
        self.modal_budget = modal_budget
        self.form_budget = form_budget
        self.alert_seconds = alert_seconds
        self._poller: asyncio.Task[None] | None = None
        self._services: Services | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._notices = asyncio.Semaphore(NOTICES_AT_ONCE)
        self._register()

    def bind(self, services: Services) -> None:
        """Serve these services: redraw after every decision, and poll for alerts."""
        self.attach(services)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # bound outside an event loop: alerts are posted after webhooks and commands
        self._poller = self.start_alerts(self.alert_seconds)

    @property  # type: ignore[override]
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("SlackBot.bind(services) must come before the first request")
        return self._services

    @services.setter
    def services(self, services: Services) -> None:
        self._services = services
        # Every process posting as this app keeps to Slack's limits together.
        self.client.limiter = SharedLimiter(services.redis, services.key)

    def role_entries(self) -> dict[Role, list[str]]:
        return {
            Role.agent: self.settings.agents,
            Role.manager: self.settings.managers,
            Role.admin: self.settings.admins,
            Role.finance: self.settings.finance,
        }

    @property
    def approvals_channel(self) -> str | None:
        return self.settings.approvals_channel

    def socket_mode(self, app_token: str) -> Any:
        """The same listeners over Socket Mode's outbound websocket (an AsyncSocketModeHandler)."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        return AsyncSocketModeHandler(self.app, app_token)

    async def endpoint(self, request: Request) -> Response:
        """POST /slack/events: slash commands, interactivity and the Events API."""
        return await self.handler.handle(request)

    async def idle(self, seconds: float = 30.0) -> None:
        """Wait until the work started by Slack requests has finished (shutdown, tests, benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            await asyncio.sleep(0)  # lazy listeners just scheduled register themselves first
            pending = {t for t in self._tasks if t is not asyncio.current_task() and not t.done()}
            if not pending:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} Slack task(s) still running")
            await asyncio.wait(pending, timeout=remaining)

    async def alert_place(self, channel: str) -> bool:
        """Not a channel shared with people outside (Refused when Slack cannot tell)."""
        return await self._channel_kind(channel) != ChannelKind.shared

    async def post_alert(self, channel: str, card: Card) -> Copy | None:
        """A message of its own: the root of the thread where agents discuss it."""
        first: Copy | None = None
        try:
            for message in reply_messages(Reply(cards=[card])):
                answer = await self.client.chat_postMessage(
                    channel=channel, text=message.text,
                    blocks=_noted(message.blocks, context(ALERT_NOTE)),
                )  # fmt: skip
                ts = answer.get("ts")
                if first is None and isinstance(ts, str):
                    first = Copy(channel, ts)
        except SlackApiError as exc:
            raise PostFailed(exc.response.get("error")) from exc
        return first

    async def aclose(self) -> None:
        await self.stop_alerts(self._poller)
        self._poller = None
        self.detach()
        try:
            await self.idle(10)
        except TimeoutError as exc:
            log.warning("stopping with Slack work unfinished: %s", exc)

    def _register(self) -> None:
        app = self.app
        app.middleware(self._drop_retries)
        app.command("/billing")(ack=self._ack, lazy=[self._on_command])
        app.action(ACTION)(ack=self._ack, lazy=[self._on_button])
        app.view(FORM_CALLBACK)(self._on_submit)
        app.event("message")(ack=self._ack, lazy=[self._on_message])
        app.event("channel_shared")(self._on_sharing_changed)
        app.event("channel_unshared")(self._on_sharing_changed)

    # --- tasks ----------------------------------------------------------------------------

    def _track(self) -> None:
        """Hold the running lazy listener until it ends: the event loop keeps only weak references."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- listeners ------------------------------------------------------------------------

    async def _ack(self, ack: AsyncAck) -> None:
        await ack()

    async def _drop_retries(self, body: dict[str, Any], next_: Any) -> BoltResponse | None:
        """Run each Events API event once: Slack retries late acks with the same event_id."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            try:
                first = await self.services.redis.set(
                    self.services.key("slack", "event", str(event_id)),
                    "1",
                    nx=True,
                    ex=EVENT_WINDOW,
                )
            except RedisError:
                log.warning("cannot de-duplicate Slack event %s: Redis unavailable", event_id)
                first = True
            if not first:
                log.info("Slack event %s seen before: dropped", event_id)
                return BoltResponse(status=200, body="")
        await next_()
        return None

    async def _first(self, request: AsyncBoltRequest, body: dict[str, Any], kind: str) -> bool:
        """Whether this delivery runs: a replayed or retried copy of a request runs nothing.

        Slash commands carry no ID of their own; the signature does: an HMAC of the
        timestamp and the body, so every request is unique and a replay within the five
        minutes Bolt accepts carries the same pair. Unsigned Socket Mode deliveries fall
        back on the payload's trigger_id, which a redelivered envelope repeats.
        """
        stamp = request.headers.get("x-slack-request-timestamp", [None])[0]
        signature = request.headers.get("x-slack-signature", [None])[0]
        if stamp and signature:
            delivery = deliveries.delivery_key("signed", stamp.strip(), signature.strip().lower())
        elif body.get("trigger_id"):
            delivery = deliveries.delivery_key("trigger", str(body["trigger_id"]))
        else:
            log.warning("Slack %s without a signature or trigger_id: not de-duplicated", kind)
            return True
        return await deliveries.first(self.services, PLATFORM, delivery, kind)

    async def _on_command(
        self, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        """`/billing <command>`: the text goes through `dispatch`, like every platform's."""
        self._track()
        place = Place(body["channel_id"], body["user_id"], None, body.get("response_url"))
        text = body.get("text") or ""
        try:
            if not await self._first(request, body, "command"):
                return
            ctx = await self._context(
                user=place.user, name=body.get("user_name"), team=body.get("team_id"),
                channel=place.channel, home=_home(context),
            )  # fmt: skip
            if _is_lookup(text):
                reply = await self._in_line(place, text, lambda: self.run_line(ctx, text))
            else:
                reply = await self.run_line(ctx, text)
            await self._deliver(ctx, reply, place, line=text, decided=decided_in(text))
        except Refused as exc:
            await self.refuse(place, str(exc))
        except Exception:
            await self.failed(place, "/billing")
        await self.alerts_now()

    async def _on_button(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        """A card's button: Approve runs at once, Refund / Cancel / Deny / Capture / Void ask first."""
        self._track()
        if str(action.get("action_id", "")).startswith(f"chargedesk.{LINK}."):
            return  # a link button: Slack opened its page, nothing runs here
        channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get(
            "channel_id"
        )
        user = body["user"]
        message = body.get("message") or {}
        if channel is None:
            log.info("button %s outside a conversation ignored", action.get("action_id"))
            return
        place = Place(
            channel,
            user["id"],
            message.get("thread_ts") or message.get("ts"),
            body.get("response_url"),
        )
        try:
            if not await self._first(request, body, "button"):
                return
            ctx = await self._context(
                user=place.user, name=user.get("name") or user.get("username"),
                team=user.get("team_id"), channel=channel, home=_home(context),
            )  # fmt: skip
            await self._button(ctx, place, action, body.get("trigger_id"))
        except Refused as exc:
            await self.refuse(place, str(exc))
        except Exception:
            await self.failed(place, "that button")

    async def _button(
        self, ctx: Context, place: Place, action: dict[str, Any], trigger_id: str | None
    ) -> None:
        value = action.get("value") or ""
        if action.get("action_id", "").startswith(f"chargedesk.{MORE}."):
            await self._more(ctx, place, value)
            return
        try:
            spec, raw = parse(value)
        except UserError as exc:
            await self._deliver(ctx, Reply.fail(exc.code, exc.message), place)
            return
        if spec.name == "approve":
            reply = await self.run_command(ctx, spec, raw)
            # Success shows as the card updated in place; only a refusal needs its own answer.
            await self._deliver(
                ctx, reply, place, decided=raw.get("id"), show=reply.error is not None
            )
            return
        if spec.name in ("refund", "cancel", "deny") or asks_first(spec, raw):
            label = (action.get("text") or {}).get("text") or spec.name.capitalize()
            await self._open_form(ctx, place, spec, raw, trigger_id, label)
            return
        if spec.name == "lookup":
            reply = await self._in_line(place, value, lambda: self.run_command(ctx, spec, raw))
        else:
            reply = await self.run_command(ctx, spec, raw)
        await self._deliver(ctx, reply, place, line=value)

    async def _open_form(
        self,
        ctx: Context,
        place: Place,
        spec: Command,
        raw: dict[str, Any],
        trigger_id: str | None,
        label: str,
    ) -> None:
        """Open the command's modal; slow to build (a slow gateway) shows "Loading" first."""
        if not spec.allowed(ctx.actor):
            needed = " or ".join(sorted(r.value for r in spec.roles))
            await self._deliver(
                ctx, Reply.fail("forbidden", f"{spec.name} needs the {needed} role"), place
            )
            return
        if trigger_id is None:
            return
        task = self._spawn(form_for(ctx, spec, raw, label))
        done, _ = await asyncio.wait({task}, timeout=self.form_budget)
        metadata = {"channel": place.channel, "thread": place.thread_ts, "url": place.response_url}
        if done:
            try:
                form = task.result()
            except UserError as exc:
                await self._deliver(ctx, Reply.fail(exc.code, exc.message), place)
                return
            await self.client.views_open(trigger_id=trigger_id, view=self._modal(form, metadata))
            return
        # The trigger expires three seconds after the click: open now, fill in when ready.
        opened = await self.client.views_open(
            trigger_id=trigger_id, view=notice_view(label, "Loading…")
        )
        view = opened["view"]
        try:
            shown = self._modal(await task, metadata)
        except UserError as exc:
            shown = notice_view(label, exc.message)
        await self.client.views_update(view_id=view["id"], hash=view["hash"], view=shown)

    def _modal(self, form: Form, where: dict[str, Any]) -> dict[str, Any]:
        metadata = json.dumps(
            {"form": form.model_dump(mode="json"), **where}, separators=(",", ":")
        )
        if len(metadata) > PRIVATE_METADATA:  # the response_url is only a fallback
            where = {**where, "url": None}
            metadata = json.dumps(
                {"form": form.model_dump(mode="json"), **where}, separators=(",", ":")
            )
        return form_view(form, metadata=metadata)

    async def _on_submit(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        view: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        """A modal submitted: the form's command runs (`forms.submit`), refusals go into the form."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            form = Form.model_validate(meta["form"])
        except (ValueError, KeyError, ValidationError):
            log.warning("modal %s without our metadata", view.get("id"))
            await ack()
            return
        if not await self._first(request, body, "view_submission"):
            await ack()
            return
        user = body["user"]
        place = Place(meta["channel"], user["id"], meta.get("thread"), meta.get("url"))
        try:
            # Slack waits three seconds for this answer, whatever its own API is doing.
            async with asyncio.timeout_at(started + ACK_SECONDS):
                ctx = await self._context(
                    user=place.user, name=user.get("name") or user.get("username"),
                    team=user.get("team_id"), channel=place.channel, home=_home(context),
                )  # fmt: skip
        except Refused as exc:
            await ack(response_action="update", view=notice_view("Not sent", str(exc)))
            return
        except TimeoutError:
            why = "Slack took too long to say who can read that conversation: nothing was sent, try again."
            await ack(response_action="update", view=notice_view("Not sent", why))
            return
        task = self._spawn(submit(ctx, form, form_values(view["state"]["values"])))
        left = min(ACK_SECONDS, self.modal_budget) - (loop.time() - started)
        done, _ = await asyncio.wait({task}, timeout=max(0.0, left))
        if done and task.exception() is None:
            errors = field_errors(form, task.result())
            if errors:
                await ack(response_action="errors", errors=errors)
                return
        await ack()  # closes the modal; the answer is posted when the command is done
        decided = form.given.get("id") if form.command in DECISIONS else None
        self._spawn(self._finish(task, ctx, place, decided))

    async def _finish(
        self, task: asyncio.Task[Reply], ctx: Context, place: Place, decided: str | None
    ) -> None:
        try:
            reply = await task
            await self._deliver(ctx, reply, place, decided=decided, show=_shown(reply, decided))
        except Exception:
            await self.failed(place, "that form")
        await self.alerts_now()

    async def _more(self, ctx: Context, place: Place, value: str) -> None:
        """The next page of a list, behind the same roles as `lookup` (through `run`)."""
        try:
            data = json.loads(value)
            lookup, raw = parse(str(data["line"]))
            base = (int(data["s"]), int(data["o"]))
        except (ValueError, KeyError, TypeError, UserError):
            await self._deliver(ctx, Reply.fail("usage", "that button is out of date"), place)
            return
        if lookup.name != "lookup":
            await self._deliver(ctx, Reply.fail("usage", "only lookups have more pages"), place)
            return
        reply = await self._in_line(place, str(data["line"]), lambda: self.run_command(
            ctx, LOOKUP_PAGE, {"query": raw.get("query"), "section": base[0], "offset": base[1]}
        ))  # fmt: skip
        await self._deliver(ctx, reply, place, line=data["line"], page=base)

    async def _on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """A new message in a helpdesk channel naming a customer gets the card in its thread, once."""
        self._track()
        channel = event.get("channel")
        ts = event.get("ts")
        if channel not in self.settings.helpdesk_channels or not ts:
            return
        # Integrations post as `bot_message`; edits, joins and deletions are not tickets.
        if event.get("subtype") not in (None, "bot_message") or event.get("thread_ts") not in (
            None,
            ts,
        ):
            return
        candidates = find_references(event)[:MAX_CANDIDATES]
        if not candidates:
            return
        try:
            kind = await self._channel_kind(channel, shared=bool(body.get("is_ext_shared_channel")))
            if kind == ChannelKind.shared:
                log.info("helpdesk channel %s is shared: no card posted there", channel)
                return
            if not await self._claim(channel, ts):
                return
            auto = Actor(
                platform=PLATFORM,
                id=context.bot_user_id or "chargedesk",
                name="ChargeDesk helpdesk lookup",
                roles=frozenset({Role.agent}),
            )
            ctx = self.context(auto, channel, kind)
            for candidate in candidates:
                line = f"lookup {candidate}"
                reply = await self._in_line(None, line, partial(self.run_line, ctx, line))
                if reply.error is None and reply.cards:
                    # The router marks agent answers outside internal channels ephemeral; a
                    # helpdesk channel is the team's own ticket feed (checked not shared above),
                    # and the card is for whoever picks up the ticket.
                    for message in reply_messages(
                        reply, link=self._link, pager=_pager(line, None), max_rows=COMPACT_ROWS
                    ):
                        await self._post(Place(channel, "", ts), message, private=False)
                    return
        except Refused as exc:
            log.warning("helpdesk channel %s: %s", channel, exc)
        except Exception:
            log.exception("helpdesk lookup in %s failed", channel)

    async def _on_sharing_changed(self, event: dict[str, Any]) -> None:
        """A channel was shared or unshared: forget what we knew about it."""
        channel = event.get("channel")
        if channel:
            try:
                await self.services.redis.delete(
                    self.services.key("slack", "conversation", channel)
                )
            except RedisError:
                log.warning("cannot forget the sharing state of %s", channel)

    async def _in_line(
        self, place: Place | None, line: str, work: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        """A lookup runs once it has a slot (`lookup_slots`): an agent whose lookup waited
        `lookup.busy_notice` seconds is told, privately, that the card follows. A lookup
        that found nobody because a gateway timed out is asked once more before the agent
        reads "could not answer" (under a burst the timeout may be our own load)."""
        settings = self.services.settings.lookup
        line_of = lookup_slots.slots(self.services)

        async def busy(ahead: int) -> None:
            assert place is not None
            said = (
                f"Busy: {ahead} lookup{'s' if ahead != 1 else ''} ahead of yours; "
                f"the card for `{clip(escape(line), 100)}` follows."
            )
            note = SlackMessage(text=said, blocks=[context(f":hourglass_flowing_sand: {said}")])
            # The response_url first: Slack's Web API allows 100 ephemeral messages a minute.
            async with self._notices:  # a few at a time: hundreds at once starve the lookups
                if place.response_url:
                    await self._respond(place, note)
                else:
                    await self._post(place, note, private=True)

        async with line_of.slot(
            busy_after=settings.busy_notice, busy=busy if place is not None else None
        ):
            reply = await work()
        if reply.error is not None and reply.error.code == TIMED_OUT:
            log.info("lookup %r timed out: asked once more", line)
            async with line_of.slot():
                reply = await work()
        return reply

    # --- who and where --------------------------------------------------------------------

    async def _context(
        self, *, user: str, name: str | None, team: str | None, channel: str, home: str | None
    ) -> Context:
        """The core's Context for a Slack user in a conversation, or Refused when in doubt."""
        kind = await self._channel_kind(channel)
        actor, external = await self._actor(user, name=name, team=team, home=home)
        if external:
            kind = ChannelKind.shared  # someone from outside is in this conversation
        return self.context(actor, channel, kind)

    async def _actor(
        self, user: str, *, name: str | None, team: str | None, home: str | None
    ) -> tuple[Actor, bool]:
        """The user with the roles config gives them; an external user is a customer at most."""
        info = await self._user_info(user)
        external = bool(team and home and team != home) or bool(info and info.get("stranger"))

        async def holds(entry: str) -> bool:  # a user ID (U…), or a user group (S…) they are in
            return entry == user or (entry.startswith("S") and user in await self._group(entry))

        shown = (info or {}).get("name") or name or user
        return await self.person(user, shown, holds, external=external), external

    async def _cached(self, key: str) -> Any:
        try:
            raw = await self.services.redis.get(key)
        except RedisError:
            return None
        return json.loads(raw) if raw else None

    async def _cache(self, key: str, value: Any, ttl: int) -> None:
        try:
            await self.services.redis.set(key, json.dumps(value), ex=ttl)
        except RedisError:
            log.warning("cannot cache %s: Redis unavailable", key)

    async def _group(self, group_id: str) -> frozenset[str]:
        """Members of a Slack user group (cached a few minutes); unknown means nobody."""
        key = self.services.key("slack", "usergroup", group_id)
        members = await self._cached(key)
        if members is None:
            try:
                answer = await self.client.usergroups_users_list(usergroup=group_id)
            except Exception as exc:
                log.warning("cannot list user group %s: %s", group_id, exc)
                return frozenset()
            members = list(answer.get("users") or [])
            await self._cache(key, members, GROUP_TTL)
        return frozenset(members)

    async def _user_info(self, user: str) -> dict[str, Any] | None:
        key = self.services.key("slack", "user", user)
        info = await self._cached(key)
        if info is None:
            try:
                found = (await self.client.users_info(user=user))["user"]
            except Exception as exc:
                # Roles come from configured IDs, not from users.info: only the name is lost.
                log.warning("users.info %s failed: %s", user, exc)
                return None
            profile = found.get("profile") or {}
            info = {
                "name": found.get("real_name") or profile.get("real_name") or found.get("name"),
                "stranger": bool(found.get("is_stranger")),
            }
            await self._cache(key, info, USER_TTL)
        return info  # type: ignore[no-any-return]

    async def _channel_kind(self, channel: str, *, shared: bool = False) -> ChannelKind:
        """internal, helpdesk or shared (Slack Connect); Refused when Slack cannot tell us."""
        if shared:
            return ChannelKind.shared
        key = self.services.key("slack", "conversation", channel)
        state = await self._cached(key)
        if state is None:
            try:
                info = (await self.client.conversations_info(channel=channel))["channel"]
            except Exception as exc:
                # Fail closed: without knowing who reads here, nothing may be said here.
                reason = (
                    exc.response.get("error")
                    if isinstance(exc, SlackApiError)
                    else type(exc).__name__
                )
                raise Refused(
                    f"I could not check who can read this conversation (conversations.info: {reason}), "
                    "so I will not answer here. Invite me to the channel, or use a direct message with me."
                ) from None
            flags = ("is_ext_shared", "is_shared", "is_pending_ext_shared")
            state = "shared" if any(info.get(flag) for flag in flags) else "private"
            await self._cache(key, state, CHANNEL_TTL)
        if state == "shared":
            return ChannelKind.shared
        if channel in self.settings.helpdesk_channels:
            return ChannelKind.helpdesk
        return ChannelKind.internal

    async def _claim(self, channel: str, ts: str) -> bool:
        """True for the first helpdesk card in this thread, ever (within a month)."""
        try:
            return bool(
                await self.services.redis.set(
                    self.services.key("slack", "helpdesk", channel, ts),
                    "1",
                    nx=True,
                    ex=HELPDESK_WINDOW,
                )
            )
        except RedisError:
            log.warning("cannot claim helpdesk thread %s/%s: Redis unavailable", channel, ts)
            return False  # without the claim a retry could post twice: post nothing

    def _link(self, gateway: str, object_id: str) -> str | None:
        found = self.services.gateways.by_name.get(gateway)
        return found.dashboard_url(object_id) if found is not None else None

    # --- answers --------------------------------------------------------------------------

    async def _deliver(
        self,
        ctx: Context,
        reply: Reply,
        place: Place,
        *,
        line: str | None = None,
        page: tuple[int, int] | None = None,
        decided: str | None = None,
        show: bool = True,
    ) -> None:
        """Post a reply where it belongs: publicly, privately, or as an approval thread."""
        await self.settle_decision(ctx, decided, reply)
        if not show:
            return
        if self.pending(reply) and not decided:
            await self.post_approval(ctx, reply, place)
            return
        private = self.private(ctx, reply)
        messages = reply_messages(reply, link=self._link, pager=_pager(line, page))
        public_files = (
            bool(reply.files) and not private and ctx.channel.kind == ChannelKind.internal
        )
        if reply.files and not public_files:
            # A customer's document never lands where the answer would not: it goes to the
            # requester's direct messages, and the private answer says so.
            note = await self._send_privately(place, reply.files, agent=ctx.actor.has(Role.agent))
            messages[-1] = SlackMessage(
                messages[-1].text, _noted(messages[-1].blocks, context(note))
            )
        for message in messages:
            await self._post(place, message, private=private)
        if public_files:
            await self._share(place, reply.files)

    async def post_beside(self, ctx: Context, reply: Reply, place: Place) -> Copy | None:
        """A thread reply under the agent's message (a slash command gets a line to stand for it)."""
        title = reply.cards[0].title if reply.cards else ""
        root = place.thread_ts
        if root is None:
            # A slash command leaves no message of its own: this line stands for it.
            asked = SlackMessage(
                text=f"<@{place.user}> asked: {escape(title)}",
                blocks=[section(f"<@{place.user}> asked: {escape(title)}")],
            )
            root = await self._post(place, asked, private=False)
        if root is None:
            return None
        card = reply_messages(reply, link=self._link)[0]
        ts = await self._post(replace(place, thread_ts=root), card, private=False)
        return Copy(place.channel, ts, root) if ts else None

    async def post_to_approvals(
        self, ctx: Context, reply: Reply, place: Place, channel: str
    ) -> Copy | None:
        card = reply_messages(reply, link=self._link)[0]
        note = context(f"Requested by <@{place.user}> in <#{place.channel}>")
        ts = await self._post(
            Place(channel, place.user),
            SlackMessage(text=card.text, blocks=_noted(card.blocks, note)),
            private=False,
        )
        return Copy(channel, ts) if ts else None

    async def say_where_decided(
        self, ctx: Context, reply: Reply, place: Place, channel: str | None
    ) -> None:
        where = f"<#{channel}>" if channel else "`/billing approvals`"
        quiet = reply.model_copy(
            update={"cards": [c.model_copy(update={"actions": []}) for c in reply.cards]}
        )
        for message in reply_messages(quiet, link=self._link):
            blocks = _noted(message.blocks, context(f"A manager decides in {where}."))
            await self._post(place, SlackMessage(message.text, blocks), private=True)

    def _drawn(self, view: ApprovalView) -> SlackMessage:
        card = approval_card(view, locale=self.services.settings.locale)
        return reply_messages(Reply(cards=[card]), link=self._link)[0]

    async def redraw(self, copy: Copy, view: ApprovalView) -> None:
        drawn = self._drawn(view)
        try:
            await self.client.chat_update(
                channel=copy.channel, ts=copy.message, text=drawn.text, blocks=drawn.blocks
            )
        except SlackApiError as exc:
            raise PostFailed(exc.response.get("error")) from exc

    async def tell_requester(self, home: Copy, user: str, view: ApprovalView) -> None:
        drawn = self._drawn(view)
        who = f" (decided by {view.votes[-1].name})" if view.votes else ""
        said = f"{drawn.text}{escape(who)}"  # drawn.text is escaped mrkdwn already
        await self._post(
            Place(home.channel, user, home.thread or home.message),
            SlackMessage(text=f"<@{user}> {said}", blocks=[section(f"<@{user}> {said}")]),
            private=False,
        )

    async def _post(self, place: Place, message: SlackMessage, *, private: bool) -> str | None:
        """Send one message; the posted message's ts, or None (ephemeral, or it failed)."""
        thread = {"thread_ts": place.thread_ts} if place.thread_ts else {}
        if private:
            try:
                await self.client.chat_postEphemeral(
                    channel=place.channel, user=place.user, text=message.text,
                    blocks=message.blocks, **thread,
                )  # fmt: skip
            except SlackApiError as exc:
                log.info(
                    "chat.postEphemeral in %s failed (%s)", place.channel, exc.response.get("error")
                )
                await self._respond(place, message)
            return None
        try:
            answer = await self.client.chat_postMessage(
                channel=place.channel, text=message.text, blocks=message.blocks, **thread
            )
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("chat.postMessage in %s failed (%s)", place.channel, error)
            note = context(f"I could not post in this channel ({error}): invite me with `/invite`.")
            await self._respond(place, SlackMessage(message.text, _noted(message.blocks, note)))
            return None
        return str(answer["ts"])

    async def _upload(
        self, channel: str, files: list[Attachment], *, thread_ts: str | None, comment: str | None
    ) -> None:
        """files.getUploadURLExternal, the bytes to the URL it gives, files.completeUploadExternal."""
        await self.client.files_upload_v2(
            file_uploads=[{"file": f.content, "filename": f.name, "title": f.name} for f in files],
            channel=channel, thread_ts=thread_ts, initial_comment=comment,
        )  # fmt: skip

    async def _share(self, place: Place, files: list[Attachment]) -> None:
        """Files of a public answer in an internal channel: beside it (in its thread, if any)."""
        try:
            await self._upload(place.channel, files, thread_ts=place.thread_ts, comment=None)
        except SlackClientError as exc:
            log.warning("cannot share files in %s: %s", place.channel, _slack_error(exc))
            note = await self._send_privately(place, files)
            await self._post(
                place,
                SlackMessage(note, [context(f"I could not share it here. {note}")]),
                private=True,
            )

    async def _send_privately(
        self, place: Place, files: list[Attachment], *, agent: bool = True
    ) -> str:
        """Upload into the requester's direct messages with the bot; what to tell them (mrkdwn)."""
        names = escape(", ".join(f.name for f in files))
        try:
            opened = await self.client.conversations_open(users=place.user)
            await self._upload(
                opened["channel"]["id"], files, thread_ts=None,
                comment=f"{names}, as you asked in <#{place.channel}>",
            )  # fmt: skip
        except SlackClientError as exc:
            error = _slack_error(exc)
            log.warning("cannot send files to %s privately: %s", place.user, error)
            # Slack Connect guests often cannot get direct messages: their billing page has it too.
            elsewhere = (
                "ask again in an internal channel"
                if agent
                else "get it from your billing page: `/billing portal`"
            )
            return f"I could not send {names} to your direct messages ({error}): {elsewhere}."
        return f":paperclip: {names} is in your direct messages with me."

    async def _respond(self, place: Place, message: SlackMessage) -> None:
        """The response_url: privately to the user, even where the bot is not a member."""
        if not place.response_url:
            return
        try:
            await AsyncWebhookClient(place.response_url).send(
                text=message.text, blocks=message.blocks, response_type="ephemeral",
                replace_original=False,
            )  # fmt: skip
        except Exception as exc:
            log.warning("response_url failed: %s", exc)

    async def send_private(self, place: Place, text: str) -> None:
        # The response_url first: it works where the bot cannot read the conversation.
        if place.response_url:
            await self._respond(place, error_message(text))
        else:
            await self._post(place, error_message(text), private=True)


def _slack_error(exc: SlackClientError) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return type(exc).__name__


def _noted(blocks: list[dict[str, Any]], note: dict[str, Any]) -> list[dict[str, Any]]:
    """The note last, within the 50 blocks a message may have."""
    return [*blocks[: MESSAGE_BLOCKS - 1], note]


def _home(context: AsyncBoltContext) -> str | None:
    """The workspace the app is installed in (from auth.test)."""
    result = context.get("authorize_result")
    return getattr(result, "team_id", None) if result is not None else None


def _shown(reply: Reply, decided: str | None) -> bool:
    """A decision shows as its card updated in place: only a refusal needs its own message."""
    return decided is None or reply.error is not None


def _is_lookup(line: str) -> bool:
    return bool(line.split()) and line.split()[0].lower() == "lookup"


def _pager(line: str | None, base: tuple[int, int] | None) -> Pager | None:
    """The "more" button's value for the cards of a lookup (None for any other command)."""
    if not line or not _is_lookup(line):
        return None

    def value(card_index: int, section_index: int, shown: int) -> str | None:
        if card_index != 0:
            return None
        where = (base[0], base[1] + shown) if base else (section_index, shown)
        return json.dumps({"line": line, "s": where[0], "o": where[1]}, separators=(",", ":"))

    return value
