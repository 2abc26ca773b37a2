"""Door harnesses: each drives one real door against its platform's emulator.

Slack through signed requests into the ASGI app and the fake Slack Web API,
Discord through raw interactions into discord.py and the fake Discord REST API,
the shell through lines typed into `Shell`. Each follows `DoorHarness`
(tests/doors/door_contract.py); a new door adds one here.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

import discord

from bot import notify
from bot.actors import Actor
from bot.cards.model import Card
from bot.chat.shell.adapter import Shell, parse_identity
from bot.services import Services
from chargedesk_emulators.discord import CALLBACK, discord_api
from chargedesk_emulators.slack import TEAM_ID, slack_api
from tests.chat import test_discord as dc
from tests.chat import test_slack as sl
from tests.doors.door_contract import Shown
from tests.helpdesk import test_intercom_canvas as ic
from tests.panel import conftest as pn

# --- Slack ----------------------------------------------------------------------------------


class SlackDoor:
    name = "slack"
    keeps_copies = True
    # Jane is a customer from a Slack Connect partner; Nora is in the workspace, in no list.
    PEOPLE: ClassVar[dict[str, str]] = {
        "agent": sl.AGENT,
        "manager": sl.MANAGER,
        "other_manager": sl.OTHER_MANAGER,
        "customer": sl.CUSTOMER,
        "stranger": sl.NOBODY,
    }

    def __init__(self, slack: sl.Slack) -> None:
        self.slack = slack
        self.services = slack.services

    @staticmethod
    def _shown(call: Any) -> Shown:
        blocks = call.params.get("blocks") or []
        return Shown(
            f"{call.params.get('text', '')}\n{sl.texts(blocks)}",
            [b.get("value", "") for b in sl.buttons(blocks)],
        )

    async def say(self, who: str, line: str) -> None:
        await self.slack.command(self.PEOPLE[who], line)
        await self.slack.settle()

    def public(self) -> list[Shown]:
        return [self._shown(c) for c in self.slack.api.of("chat.postMessage")]

    def private(self, who: str) -> list[Shown]:
        user = self.PEOPLE[who]
        return [
            self._shown(c)
            for c in self.slack.api.of("chat.postEphemeral")
            if c.params["user"] == user
        ]

    def _copies(self, approval_id: str) -> list[Any]:
        return [
            c
            for c in self.slack.api.of("chat.postMessage")
            if any(v == f"approve {approval_id}" for v in self._shown(c).buttons)
        ]

    async def request(self, who: str, line: str) -> str:
        await self.say(who, line)
        card = next(
            c
            for c in self.slack.api.of("chat.postMessage")
            if sl.buttons(c.params.get("blocks") or [])
        )
        return sl.button(card, "approve ")["value"].split()[1]

    async def copies(self, approval_id: str) -> list[Shown]:
        return [self._shown(c) for c in self._copies(approval_id)]

    async def click_approve(self, who: str, approval_id: str) -> None:
        copy = next(c for c in self._copies(approval_id) if c.params["channel"] == sl.APPROVALS)
        await self.slack.click(self.PEOPLE[who], copy, sl.button(copy, "approve "))
        await self.slack.settle()

    async def redrawn(self, approval_id: str) -> list[Shown]:
        where = {c.answer["ts"] for c in self._copies(approval_id)}
        match: Callable[[Any], bool] = lambda c: c.params["ts"] in where  # noqa: E731
        updates = await self.slack.api.wait_for("chat.update", len(where), match=match)
        latest = {c.params["ts"]: c for c in updates}
        return [self._shown(c) for c in latest.values()]

    async def deliver_alert(self, card: Card) -> list[Shown]:
        async with self.services.db.write() as session:
            await notify.queue(session, kind="alert", card=card, channel=f"slack:{sl.APPROVALS}")
        await self.slack.bot.deliver_alerts()
        return [
            self._shown(c)
            for c in self.slack.api.of("chat.postMessage")
            if c.params["channel"] == sl.APPROVALS
        ]

    async def actor(self, who: str) -> Actor:
        actor, _ = await self.slack.bot._actor(
            self.PEOPLE[who], name=None, team=TEAM_ID, home=TEAM_ID
        )
        return actor


@asynccontextmanager
async def slack_door(services: Services) -> AsyncIterator[SlackDoor]:
    with slack_api() as fake:
        sl.populate(fake)
        async with sl.running_slack(services, fake) as slack:
            yield SlackDoor(slack)
        assert fake.problems == []


# --- Discord --------------------------------------------------------------------------------

DISCORD_APPROVALS = "1500000000000000009"
MESSAGES = "/channels/{channel_id}/messages"
EDIT = "/channels/{channel_id}/messages/{message_id}"
WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"


class DiscordDoor:
    name = "discord"
    keeps_copies = True
    # Jane is a guild member without any billing role: a customer, and nobody configured her.
    PEOPLE: ClassVar[dict[str, str]] = {
        "agent": dc.AGENT,
        "manager": dc.MANAGER,
        "other_manager": dc.OTHER_MANAGER,
        "customer": dc.CUSTOMER,
        "stranger": dc.CUSTOMER,
    }

    def __init__(self, harness: dc.Harness) -> None:
        self.d = harness
        self.services = harness.services
        self.tokens: dict[str, list[str]] = {}

    async def settle(self) -> None:
        """Wait for discord.py's interaction tasks (bounded)."""
        for _ in range(400):
            await asyncio.sleep(0.01)
            busy = [
                t
                for t in asyncio.all_tasks()
                if not t.done()
                and (
                    t.get_name() == "CommandTree-invoker"
                    or t.get_name().startswith("discord.py: on_interaction")
                )
            ]
            if not busy:
                return
            await asyncio.wait(busy, timeout=5)

    @staticmethod
    def _shown(body: dict[str, Any]) -> Shown:
        return Shown(dc.shown(body), dc.custom_ids(body))

    def _track(self, who: str, payload: dict[str, Any]) -> None:
        self.tokens.setdefault(who, []).append(payload["token"])

    async def say(self, who: str, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "lookup":
            options = {"query": rest}
        elif word == "refund":
            charge, amount, reason = rest.split(" ", 2)
            options = {
                "charge": charge,
                "amount": amount,
                "reason": reason.removeprefix("reason: "),
            }
        else:
            raise AssertionError(f"the Discord harness cannot type {line!r}")
        self._track(who, await self.d.command(self.PEOPLE[who], word, **options))
        await self.settle()

    def _calls(self) -> list[Any]:
        return list(self.d.api.calls)

    def _ephemeral(self, token: str) -> bool:
        """Whether the interaction with this token was deferred privately."""
        for c in self._calls():
            if c.template == CALLBACK and token in c.path:
                return bool(((c.body or {}).get("data") or {}).get("flags", 0) & 64)
        return False

    def public(self) -> list[Shown]:
        out = []
        for c in self._calls():
            if c.method == "POST" and c.template == MESSAGES:
                out.append(self._shown(c.body))
            elif c.method == "PATCH" and c.path.endswith("/messages/@original"):
                token = c.path.split("/")[3]
                if not self._ephemeral(token):
                    out.append(self._shown(c.body))
            elif c.method == "POST" and c.template == WEBHOOK and not (c.body.get("flags", 0) & 64):
                out.append(self._shown(c.body))
        return out

    def private(self, who: str) -> list[Shown]:
        mine = self.tokens.get(who, [])
        out = []
        for c in self._calls():
            token = next((t for t in mine if t in c.path), None)
            if token is None:
                continue
            if (c.method == "POST" and c.template == WEBHOOK and c.body.get("flags", 0) & 64) or (
                c.method == "PATCH" and self._ephemeral(token)
            ):
                out.append(self._shown(c.body))
            elif c.template == CALLBACK and (c.body.get("data") or {}).get("flags", 0) & 64:
                out.append(self._shown(c.body["data"]))
        return out

    def _copies(self, approval_id: str) -> list[Any]:
        return [
            c
            for c in self.d.api.of("POST", MESSAGES)
            if f"cd:approve:{approval_id}" in dc.custom_ids(c.body)
        ]

    async def request(self, who: str, line: str) -> str:
        await self.say(who, line)
        await self.d.api.wait_for("POST", MESSAGES, 2)  # the thread's card, the approvals channel's
        posted = self.d.api.of("POST", MESSAGES)[0]
        approve = next(c for c in dc.custom_ids(posted.body) if c.startswith("cd:approve:"))
        approval_id = approve.split(":")[2]
        await dc.stored_places(self.services, approval_id, 2)
        return approval_id

    async def copies(self, approval_id: str) -> list[Shown]:
        return [self._shown(c.body) for c in self._copies(approval_id)]

    async def click_approve(self, who: str, approval_id: str) -> None:
        copy = next(
            c for c in self._copies(approval_id) if c.answer["channel_id"] == DISCORD_APPROVALS
        )
        payload = await self.d.click(
            self.PEOPLE[who], copy.answer, f"cd:approve:{approval_id}", DISCORD_APPROVALS
        )
        self._track(who, payload)
        await self.settle()

    async def redrawn(self, approval_id: str) -> list[Shown]:
        paths = {
            f"/channels/{c.answer['channel_id']}/messages/{c.answer['id']}"
            for c in self._copies(approval_id)
        }
        edits = await self.d.api.wait_for(
            "PATCH", EDIT, len(paths), match=lambda c: c.path in paths
        )
        latest = {c.path: c for c in edits}
        return [self._shown(c.body) for c in latest.values()]

    async def deliver_alert(self, card: Card) -> list[Shown]:
        async with self.services.db.write() as session:
            await notify.queue(
                session, kind="alert", card=card, channel=f"discord:{DISCORD_APPROVALS}"
            )
        await self.d.bot.deliver_alerts()
        return [
            self._shown(c.body)
            for c in self.d.api.of("POST", MESSAGES)
            if c.answer["channel_id"] == DISCORD_APPROVALS
        ]

    async def actor(self, who: str) -> Actor:
        payload = dc.interaction(
            2, self.PEOPLE[who], dc.INTERNAL, {"id": "1", "name": "billing", "type": 1}
        )
        interaction = discord.Interaction(data=payload, state=self.d.bot._connection)  # type: ignore[arg-type]
        return await self.d.bot._actor(interaction)


@asynccontextmanager
async def discord_door(services: Services) -> AsyncIterator[DiscordDoor]:
    with discord_api() as fake:
        dc.populate(fake)
        async with dc.running_bot(
            services, fake, approvals_channel=int(DISCORD_APPROVALS)
        ) as harness:
            yield DiscordDoor(harness)
        assert fake.problems == []


# --- the terminal shell ---------------------------------------------------------------------


class ShellDoor:
    """A terminal is one person's: every answer is private to whoever types, and nothing is
    posted anywhere else. Answers count as `public` (the terminal is the internal channel),
    errors as `private`, so the scenarios read the same as for chat."""

    name = "shell"
    keeps_copies = False
    PEOPLE: ClassVar[dict[str, str]] = {
        "agent": "agent:alex",
        "manager": "manager:maria",
        "other_manager": "manager:mark",
        "customer": "customer:jane",
        "stranger": "customer:nobody",
    }

    def __init__(self, services: Services) -> None:
        self.services = services
        self.shell = Shell(
            services, parse_identity("agent:alex"), json_lines=True, out=io.StringIO()
        )
        self.said: list[tuple[str, Shown, bool]] = []
        self.last: Any = None

    async def say(self, who: str, line: str) -> None:
        self.shell.actor = parse_identity(self.PEOPLE[who])
        reply = await self.shell.handle(line)
        assert reply is not None
        self.last = reply
        text = reply.model_dump_json()  # everything the terminal draws, and more
        self.said.append((who, Shown(text), reply.error is not None))

    def public(self) -> list[Shown]:
        return [s for _, s, error in self.said if not error]

    def private(self, who: str) -> list[Shown]:
        return [s for w, s, error in self.said if error and w == who]

    async def request(self, who: str, line: str) -> str:
        await self.say(who, line)
        assert self.last.approval is not None and self.last.approval.state == "pending"
        return str(self.last.approval.id)

    async def copies(self, approval_id: str) -> list[Shown]:
        return []  # the terminal posts no copy: `approvals` lists the request

    async def click_approve(self, who: str, approval_id: str) -> None:
        await self.say(who, f"approve {approval_id}")

    async def redrawn(self, approval_id: str) -> list[Shown]:
        return []

    async def deliver_alert(self, card: Card) -> list[Shown]:
        async with self.services.db.write() as session:
            await notify.queue(session, kind="alert", card=card, channel="shell:terminal")
        assert await self.shell.deliver_alerts() == 0
        return []

    async def actor(self, who: str) -> Actor:
        return parse_identity(self.PEOPLE[who])


@asynccontextmanager
async def shell_door(services: Services) -> AsyncIterator[ShellDoor]:
    yield ShellDoor(services)


# --- Intercom's inbox app (Canvas Kit) -------------------------------------------------------


class IntercomDoor:
    """A canvas is drawn for one teammate at a time and never edited from our side: what a
    teammate sees is the canvas Intercom asks for. Canvases count as `public` (the inbox is
    internal), the refusals drawn on them as `private` to that teammate; "posted where
    managers work" is the request on the conversation's canvas as a manager sees it, with
    Approve, and its copy queued for the chat approvals channel; "redrawn" is the canvas
    drawn again after the decision. People are Intercom teammates by email."""

    name = "intercom"
    keeps_copies = True
    PEOPLE: ClassVar[dict[str, str]] = {
        "agent": ic.AGENT,
        "manager": ic.MANAGER,
        "other_manager": ic.OTHER_MANAGER,
        "customer": ic.STRANGER,
        "stranger": ic.STRANGER,
    }
    skips: ClassVar[dict[str, str]] = {
        "a_customer_is_refused_privately_and_nothing_is_posted": "no customer reaches the "
        "Intercom inbox: every teammate of the workspace sees the card read-only, and an "
        "unlisted teammate's actions are refused (tests/helpdesk/test_intercom_canvas.py)",
        "an_alert_reaches_the_alerts_channel": "a canvas has no channel to post alerts in: "
        "alerts go to the chat doors' channels (IntercomDoor.alert_place is False)",
    }
    APPROVALS = "C0APPROVALS"

    def __init__(self, inbox: ic.Inbox) -> None:
        self.inbox = inbox
        self.services = inbox.services
        self.said: list[tuple[str, Shown]] = []
        self.refused: list[tuple[str, Shown]] = []
        self.seen: dict[str, dict[str, Any]] = {}  # each manager's copy of the canvas

    def _shown(self, canvas: dict[str, Any]) -> Shown:
        actions = json.loads(canvas["stored_data"]["state"])["b"].values()
        return Shown(ic.shown(canvas), [str(a.get("run", "")) for a in actions])

    def _record(self, who: str, canvas: dict[str, Any]) -> dict[str, Any]:
        errors = ic.refusals(canvas)
        if errors:
            self.refused.append((who, Shown("\n".join(errors))))
        else:
            self.said.append((who, self._shown(canvas)))
        return canvas

    async def say(self, who: str, line: str) -> None:
        word, _, rest = line.partition(" ")
        person = self.PEOPLE[who]
        if word == "lookup":
            self._record(who, await self.inbox.open(person, contact=rest))
            return
        if word != "refund":
            raise AssertionError(f"the Intercom harness cannot type {line!r}")
        charge, amount, reason = rest.split(" ", 2)
        code, _, text = reason.removeprefix("reason: ").partition(" ")
        form = await self.inbox.click(person, await self.inbox.open(person), f"Refund {charge}")
        values = {"f_amount": amount, "f_reason_code": code, "f_reason_text": text}
        self._record(who, await self.inbox.click(person, form, "Request refund", values))

    def public(self) -> list[Shown]:
        return [s for _, s in self.said]

    def private(self, who: str) -> list[Shown]:
        return [s for w, s in self.refused if w == who]

    async def request(self, who: str, line: str) -> str:
        await self.say(who, line)
        text = self.said[-1][1].text
        # Managers working in Intercom have the conversation open: each click comes from
        # the copy they have, however stale.
        for manager in ("manager", "other_manager"):
            self.seen[manager] = await self.inbox.open(self.PEOPLE[manager])
        return text.split("Waiting for approval ", 1)[1].split(":", 1)[0]

    async def copies(self, approval_id: str) -> list[Shown]:
        canvas = await self.inbox.open(self.PEOPLE["other_manager"])
        queued = [
            Shown(c.title, [b.command for b in c.actions])
            for _, kind, c in await notify.pending(self.services.db)
            if kind == "approval" and any(b.command == f"approve {approval_id}" for b in c.actions)
        ]
        return [self._shown(canvas), *queued]

    async def click_approve(self, who: str, approval_id: str) -> None:
        person = self.PEOPLE[who]
        if who not in self.seen:  # later clicks come from the copy the manager still has open
            self.seen[who] = await self.inbox.open(person)
        canvas = self.seen[who]
        state = json.loads(canvas["stored_data"]["state"])
        component = next(
            k for k, a in state["b"].items() if a.get("run") == f"approve {approval_id}"
        )
        payload = self.inbox.request(person, ic.JANE) | {
            "component_id": component, "input_values": {}, "current_canvas": canvas,
        }  # fmt: skip
        self._record(who, await self.inbox.send(payload))

    async def redrawn(self, approval_id: str) -> list[Shown]:
        canvas = await self.inbox.open(self.PEOPLE["agent"])
        return [self._shown(canvas)]

    async def deliver_alert(self, card: Card) -> list[Shown]:
        raise AssertionError("skipped: see `skips`")

    async def actor(self, who: str) -> Actor:
        from bot.helpdesk.intercom.door import IntercomDoor as Door

        door = Door(ic.intercom_settings(), self.services)
        try:
            return await door.actor({"id": "1", "email": self.PEOPLE[who]})
        finally:
            door.detach()


@asynccontextmanager
async def intercom_door(services: Services) -> AsyncIterator[IntercomDoor]:
    import httpx

    from bot.settings import HelpdeskSettings
    from bot.web import create_app

    settings = services.settings
    services.settings = settings.model_copy(update={
        "helpdesk": HelpdeskSettings(intercom=ic.intercom_settings()),
        "slack": settings.slack.model_copy(update={"approvals_channel": IntercomDoor.APPROVALS}),
    })  # fmt: skip
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as web:
            yield IntercomDoor(ic.Inbox(services, web))


# --- the agent panel (Zendesk, Front, Freshdesk, Help Scout's links) -------------------------


class PanelDoor:
    """Each person has the panel of one Zendesk ticket open (a session of their own, opened by
    an entry as a helpdesk's would). Pages count as `public` (the panel is for staff), the
    refusals drawn on them as `private` to whoever sees them; "posted where managers work"
    is the request on the ticket's panel as a manager sees it, with Approve, and its copy
    queued for the chat approvals channel; "redrawn" is the panel loaded again after the
    decision. People are helpdesk agents by email."""

    name = "panel"
    keeps_copies = True
    PEOPLE: ClassVar[dict[str, str]] = {
        "agent": pn.AGENT,
        "manager": pn.MANAGER,
        "other_manager": pn.OTHER_MANAGER,
        "customer": pn.STRANGER,
        "stranger": pn.STRANGER,
    }
    skips: ClassVar[dict[str, str]] = {
        "a_customer_is_refused_privately_and_nothing_is_posted": "no customer reaches the "
        "agent panel: only a helpdesk's signed entry opens it, and an agent nobody listed "
        "reads the card without a button (tests/panel/test_session.py)",
        "an_alert_reaches_the_alerts_channel": "a panel has no channel to post alerts in: "
        "alerts go to the chat doors' channels (PanelDoor.alert_place is False)",
    }
    APPROVALS = "C0APPROVALS"

    def __init__(self, panel: pn.Panel) -> None:
        self.panel = panel
        self.services = panel.services
        self.agents: dict[str, pn.Agent] = {}
        self.said: list[tuple[str, Shown]] = []
        self.refused: list[tuple[str, Shown]] = []
        self.seen: dict[str, str] = {}  # each manager's page, as they have it open

    async def _agent(self, who: str, requester: str = pn.JANE) -> pn.Agent:
        if who not in self.agents:
            self.agents[who] = await self.panel.enter(self.PEOPLE[who], requester=requester)
        return self.agents[who]

    @staticmethod
    def _runs(page: str) -> list[str]:
        """What each button on a page runs (read from the state the panel sealed into it)."""
        runs = []
        for form in pn.forms(page):
            sealed = form.fields.get("a")
            if sealed:
                packed = sealed.split(".", 1)[0]
                runs.append(str(json.loads(base64.urlsafe_b64decode(packed))["run"]))
        return runs

    def _record(self, who: str, page: str) -> str:
        errors = re.findall(r'<p class="notice error">(.*?)</p>', page, re.S)
        if errors:
            self.refused.append((who, Shown(html.unescape(" ".join(errors)))))
        else:
            self.said.append((who, Shown(pn.text(page), self._runs(page))))
        return page

    async def say(self, who: str, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "lookup":
            agent = await self._agent(who, requester=rest)
            self._record(who, (await agent.get("card")).text)
            return
        if word != "refund":
            raise AssertionError(f"the panel harness cannot type {line!r}")
        charge, amount, reason = rest.split(" ", 2)
        code, _, written = reason.removeprefix("reason: ").partition(" ")
        agent = await self._agent(who)
        form = await agent.click((await agent.get("card")).text, f"Refund {charge}")
        values = {"amount": amount, "reason_code": code, "reason_text": written}
        self._record(who, (await agent.fill(form.text, values)).text)

    def public(self) -> list[Shown]:
        return [s for _, s in self.said]

    def private(self, who: str) -> list[Shown]:
        return [s for w, s in self.refused if w == who]

    async def request(self, who: str, line: str) -> str:
        await self.say(who, line)
        said = self.said[-1][1].text
        # Managers have the ticket's panel open: each click comes from the page they have.
        for manager in ("manager", "other_manager"):
            self.seen[manager] = (await (await self._agent(manager)).get("card")).text
        return said.split("Waiting for approval ", 1)[1].split(":", 1)[0]

    async def copies(self, approval_id: str) -> list[Shown]:
        page = (await (await self._agent("other_manager")).get("card")).text
        queued = [
            Shown(c.title, [b.command for b in c.actions])
            for _, kind, c in await notify.pending(self.services.db)
            if kind == "approval" and any(b.command == f"approve {approval_id}" for b in c.actions)
        ]
        return [Shown(pn.text(page), self._runs(page)), *queued]

    async def click_approve(self, who: str, approval_id: str) -> None:
        agent = await self._agent(who)
        if who not in self.seen:
            self.seen[who] = (await agent.get("card")).text
        page = self.seen[who]
        form = next(
            f for f, run in zip(
                [f for f in pn.forms(page) if "a" in f.fields], self._runs(page), strict=True
            )
            if run == f"approve {approval_id}"
        )  # fmt: skip
        self._record(who, (await agent.post(form.action, form.fields)).text)

    async def redrawn(self, approval_id: str) -> list[Shown]:
        page = (await (await self._agent("agent")).get("card")).text
        return [Shown(pn.text(page), self._runs(page))]

    async def deliver_alert(self, card: Card) -> list[Shown]:
        raise AssertionError("skipped: see `skips`")

    async def actor(self, who: str) -> Actor:
        from bot.panel import session

        opened = await session.start(self.services, pn.entry(self.PEOPLE[who]))
        return session.actor(self.services.settings, opened)


@asynccontextmanager
async def panel_door(services: Services) -> AsyncIterator[PanelDoor]:
    import httpx

    from bot.web import create_app

    settings = pn.panel_settings(services.settings)
    services.settings = settings.model_copy(update={
        "slack": settings.slack.model_copy(update={"approvals_channel": PanelDoor.APPROVALS}),
    })  # fmt: skip
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        wrapped = pn.entry_app(app, services)
        panel = pn.Panel(services, wrapped, httpx.ASGITransport(app=wrapped))
        try:
            yield PanelDoor(panel)
        finally:
            for web in panel.clients:
                await web.aclose()


DOORS: dict[str, Callable[[Services], AbstractAsyncContextManager[Any]]] = {
    "slack": slack_door,
    "discord": discord_door,
    "shell": shell_door,
    "intercom": intercom_door,
    "panel": panel_door,
}
