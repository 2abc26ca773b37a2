"""Intercom's inbox app (Canvas Kit) as a door: the billing card beside the conversation.

Intercom POSTs to our initialize URL when a teammate opens a conversation, and to our
submit URL when they click a button on the canvas; each request is signed
(`X-Body-Signature`, checked in `inbox.py`) and carries the teammate (`admin`), the
`conversation`, the `contact` and, on submit, `component_id`, `input_values` and the
`current_canvas` with the `stored_data` we gave it. We answer a new canvas each time.

Like every door (`bot/doors/base.py`) this turns a request into (Actor, Channel,
command) and draws the core's Reply; no billing rule lives here.

- Who: the teammate's email maps to roles through `[helpdesk.intercom] agents`,
  `managers`, `admins`; the actor is `intercom:<email>`, so `[people]` in the policy can
  declare them one person with their Slack, Discord and shell identities (four-eyes
  compares people). Roles are worked out again on every request, from the signed body.
- A teammate nobody listed is a customer at most, like an unknown chat user; being
  inside the Intercom workspace they still see the billing card, read-only: the door
  runs the lookup for them as a read-only agent and draws no button. Anything else
  they send runs as themselves, so the router refuses it (a forged or replayed button).
- The card: the contact's email is the lookup (identity verified: Intercom knows that
  address for this contact); without one the teammate can search by an ID, and the
  card then says the match is not verified. Long lists page with Previous / Next.
- Buttons: refund, cancel, capture, void (the card's own), email a receipt or an
  invoice; those that need an answer open the core form (`bot/commands/forms.py`),
  the same one Slack and Discord modals are drawn from, and its submission runs the
  same command through the router and the approval policy. One submission per form:
  a form carries a nonce that the first submit claims (`bot.deliveries`).
- Approvals: a request waiting for a manager is remembered on the conversation (the
  door base's stored copies), so every canvas of that conversation shows it as it is
  now, with Approve / Deny for managers; a canvas cannot be edited from our side, so
  "redrawing" it is drawing it fresh on the next request. It is also queued, durably,
  for the chat doors' approvals channels (Slack, Discord), whose bots post it with
  Approve / Deny.
- State between steps (`stored_data`) is sealed with the deployment's key and bound to
  the conversation and the teammate; what a button does is read from that state, never
  from the button.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bot import deliveries, notify
from bot.actors import Actor, ChannelKind, Role
from bot.approvals.workflow import ApprovalView, get
from bot.cards.billing import approval_card
from bot.cards.model import Button, Card, Reply, Section, Table
from bot.commands import Context
from bot.commands.forms import Form, asks_first, form_for, submit
from bot.commands.lookup import LOOKUP_PAGE, PAGE_ROWS
from bot.commands.router import COMMANDS, parse
from bot.doors.base import Copy, Door
from bot.errors import UserError
from bot.helpdesk.agents import helpdesk_actor
from bot.helpdesk.intercom.canvas import (
    Action,
    Canvas,
    Tampered,
    form_values,
    seal,
    unseal,
)
from bot.helpdesk.payloads import email, member
from bot.keys import signing_key
from bot.services import Services
from bot.settings import IntercomSettings
from bot.store.tables import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "intercom"
# Rows of each list on the first canvas; the rest pages (the chat cards' page size).
COMPACT_ROWS = 5
# Requests made from a conversation shown on its canvas, newest first.
SHOWN_REQUESTS = 3
# How many "email a receipt / an invoice" buttons, at most each.
DOCUMENT_BUTTONS = 2
INVOICE_SENDABLE = ("open", "paid", "uncollectible", "⚠ overdue")


@dataclass
class Screen:
    """One canvas being answered: for whom, about which conversation and customer."""

    conversation: str
    admin: str
    query: str | None = None  # what the card looks up: the contact's email, or a typed ID
    verified: bool = False  # the query is the contact's own email
    notices: list[tuple[str, str]] = field(default_factory=list)  # (text, style) on top


class IntercomDoor(Door[Screen]):
    """The canvas door: `initialize` and `submit` answer Intercom's requests with a canvas."""

    platform = PLATFORM

    def __init__(self, settings: IntercomSettings, services: Services | None = None) -> None:
        self.settings = settings
        if services is not None:
            self.attach(services)

    def serve(self, services: Services) -> None:
        """Serve these services (once; the web app's are known only after start-up)."""
        if getattr(self, "services", None) is not services:
            self.attach(services)

    # --- who ------------------------------------------------------------------------------

    def role_entries(self) -> dict[Role, list[str]]:
        return {
            Role.agent: self.settings.agents,
            Role.manager: self.settings.managers,
            Role.admin: self.settings.admins,
            Role.finance: self.settings.finance,
        }

    async def actor(self, admin: Any) -> Actor:
        """The teammate Intercom sent, with the roles their email has in config.

        A teammate in no list is read-only staff (`Role.viewer`): the card, no action.
        """
        name = member(admin, "name")
        return helpdesk_actor(
            PLATFORM,
            self.settings,
            email(member(admin, "email")),
            name if isinstance(name, str) else None,
            member(admin, "id") or "unknown",
        )

    def _ctx(self, actor: Actor, screen: Screen) -> Context:
        return self.context(actor, screen.conversation, ChannelKind.internal)

    # --- Intercom's requests --------------------------------------------------------------

    def _screen(self, payload: Mapping[str, Any]) -> Screen:
        conversation = member(payload, "conversation", "id")
        admin = member(payload, "admin", "id")
        contact = email(member(payload, "contact", "email"))
        return Screen(
            # Stored beside the requests made from it (a 64-character column).
            conversation=str(conversation)[:64] if conversation is not None else "",
            admin=str(admin) if admin is not None else "",
            query=contact.lower() if contact else None,
            verified=contact is not None,
        )

    async def initialize(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The first canvas: the contact's billing card."""
        screen = self._screen(payload)
        return await self._card(await self.actor(payload.get("admin")), screen)

    async def submit(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A click or a form sent: what the sealed state says the component does."""
        screen = self._screen(payload)
        actor = await self.actor(payload.get("admin"))
        try:
            state = unseal(member(payload, "current_canvas", "stored_data"), self._key())
            if state.get("c") != screen.conversation or state.get("a") != screen.admin:
                raise Tampered("the canvas was drawn for another conversation or teammate")
        except Tampered as exc:
            log.warning("intercom submit refused for %s: %s", actor.key, exc)
            screen.notices.append(
                ("That card was changed on its way back: nothing was done.", "error")
            )
            return await self._card(actor, screen)
        screen.query, screen.verified = state.get("q"), bool(state.get("v"))
        action = (state.get("b") or {}).get(str(payload.get("component_id")))
        if not isinstance(action, dict):
            screen.notices.append(("That button is not on this card: nothing was done.", "error"))
            return await self._card(actor, screen)
        values = payload.get("input_values")
        values = values if isinstance(values, dict) else {}
        return await self._act(actor, screen, action, state, values)

    async def _act(
        self,
        actor: Actor,
        screen: Screen,
        action: Action,
        state: dict[str, Any],
        values: dict[str, Any],
    ) -> dict[str, Any]:
        if "page" in action:
            section, offset = action["page"]
            return await self._page(actor, screen, int(section), int(offset))
        if "search" in action:
            typed = str(values.get("search_query") or "").strip()
            screen.query, screen.verified = (typed or None), False
            return await self._card(actor, screen)
        if "submit" in action and isinstance(state.get("f"), dict):
            return await self._send_form(actor, screen, state, values)
        if "run" in action:
            return await self._run(actor, screen, str(action["run"]), str(action.get("label", "")))
        return await self._card(actor, screen)

    async def _run(self, actor: Actor, screen: Screen, line: str, label: str) -> dict[str, Any]:
        ctx = self._ctx(actor, screen)
        try:
            spec, raw = parse(line)
        except UserError as exc:
            return await self._answer(ctx, Reply.fail(exc.code, exc.message), screen)
        if spec.name == "approve":
            reply = await self.run_command(ctx, spec, raw)
            return await self._answer(ctx, reply, screen, decided=str(raw.get("id")))
        if spec.name in ("refund", "cancel", "deny") or asks_first(spec, raw):
            if not spec.allowed(actor):
                needed = " or ".join(sorted(r.value for r in spec.roles))
                log.warning("%s may not run %s", actor.key, spec.name)
                reply = Reply.fail("forbidden", f"{spec.name} needs the {needed} role")
                return await self._answer(ctx, reply, screen)
            try:
                form = await form_for(ctx, spec, raw, label or spec.name.capitalize())
            except UserError as exc:
                return await self._answer(ctx, Reply.fail(exc.code, exc.message), screen)
            return self._form(screen, form)
        return await self._answer(ctx, await self.run_command(ctx, spec, raw), screen)

    async def _send_form(
        self, actor: Actor, screen: Screen, state: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any]:
        form = Form.model_validate(state["f"])
        typed = form_values(form, values)
        nonce = str(state.get("n") or "")
        key = deliveries.delivery_key("form", screen.conversation, nonce)
        if not nonce or not await deliveries.first(self.services, PLATFORM, key, "form"):
            screen.notices.append(("That form was already sent: it ran once.", "muted"))
            return await self._card(actor, screen)
        ctx = self._ctx(actor, screen)
        reply = await submit(ctx, form, typed)
        decided = form.given.get("id") if form.command == "deny" else None
        if reply.error is not None:
            await self.settle_decision(ctx, decided, reply)
            return self._form(screen, form, values=typed, error=reply.error.message)
        return await self._answer(ctx, reply, screen, decided=decided)

    async def _answer(
        self, ctx: Context, reply: Reply, screen: Screen, *, decided: str | None = None
    ) -> dict[str, Any]:
        """The card again, with what the command answered on top."""
        await self.settle_decision(ctx, decided, reply)
        if reply.error is not None:
            screen.notices.append((reply.error.message, "error"))
            return await self._card(ctx.actor, screen)
        top = reply.cards
        if reply.approval is not None and not decided:
            if self.pending(reply):
                await self.post_approval(ctx, reply, screen)
                screen.notices.append((
                    f"Waiting for approval {reply.approval.id}: a manager decides "
                    f"({self._where_decided()}).", "paragraph",
                ))  # fmt: skip
                top = []  # the request shows below, as it is now
            else:
                await self.remember(reply.approval.id, Copy(screen.conversation, reply.approval.id))
        if reply.files:
            screen.notices.append((
                "A canvas cannot carry files: use the email buttons, or `/billing` in chat.", "muted",
            ))  # fmt: skip
        return await self._card(ctx.actor, screen, top=top)

    # --- canvases -------------------------------------------------------------------------

    def _key(self) -> bytes:
        return signing_key(self.services.settings)

    def _drawn(self, canvas: Canvas, screen: Screen, **extra: Any) -> dict[str, Any]:
        state = {
            "c": screen.conversation, "a": screen.admin, "q": screen.query,
            "v": screen.verified, "b": canvas.actions, **extra,
        }  # fmt: skip
        return canvas.drawn(seal(state, self._key()))

    def _form(
        self,
        screen: Screen,
        form: Form,
        *,
        values: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        canvas = Canvas()
        canvas.form(form, values=values, error=error)
        nonce = secrets.token_hex(12)
        return self._drawn(canvas, screen, f=form.model_dump(mode="json"), n=nonce)

    def _buttons(self, actor: Actor) -> Any:
        """What each card button does for this teammate: none they may not run."""

        def act(button: Button) -> Action | None:
            if not button.command:
                return None
            name = button.command.split(maxsplit=1)[0].lower()
            spec = COMMANDS.get(name)
            if spec is None or not spec.allowed(actor):
                return None
            return {"run": button.command, "label": button.label}

        return act

    async def _card(
        self, actor: Actor, screen: Screen, *, top: list[Card] | None = None
    ) -> dict[str, Any]:
        canvas = Canvas()
        for said, style in screen.notices:
            canvas.note(said, style)
        for card in top or []:
            canvas.card(card)
        act = self._buttons(actor)
        for view in await self._requests(screen.conversation):
            canvas.card(approval_card(view, locale=self.services.settings.locale), act=act)
            canvas.add({"type": "divider"})
        if screen.query is None:
            canvas.note("This contact has no email address: search by a charge, invoice, "
                        "subscription or customer ID (the match is not verified).", "muted")  # fmt: skip
            canvas.add({"type": "input", "id": "search_query", "label": "Search billing"})
            canvas.button("Search", {"search": True}, style="primary")
            return self._drawn(canvas, screen)
        reader = self._ctx(actor, screen)
        reply = await self.run_command(reader, COMMANDS["lookup"], {"query": screen.query})
        if reply.error is not None or not reply.cards:
            canvas.note(reply.error.message if reply.error else "Nothing found.", "error")
            return self._drawn(canvas, screen)
        canvas.note(self._confidence(screen), "muted")
        card = _compact(_with_documents(reply.cards[0]))
        if not actor.has(Role.agent):
            canvas.note("Read-only: ask an admin to add your Intercom email to ChargeDesk's "
                        "agents to act from here.", "muted")  # fmt: skip
        canvas.card(
            card,
            act=act,
            pager=lambda index, table: (
                [("Next", {"page": [index, len(table.rows)]})] if table.more else []
            ),
        )
        return self._drawn(canvas, screen)

    async def _page(
        self, actor: Actor, screen: Screen, section: int, offset: int
    ) -> dict[str, Any]:
        """One page of one list, with Previous / Next and the way back to the card."""
        if offset <= 0 or screen.query is None:
            return await self._card(actor, screen)
        raw = {"query": screen.query, "section": section, "offset": offset}
        reply = await self.run_command(self._ctx(actor, screen), LOOKUP_PAGE, raw)
        if reply.error is not None or not reply.cards:
            screen.notices.append(
                (reply.error.message if reply.error else "Nothing more.", "error")
            )
            return await self._card(actor, screen)
        canvas = Canvas()
        canvas.note(self._confidence(screen), "muted")

        def pager(_: int, table: Table) -> list[tuple[str, Action]]:
            back = offset - PAGE_ROWS
            buttons: list[tuple[str, Action]] = [
                ("Previous", {"page": [section, back]} if back > 0 else {"card": True})
            ]
            if table.more:
                buttons.append(("Next", {"page": [section, offset + len(table.rows)]}))
            return buttons

        canvas.card(reply.cards[0], pager=pager)
        canvas.button("Back to the card", {"card": True}, style="primary")
        return self._drawn(canvas, screen)

    @staticmethod
    def _confidence(screen: Screen) -> str:
        if screen.verified:
            return f"Matched by the contact's email {screen.query} (verified)."
        return f"Matched by {screen.query}, typed by a teammate: not verified, check it is them."

    async def _requests(self, conversation: str) -> list[ApprovalView]:
        """The requests made from this conversation's canvas, newest first, as they are now."""
        async with self.services.db.read() as session:
            ids = list(
                await session.scalars(
                    select(ChatMessage.approval_id)
                    .where(ChatMessage.platform == PLATFORM, ChatMessage.channel_id == conversation)
                    .order_by(ChatMessage.created.desc())
                    .limit(SHOWN_REQUESTS)
                )
            )
        return [await get(self.services, approval_id) for approval_id in ids]

    # --- what the door base leaves to a door ----------------------------------------------

    def _chat_approvals(self) -> list[str]:
        """The chat doors' approvals channels, named with their platform."""
        settings = self.services.settings
        found = []
        if settings.slack.approvals_channel:
            found.append(f"slack:{settings.slack.approvals_channel}")
        if settings.discord.approvals_channel:
            found.append(f"discord:{settings.discord.approvals_channel}")
        return found

    def _where_decided(self) -> str:
        chats = self._chat_approvals()
        places = " and ".join(c.split(":", 1)[0].capitalize() for c in chats)
        return (
            f"in the {places} approvals channel or on this card"
            if chats
            else "on this card, or with `/billing approvals`"
        )

    @property
    def approvals_channel(self) -> str | None:
        chats = self._chat_approvals()
        return chats[0] if chats else None

    async def post_beside(self, ctx: Context, reply: Reply, where: Screen) -> Copy | None:
        # The conversation's canvas shows the request on every draw: remembered by conversation.
        assert reply.approval is not None
        return Copy(where.conversation, reply.approval.id)

    async def post_to_approvals(
        self, ctx: Context, reply: Reply, where: Screen, channel: str
    ) -> Copy | None:
        """Queued for each chat approvals channel; that platform's bot posts it (any process)."""
        assert reply.approval is not None
        view = await get(self.services, reply.approval.id)
        card = approval_card(view, locale=self.services.settings.locale)
        card.sections.append(
            Section(
                text=f"Asked in Intercom by {ctx.actor.name} (conversation {where.conversation}).",
                tone="muted",
            )
        )
        async with self.services.db.write() as session:
            for chat in self._chat_approvals():
                await notify.queue(session, kind="approval", card=card, channel=chat)
        return None  # posted by another door: this one cannot edit it

    async def say_where_decided(
        self, ctx: Context, reply: Reply, where: Screen, channel: str | None
    ) -> None:
        where.notices.append((f"A manager decides {self._where_decided()}.", "muted"))

    async def redraw(self, copy: Copy, view: ApprovalView) -> None:
        pass  # a canvas is drawn fresh on each request: the next one shows the request as it is

    async def tell_requester(self, home: Copy, user: str, view: ApprovalView) -> None:
        pass  # the requester sees the outcome on the conversation's canvas

    async def send_private(self, where: Screen, text: str) -> None:
        where.notices.append((text, "error"))  # a canvas is seen by the teammate alone

    async def alert_place(self, channel: str) -> bool:
        return False  # alerts go to chat channels; a canvas has no channel of its own

    async def post_alert(self, channel: str, card: Card) -> Copy | None:
        return None


def _with_documents(card: Card) -> Card:
    """The card's actions, and the documents that go with them: email a paid charge's
    receipt (a charge the card offers to refund), or an invoice the card lists."""
    extra: list[Button] = []
    for button in card.actions:
        words = button.command.split()
        if len(words) >= 2 and words[0] == "refund" and len(extra) < DOCUMENT_BUTTONS:
            charge = words[1]
            extra.append(
                Button(
                    label=f"Email receipt {charge.split(':')[-1]}", command=f"receipt {charge} send"
                )
            )
    invoices = next((s.table for s in card.sections if s.title == "Invoices" and s.table), None)
    sent = 0
    for row in invoices.rows if invoices is not None else []:
        if sent < DOCUMENT_BUTTONS and len(row) >= 4 and row[3] in INVOICE_SENDABLE:
            extra.append(
                Button(label=f"Email invoice {row[1] or row[0]}", command=f"invoice send {row[0]}")
            )
            sent += 1
    return card.model_copy(update={"actions": [*card.actions, *extra]})


def _compact(card: Card) -> Card:
    """At most COMPACT_ROWS rows per list; the rest counted, for Next."""
    sections = []
    for section in card.sections:
        table = section.table
        if table is not None and len(table.rows) > COMPACT_ROWS:
            table = table.model_copy(
                update={
                    "rows": table.rows[:COMPACT_ROWS],
                    "more": table.more + len(table.rows) - COMPACT_ROWS,
                }
            )
            section = section.model_copy(update={"table": table})
        sections.append(section)
    return card.model_copy(update={"sections": sections})
