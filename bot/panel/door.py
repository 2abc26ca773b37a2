"""The agent panel as a door: the billing card beside a ticket, and the actions on it.

Like every door (`bot/doors/base.py`) this turns a click into (Actor, Channel, command),
calls the core and draws the core's Reply; no billing rule lives here. `app.py` speaks
HTTP (sessions, CSRF, templates); this module decides what a page shows and does.

- Who: the session's agent (`session.actor`: roles by email from `[helpdesk.<name>]`,
  worked out on every request; an unvouched email not yet confirmed reaches no page of
  this door at all: `app._guarded` sends it to the confirmation step).
- Where: each ticket is a place, `<helpdesk>:<ticket>` (a session opened without a ticket
  is its own place). Requests made from a ticket are remembered there (the door base's
  stored copies) and drawn, as they are now, on every page of that ticket: "redrawing"
  a panel is drawing it fresh on the next load; a page waiting for a decision reloads
  itself. Requests are also queued for the chat doors' approvals channels.
- The card: the requester's email is the lookup (verified: the helpdesk received the
  ticket from it); an ID typed or chosen among several matches is not verified unless
  every customer found has that same email. Every row gets the buttons of what the agent
  may do with it (refund, capture, void, cancel, email a receipt or an invoice).
- Buttons: what a button does is sealed on the server's side (HMAC with the deployment's
  key, bound to the session), never read from the form. Buttons that need an answer open
  the core form (`bot/commands/forms.py`); a form's submission, and every one-click action,
  carries a nonce claimed once (`bot.deliveries`): it runs once however often it is sent.
- Traces: a panel action that succeeds puts an internal note in the ticket
  (`reply:<request or nonce>`), and a request made from a ticket puts its outcome there
  when it is decided anywhere (`decided:<approval id>`, from `redraw`), through
  `bot.helpdesk.ticket_trace` (once per topic, posted by the job queue).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from bot import deliveries, lookup_cache, notify
from bot.actors import SYSTEM, Actor, ChannelKind, Role
from bot.approvals.workflow import FINAL, ApprovalView, State, expire_due, get, listing
from bot.cards.billing import approval_card
from bot.cards.model import Attachment, Card, Reply, Section
from bot.commands import Context
from bot.commands.forms import Form, asks_first, form_for, submit
from bot.commands.router import COMMANDS, Command, parse
from bot.doors import places
from bot.doors.base import Copy, Door
from bot.errors import UserError
from bot.helpdesk import ticket_trace
from bot.keys import signing_key
from bot.models import BillingProfile, ChargeStatus, InvoiceStatus
from bot.panel.reports import CHART, COMMAND, FILES, ReportAsk, keep_chart, kept_chart
from bot.panel.session import PanelSession, url
from bot.services import Services
from bot.store.tables import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "panel"
SHOWN_REQUESTS = 5  # requests made from one ticket, newest first
WAITING_SHOWN = 50  # requests listed on the approvals page
REFRESH_SECONDS = 15  # a page with a request still waiting reloads itself this often
_SEAL = b"chargedesk:panel-seal:"
_RECEIPTS = (ChargeStatus.succeeded, ChargeStatus.partially_refunded, ChargeStatus.refunded)
_INVOICES = (InvoiceStatus.open, InvoiceStatus.paid, InvoiceStatus.uncollectible)
_CANCELABLE = ("active", "trialing", "past_due", "unpaid")


class Tampered(Exception):
    """A sealed field we did not seal, or sealed for another session: nothing runs."""


@dataclass(frozen=True)
class Notice:
    """One line on top of a page: `words` is a panel message key, or None for core text."""

    text: str
    tone: str = "info"  # info, success, error, muted
    words: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Screen:
    """One page being answered: for whom, about which ticket and which customer."""

    session: PanelSession
    actor: Actor
    view: str | None = None  # None: the ticket requester; else an ID typed or chosen
    notices: list[Notice] = field(default_factory=list)

    @property
    def place(self) -> str:
        """Where requests made from this page are remembered: the ticket, else the session."""
        if self.session.ticket:
            return f"{self.session.helpdesk}:{self.session.ticket}"
        return f"session:{self.session.id}"

    def say(self, key: str, tone: str = "info", **values: str) -> None:
        self.notices.append(Notice("", tone, key, values))

    def core(self, text: str, tone: str = "error") -> None:
        self.notices.append(Notice(text, tone))

    @property
    def reports(self) -> bool:
        """Whether this agent may read the finance reports (the router checks again)."""
        spec = COMMANDS.get(COMMAND)
        return spec is not None and spec.allowed(self.actor)


@dataclass(frozen=True)
class Drawn:
    """A button on a page: its label, its sealed action, its look."""

    label: str
    sealed: str
    style: str = "default"


@dataclass
class Page:
    """What a route answers: a template and its values, or a redirect."""

    template: str
    values: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    redirect: str | None = None


@dataclass(frozen=True)
class Match:
    """One customer among several a lookup found, for the switch between them."""

    gateway: str
    customer_id: str
    name: str | None
    email: str | None


class PanelDoor(Door[Screen]):
    """The panel door: each method answers one page for one session's agent."""

    platform = PLATFORM

    def __init__(self, services: Services | None = None) -> None:
        if services is not None:
            self.attach(services)

    def serve(self, services: Services) -> None:
        """Serve these services (once; the web app's are known only after start-up)."""
        if getattr(self, "services", None) is not services:
            self.attach(services)

    # --- who ------------------------------------------------------------------------------

    def role_entries(self) -> dict[Role, list[str]]:
        return {}  # roles come from each helpdesk's lists by email (`session.actor`)

    def _ctx(self, screen: Screen) -> Context:
        return self.context(screen.actor, screen.place, ChannelKind.internal)

    # --- sealing what a button does -------------------------------------------------------

    def seal(self, screen: Screen, state: Mapping[str, Any]) -> str:
        """`state` bound to this session, signed: what a button or a form will do."""
        body = json.dumps({**state, "s": screen.session.id}, sort_keys=True, separators=(",", ":"))
        packed = base64.urlsafe_b64encode(body.encode()).decode()
        return f"{packed}.{self._mac(packed)}"

    def unseal(self, screen: Screen, sealed: str) -> dict[str, Any]:
        packed, _, given = sealed.partition(".")
        if not packed or not hmac.compare_digest(self._mac(packed).encode(), given.encode()):
            raise Tampered("the button's seal does not match")
        try:
            state = json.loads(base64.urlsafe_b64decode(packed.encode()))
        except ValueError:
            raise Tampered("the button's state is not ours") from None
        if not isinstance(state, dict) or state.get("s") != screen.session.id:
            raise Tampered("the button was drawn for another session")
        return state

    def _mac(self, packed: str) -> str:
        key = signing_key(self.services.settings)
        return hmac.new(key, _SEAL + packed.encode(), hashlib.sha256).hexdigest()

    def _button(self, screen: Screen, label: str, line: str, style: str = "default") -> Drawn:
        action = {"run": line, "label": label, "v": screen.view, "n": secrets.token_hex(12)}
        return Drawn(label, self.seal(screen, action), style)

    def _may(self, actor: Actor, line: str) -> bool:
        spec = COMMANDS.get(line.split(maxsplit=1)[0].lower()) if line.strip() else None
        return spec is not None and spec.allowed(actor)

    # --- pages ----------------------------------------------------------------------------

    async def card(self, screen: Screen, *, top: list[Card] | None = None) -> Page:
        """The billing card of the customer in view, with the ticket's requests and notices."""
        session = screen.session
        query = screen.view or session.requester
        if query is None:
            return await self.search(screen)
        requests = await self._requests(screen)
        values: dict[str, Any] = {
            "top": [self._drawn_card(screen, c) for c in top or []],
            "requests": requests,
            "waiting": await self._waiting_count(screen.actor),
            "refresh_seconds": REFRESH_SECONDS,
            "refresh_url": _card_url(session, screen.view)
            if any(r["pending"] for r in requests)
            else None,
            "card": None, "matches": [], "verified": False, "query": query,
            "view": screen.view,
        }  # fmt: skip
        reply = await self.run_command(self._ctx(screen), COMMANDS["lookup"], {"query": query})
        if reply.error is not None or not reply.cards:
            screen.core(reply.error.message if reply.error else "Nothing found.")
            values["notices"] = screen.notices
            return Page("card.html", values)
        profile = await lookup_cache.lookup(self.services, query)
        values["verified"] = _verified(session, profile)
        values["matches"] = _matches(profile)
        values["card"] = self._drawn_card(screen, reply.cards[0], rows=_row_actions(profile))
        values["notices"] = screen.notices
        return Page("card.html", values)

    async def search(self, screen: Screen, typed: str | None = None, *, status: int = 200) -> Page:
        """The search form; a typed email with several customers shows them to choose from."""
        values: dict[str, Any] = {"typed": typed or "", "matches": [], "notices": screen.notices}
        if typed is None:
            return Page("search.html", values, status)
        typed = typed.strip()
        if len(typed) < 3 or len(typed) > 320 or any(c.isspace() for c in typed):
            screen.say("search_invalid", "error")
            return Page("search.html", values, 400)
        if "@" not in typed:  # an ID: its card has an address of its own
            return Page("", redirect=_card_url(screen.session, typed))
        reply = await self.run_command(self._ctx(screen), COMMANDS["lookup"], {"query": typed})
        if reply.error is not None:
            screen.core(reply.error.message)
            return Page("search.html", values, 404 if reply.error.code == "not_found" else 400)
        matches = _matches(await lookup_cache.lookup(self.services, typed))
        if len(matches) == 1:
            return Page("", redirect=_card_url(screen.session, matches[0].customer_id))
        values["matches"] = matches
        return Page("search.html", values)

    async def approvals(self, screen: Screen) -> Page:
        """Requests waiting for this person's decision, and their own still waiting."""
        await expire_due(self.services, SYSTEM)
        pending = await listing(self.services, [State.pending], limit=WAITING_SHOWN)
        same = self.services.policy.same_person
        actor = screen.actor
        waiting = [v for v in pending if _may_decide(self.services, actor, v)]
        mine = [v for v in pending if same(v.requester_key, actor.key)]
        return Page(
            "approvals.html",
            {
                "notices": screen.notices,
                "waiting": [self._request(screen, v) for v in waiting],
                "mine": [self._request(screen, v) for v in mine],
                "refresh_seconds": REFRESH_SECONDS,
                "refresh_url": url(screen.session.id, "approvals") if mine else None,
            },
        )

    async def reports(self, screen: Screen, ask: ReportAsk | None) -> Page:
        """The reports form; a report asked for: its card, its chart and its downloads.
        Whom the router does not let run `report` gets its refusal line and no form."""
        if ask is None and screen.reports:
            return self._reports_page(screen, None, None)
        reply = await self._report(screen, ask, CHART)
        if ask is not None:  # its chart is asked for next: drawn by this build, not another
            await keep_chart(self.services, screen.session.id, ask, reply)
        return self._reports_page(screen, ask, reply)

    async def report_file(self, screen: Screen, ask: ReportAsk, fmt: str) -> Attachment | Page:
        """A report's chart (`CHART`) or its export (`FILES`), the command run again; the
        reports page saying why when there is none."""
        if fmt not in (CHART, *FILES):
            screen.say("reports_bad_format", "error")
            return self._reports_page(screen, ask, None, status=400)
        if fmt == CHART:
            kept = await kept_chart(self.services, screen.session.id, ask)
            if kept is not None:
                return kept
        reply = await self._report(screen, ask, fmt)
        if reply.error is None and reply.files:
            return reply.files[0]
        if reply.error is None:
            screen.say("reports_no_chart", "muted")
            return self._reports_page(screen, ask, None, status=404)
        return self._reports_page(screen, ask, reply)

    async def _report(self, screen: Screen, ask: ReportAsk | None, fmt: str) -> Reply:
        raw = (ask or ReportAsk()).arguments(fmt)
        return await self.run_command(self._ctx(screen), COMMANDS[COMMAND], raw)

    def _reports_page(
        self, screen: Screen, ask: ReportAsk | None, reply: Reply | None, *, status: int = 200
    ) -> Page:
        asked = ask or ReportAsk()
        values: dict[str, Any] = {
            "ask": asked, "report": None, "chart": None, "downloads": [], "refused": False,
            "notices": screen.notices,
        }  # fmt: skip
        if reply is not None and reply.error is not None:
            screen.core(reply.error.message)
            values["refused"] = reply.error.code == "forbidden"
            return Page("reports.html", values, 403 if values["refused"] else 400)
        if reply is not None and reply.cards:
            address = url(screen.session.id, "reports")
            values["report"] = self._drawn_card(screen, reply.cards[0])
            if any(f.mime == "image/png" for f in reply.files):
                values["chart"] = f"{address}/chart.png?{asked.query()}"
            values["downloads"] = [
                (fmt, f"{address}/download?{asked.query(format=fmt)}") for fmt in FILES
            ]
        return Page("reports.html", values, status)

    # --- clicks and forms -----------------------------------------------------------------

    async def act(self, screen: Screen, sealed: str) -> Page:
        """A button: its form, or its command run once."""
        try:
            state = self.unseal(screen, sealed)
        except Tampered as exc:
            log.warning("panel button refused for %s: %s", screen.actor.key, exc)
            screen.say("tampered", "error")
            return await self.card(screen)
        view = state.get("v")
        screen.view = view if isinstance(view, str) else None
        line, label = str(state.get("run") or ""), str(state.get("label") or "")
        ctx = self._ctx(screen)
        try:
            spec, raw = parse(line)
        except UserError as exc:
            return await self._answer(screen, Reply.fail(exc.code, exc.message))
        if spec.name in ("refund", "cancel", "deny") or asks_first(spec, raw):
            if not spec.allowed(screen.actor):
                return await self._answer(screen, _forbidden(spec))
            try:
                form = await form_for(ctx, spec, raw, label or spec.name.capitalize())
            except UserError as exc:
                return await self._answer(screen, Reply.fail(exc.code, exc.message))
            return self.form(screen, form)
        if not await self._claim(screen, str(state.get("n") or "")):
            return await self.card(screen)
        decided = str(raw.get("id")) if spec.name == "approve" else None
        reply = await self.run_command(ctx, spec, raw)
        return await self._answer(screen, reply, decided=decided, nonce=str(state["n"]))

    def form(
        self,
        screen: Screen,
        form: Form,
        *,
        values: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> Page:
        """A core form, sealed with a fresh nonce: its first submission runs, once."""
        state = {"f": form.model_dump(mode="json"), "n": secrets.token_hex(12), "v": screen.view}
        return Page(
            "form.html",
            {
                "form": form,
                "sealed": self.seal(screen, state),
                "typed": dict(values or {}),
                "error": error,
                "notices": screen.notices,
                "back": _card_url(screen.session, screen.view),
            },
            400 if error else 200,
        )

    async def send_form(self, screen: Screen, sealed: str, typed: Mapping[str, str]) -> Page:
        """A form sent: its command, run once through the router and the approval policy."""
        try:
            state = self.unseal(screen, sealed)
            form = Form.model_validate(state["f"])
        except (Tampered, KeyError, ValueError) as exc:
            log.warning("panel form refused for %s: %s", screen.actor.key, exc)
            screen.say("tampered", "error")
            return await self.card(screen)
        view = state.get("v")
        screen.view = view if isinstance(view, str) else None
        values = {f.name: typed[f.name] for f in form.fields if f.name in typed}
        nonce = str(state.get("n") or "")
        if not await self._claim(screen, nonce):
            return await self.card(screen)
        ctx = self._ctx(screen)
        reply = await submit(ctx, form, values)
        decided = form.given.get("id") if form.command == "deny" else None
        if reply.error is not None and not reply.cards:
            await self.settle_decision(ctx, decided, reply)
            return self.form(screen, form, values=values, error=reply.error.message)
        return await self._answer(screen, reply, decided=decided, nonce=nonce)

    async def _claim(self, screen: Screen, nonce: str) -> bool:
        key = deliveries.delivery_key("panel", screen.session.id, nonce)
        if nonce and await deliveries.first(self.services, PLATFORM, key, "panel"):
            return True
        screen.say("ran_once", "muted")
        return False

    async def _answer(
        self,
        screen: Screen,
        reply: Reply,
        *,
        decided: str | None = None,
        nonce: str | None = None,
    ) -> Page:
        """The card again, with what the command answered on top, and its trace in the ticket."""
        ctx = self._ctx(screen)
        await self.settle_decision(ctx, decided, reply)
        if reply.error is not None:
            screen.core(reply.error.message)
            return await self.card(screen, top=reply.cards)
        top = reply.cards
        approval = reply.approval
        if approval is not None and not decided:
            if self.pending(reply):
                await self.post_approval(ctx, reply, screen)
                screen.say("waiting_for_approval", "info", id=approval.id)
                top = []  # the request shows with the ticket's requests, as it is now
            else:
                await places.remember(
                    self.services, approval.id, PLATFORM, screen.place, approval.id, None
                )
            await self._trace(screen, f"reply:{approval.id}", await self._request_card(approval.id))
        elif decided:
            screen.say("decided", "success", id=decided)
        elif reply.cards and nonce:
            await self._trace(screen, f"reply:{nonce}", reply.cards[0])
        if reply.files:
            screen.say("no_files", "muted")
        return await self.card(screen, top=top)

    async def _request_card(self, approval_id: str) -> Card:
        view = await get(self.services, approval_id)
        return approval_card(view, locale=self.services.settings.locale)

    async def _trace(self, screen: Screen, topic: str, card: Card) -> None:
        """What was done from a ticket's panel, as an internal note in that ticket."""
        session = screen.session
        if not session.ticket:
            return
        by = f"By {screen.actor.name} ({screen.actor.email or screen.actor.key}) from the agent panel."
        noted = card.model_copy(
            update={"actions": [], "sections": [*card.sections, Section(text=by, tone="muted")]}
        )
        await ticket_trace.trace(self.services, session.helpdesk, session.ticket, topic, noted)

    # --- drawing --------------------------------------------------------------------------

    def _drawn_card(
        self,
        screen: Screen,
        card: Card,
        *,
        rows: Mapping[str, list[tuple[str, str, str]]] | None = None,
    ) -> dict[str, Any]:
        """A neutral card with its buttons sealed: none the agent may not run."""
        rows = rows or {}
        offered: set[str] = set()
        sections = []
        for section in card.sections:
            table = section.table
            drawn_rows = []
            for row in table.rows if table is not None else []:
                buttons = []
                for label, line, style in rows.get(row[0] if row else "", []):
                    if self._may(screen.actor, line):
                        buttons.append(self._button(screen, label, line, style))
                        offered.add(_same(line))
                drawn_rows.append({"cells": row, "buttons": buttons})
            sections.append({"section": section, "rows": drawn_rows})
        buttons = [
            self._button(screen, b.label, b.command, b.style)
            for b in card.actions
            if b.command and self._may(screen.actor, b.command) and _same(b.command) not in offered
        ]
        links = [b for b in card.actions if b.url and b.url.startswith("https://")]
        return {"card": card, "sections": sections, "buttons": buttons, "links": links}

    def _request(self, screen: Screen, view: ApprovalView) -> dict[str, Any]:
        card = approval_card(view, locale=self.services.settings.locale)
        return {
            "view": view,
            "pending": view.state == State.pending,
            "card": self._drawn_card(screen, card),
        }

    async def _requests(self, screen: Screen) -> list[dict[str, Any]]:
        """The requests made from this ticket, newest first, as they are now."""
        async with self.services.db.read() as db:
            ids = list(
                await db.scalars(
                    select(ChatMessage.approval_id)
                    .where(ChatMessage.platform == PLATFORM, ChatMessage.channel_id == screen.place)
                    .order_by(ChatMessage.created.desc())
                    .limit(SHOWN_REQUESTS)
                )
            )
        return [self._request(screen, await get(self.services, i)) for i in ids]

    async def _waiting_count(self, actor: Actor) -> int:
        if not actor.has(Role.manager):
            return 0
        pending = await listing(self.services, [State.pending], limit=WAITING_SHOWN)
        return sum(1 for v in pending if _may_decide(self.services, actor, v))

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

    @property
    def approvals_channel(self) -> str | None:
        chats = self._chat_approvals()
        return chats[0] if chats else None

    async def post_beside(self, ctx: Context, reply: Reply, where: Screen) -> Copy | None:
        # The ticket's panel shows the request on every draw: remembered by ticket.
        assert reply.approval is not None
        return Copy(where.place, reply.approval.id)

    async def post_to_approvals(
        self, ctx: Context, reply: Reply, where: Screen, channel: str
    ) -> Copy | None:
        """Queued for each chat approvals channel; that platform's bot posts it (any process)."""
        assert reply.approval is not None
        view = await get(self.services, reply.approval.id)
        card = approval_card(view, locale=self.services.settings.locale)
        session = where.session
        ticket = f" ticket {session.ticket}" if session.ticket else ""
        card.sections.append(
            Section(
                text=f"Asked in {session.helpdesk.capitalize()}{ticket} by {ctx.actor.name}.",
                tone="muted",
            )
        )
        async with self.services.db.write() as db:
            for chat in self._chat_approvals():
                await notify.queue(db, kind="approval", card=card, channel=chat)
        return None  # posted by another door: this one cannot edit it

    async def say_where_decided(
        self, ctx: Context, reply: Reply, where: Screen, channel: str | None
    ) -> None:
        pass  # the ticket's panel shows the request (post_beside always stores it)

    async def redraw(self, copy: Copy, view: ApprovalView) -> None:
        """A panel is drawn fresh on each load; a decided request's outcome goes to its ticket."""
        if view.state not in FINAL:
            return
        helpdesk, _, ticket = copy.channel.partition(":")
        if helpdesk == "session" or not ticket:
            return
        card = approval_card(view, locale=self.services.settings.locale)
        await ticket_trace.trace(self.services, helpdesk, ticket, f"decided:{view.id}", card)

    async def tell_requester(self, home: Copy, user: str, view: ApprovalView) -> None:
        pass  # the requester sees the outcome on the ticket's panel, and in the ticket's note

    async def send_private(self, where: Screen, text: str) -> None:
        where.core(text)  # a panel page is seen by its agent alone

    async def alert_place(self, channel: str) -> bool:
        return False  # alerts go to chat channels; a panel has no channel of its own

    async def post_alert(self, channel: str, card: Card) -> Copy | None:
        return None


def attach_panel_door(services: Services) -> None:
    """Register the panel's decision hook: a request made from a ticket gets its outcome as a
    note there, whichever process decides it (the web app's door takes over in `serve`)."""
    PanelDoor(services)


# --- what a card shows and offers ---------------------------------------------------------


def _card_url(session: PanelSession, view: str | None) -> str:
    return url(session.id, "card") + (f"?id={quote(view, safe='')}" if view else "")


def _same(line: str) -> str:
    """A command line as compared between two buttons: its words, without an empty reason."""
    return " ".join(w for w in line.removesuffix("reason: ").split()).lower()


def _forbidden(spec: Command) -> Reply:
    needed = " or ".join(sorted(r.value for r in spec.roles))
    return Reply.fail("forbidden", f"{spec.name} needs the {needed} role")


def _verified(session: PanelSession, profile: BillingProfile) -> bool:
    """Every customer shown has the ticket requester's email: the helpdesk received it from them."""
    requester = session.requester
    return bool(requester) and all(
        (p.customer.email or "").strip().lower() == requester for p in profile.profiles
    )


def _matches(profile: BillingProfile) -> list[Match]:
    """The distinct customers a lookup found (one: nothing to choose)."""
    seen: dict[tuple[str, str], Match] = {}
    for p in profile.profiles:
        key = (p.gateway, p.customer.id)
        if key not in seen:
            seen[key] = Match(p.gateway, p.customer.id, p.customer.name, p.customer.email)
    return list(seen.values())


def _row_actions(profile: BillingProfile) -> dict[str, list[tuple[str, str, str]]]:
    """The buttons of each row of the card, by the object ID its first cell shows."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for charge in profile.charges():
        ref = f"{charge.gateway}:{charge.id}"
        buttons = out.setdefault(charge.id, [])
        if charge.refundable.minor > 0:
            buttons.append((f"Refund {charge.id}", f"refund {ref} reason: ", "danger"))
        if charge.status == ChargeStatus.authorized:
            buttons.append((f"Capture {charge.id}", f"capture {ref} reason: ", "primary"))
            buttons.append((f"Void {charge.id}", f"void {ref} reason: ", "default"))
        if charge.status in _RECEIPTS:
            buttons.append((f"Email receipt {charge.id}", f"receipt {ref} send", "default"))
    for sub in profile.subscriptions():
        if sub.status.value in _CANCELABLE and not sub.cancel_at_period_end:
            line = f"cancel {sub.gateway}:{sub.id} period-end reason: "
            out.setdefault(sub.id, []).append((f"Cancel {sub.id}", line, "danger"))
    for bill in profile.invoices():
        if bill.status in _INVOICES:
            label = f"Email invoice {bill.number or bill.id}"
            line = f"invoice send {bill.gateway}:{bill.id}"
            out.setdefault(bill.id, []).append((label, line, "default"))
    return out


def _may_decide(services: Services, actor: Actor, view: ApprovalView) -> bool:
    """Whether `actor` may vote on a pending request now (the workflow checks again)."""
    same = services.policy.same_person
    return (
        view.state == State.pending
        and actor.has(Role(view.approver_role))
        and not same(actor.key, view.requester_key)
        and not any(same(v.key, actor.key) for v in view.votes)
    )
