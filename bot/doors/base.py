"""The door base: what every door does alike, whatever platform it opens onto.

A door turns a platform event into (Actor, Channel, command), calls the core
and shows the Reply in its platform's format. `Door` holds the part that is
the same everywhere, the way Errbot's `Backend` does, and leaves a few
methods to each platform:

- running a command for an actor in a channel (through the router), and
  refusing privately when in doubt (`Refused`);
- mapping a platform identity to a person with roles: configured IDs, groups
  or role names; anyone else is a customer at most;
- an approval request: posted beside the request where managers can see it
  and in the approvals channel, each copy stored in SQL (`places`), and every
  copy redrawn after any decision, whoever takes it (a decision hook each door
  registers: Slack, Discord, the shell, expiry and recovery all announce);
- alerts and customers' questions queued for the door's channels: delivered
  after a command and on a steady poll.

A subclass implements what differs: how to post or edit a message, how to
say something privately, how to look up a user's roles or groups, how to draw.
Nothing here imports a chat SDK or a platform package (import contracts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from bot import notify
from bot.actors import Actor, Channel, ChannelKind, Role
from bot.approvals.workflow import ApprovalView, State, get
from bot.cards.model import Card, Reply
from bot.commands import Context, dispatch, run
from bot.commands.router import Command
from bot.doors import places
from bot.services import Services

log = logging.getLogger(__name__)

# The commands that decide a request; their success shows as every copy redrawn.
DECISIONS = ("approve", "deny")
# Alerts queued by other processes (webhooks, questions asked on another door) wait at most this.
ALERT_SECONDS = 10.0
FAILED = "{what} failed on our side; check `/billing approvals` before trying again"

# Where a door answers one request: a Slack place, a Discord interaction, a terminal.
Where = TypeVar("Where")


class Refused(Exception):
    """The door cannot tell who reads this conversation, so it answers nothing there."""


class PostFailed(Exception):
    """The platform refused a post or an edit (logged by the base, which goes on)."""


@dataclass(frozen=True)
class Copy:
    """One posted copy of an approval request: the message, and the thread it opened or sits in."""

    channel: str
    message: str
    thread: str | None = None


def _decided_by(card: Card) -> str | None:
    """The request a card's Approve / Deny buttons decide, if it has them."""
    return next((found for b in card.actions if (found := decided_in(b.command))), None)


def decided_in(line: str) -> str | None:
    """The request an `approve` / `deny` line decides on."""
    words = line.split()
    if len(words) >= 2 and words[0].lower() in DECISIONS:
        return words[1]
    return None


class Door(ABC, Generic[Where]):
    """A way into the bot. Subclasses set `platform` and `services` and implement the few
    abstract methods below; `attach(services)` registers the decision hook."""

    platform: ClassVar[str]
    services: Services

    # --- who: platform identities to people and roles -------------------------------------

    @abstractmethod
    def role_entries(self) -> Mapping[Role, Sequence[str]]:
        """The configured entries (user IDs, group IDs, role names or IDs) for each role."""

    async def person(
        self,
        user_id: str,
        name: str | None,
        holds: Callable[[str], Awaitable[bool]],
        *,
        external: bool = False,
    ) -> Actor:
        """The actor behind a platform user: the roles whose entries `holds` confirms.

        Nobody is more than a customer by default: an unknown user, and anyone from
        outside the organisation (`external`) whatever the configuration says.
        """
        roles: set[Role] = set()
        if not external:
            for role, entries in self.role_entries().items():
                for entry in entries:
                    if await holds(entry):
                        roles.add(role)
                        break
        return Actor(
            platform=self.platform, id=user_id, name=name or user_id, roles=frozenset(roles)
        )

    def context(self, actor: Actor, channel: str, kind: ChannelKind) -> Context:
        """The core's Context for an actor in one of this door's channels."""
        return Context(self.services, actor, Channel(platform=self.platform, id=channel, kind=kind))

    def own_user(self, key: str) -> str | None:
        """The user ID in a `platform:id` key when it is one of this door's users, else None."""
        platform, _, user = key.partition(":")
        return user if platform == self.platform and user else None

    # --- commands -------------------------------------------------------------------------

    async def run_line(self, ctx: Context, line: str) -> Reply:
        """A typed line through the router: parsed, checked for roles, validated, run."""
        return await dispatch(ctx, line)

    async def run_command(self, ctx: Context, spec: Command, raw: dict[str, Any]) -> Reply:
        """A command with its arguments already split (buttons, slash options)."""
        return await run(ctx, spec, raw)

    async def settle_decision(self, ctx: Context, approval_id: str | None, reply: Reply) -> None:
        """After an approve / deny: a success was announced by the core (every door's hook
        redraws); a vote refused because the request just expired was not, so announce it."""
        if approval_id and reply.error is not None and reply.error.code == "expired":
            await self.services.announce(approval_id, ctx.actor)

    @staticmethod
    def private(ctx: Context, reply: Reply) -> bool:
        """Whether a reply goes only to the person who asked: errors, ephemeral answers, and
        anything in a place people outside can read."""
        return reply.ephemeral or reply.error is not None or ctx.channel.kind == ChannelKind.shared

    @staticmethod
    def pending(reply: Reply) -> bool:
        """A request just made that waits for a manager."""
        return (
            reply.error is None
            and reply.approval is not None
            and reply.approval.state == State.pending.value
        )

    # --- saying things privately ----------------------------------------------------------

    @abstractmethod
    async def send_private(self, where: Where, text: str) -> None:
        """Say `text` to the person who asked only (an error line in the platform's format)."""

    async def refuse(self, where: Where, why: str) -> None:
        """A refusal, privately: nothing is posted where others read."""
        await self.send_private(where, why)

    async def failed(self, where: Where, what: str) -> None:
        """Something broke on our side: logged with its traceback, one private line to the user."""
        log.exception("%s: %s failed", self.platform, what)
        try:
            await self.send_private(where, FAILED.format(what=what))
        except Exception:
            log.exception("%s: cannot even say that %s failed", self.platform, what)

    # --- approvals: post where managers work, redraw every copy after any decision --------

    @property
    @abstractmethod
    def approvals_channel(self) -> str | None:
        """The channel where every request waiting for a manager is posted too, if any."""

    @abstractmethod
    async def post_beside(self, ctx: Context, reply: Reply, where: Where) -> Copy | None:
        """Post the request next to where it was asked (a thread); the copy, or None if that failed."""

    @abstractmethod
    async def post_to_approvals(
        self, ctx: Context, reply: Reply, where: Where, channel: str
    ) -> Copy | None:
        """Post the request in the approvals channel; the copy, or None if that failed."""

    @abstractmethod
    async def say_where_decided(
        self, ctx: Context, reply: Reply, where: Where, channel: str | None
    ) -> None:
        """Tell the requester privately, without buttons, that a manager decides in `channel`
        (or in `/billing approvals` when None)."""

    @abstractmethod
    async def redraw(self, copy: Copy, view: ApprovalView) -> None:
        """Edit one posted copy to show the request as it is now (no buttons once decided);
        raise PostFailed when the platform refuses."""

    @abstractmethod
    async def tell_requester(self, home: Copy, user: str, view: ApprovalView) -> None:
        """Mention the requester where the request lives, once it is decided."""

    def shows_publicly(self, ctx: Context, reply: Reply, where: Where) -> bool:
        """Whether the request may be posted where it was asked (an internal channel)."""
        return ctx.channel.kind == ChannelKind.internal and not reply.ephemeral

    async def post_approval(self, ctx: Context, reply: Reply, where: Where) -> None:
        """A pending request: beside the request and in the approvals channel, each copy
        stored; when it cannot be shown where it was asked, the requester is told privately."""
        assert reply.approval is not None
        approval_id = reply.approval.id
        public = self.shows_publicly(ctx, reply, where)
        beside = await self.post_beside(ctx, reply, where) if public else None
        if beside is not None:
            await self.remember(approval_id, beside)
        channel = self.approvals_channel
        posted = None
        if channel and channel != ctx.channel.id:
            posted = await self.post_to_approvals(ctx, reply, where, channel)
            if posted is not None:
                await self.remember(approval_id, posted)
        if beside is None:
            await self.say_where_decided(ctx, reply, where, channel if posted else None)

    async def remember(self, approval_id: str, copy: Copy) -> None:
        """Store where a request is shown, so that its decision redraws it there."""
        await places.remember(
            self.services, approval_id, self.platform, copy.channel, copy.message, copy.thread
        )
        # A manager may have decided while this copy was on its way, and the redraw then
        # missed it: the decision is committed before the redraw reads the stored copies,
        # so checking after storing catches every such case.
        view = await get(self.services, approval_id)
        if view.state != State.pending:
            await self._redraw_each([copy], view)

    async def _redraw_each(self, copies: Sequence[Copy], view: ApprovalView) -> None:
        for copy in copies:
            try:
                await self.redraw(copy, view)
            except PostFailed as exc:
                log.warning("cannot update %s in %s: %s", view.id, copy.channel, exc)

    async def refresh(self, approval_id: str) -> None:
        """Redraw every stored copy of a request on this door; once decided, tell the requester.

        Decisions come in bursts (two approvals, then executing, then executed): while a
        redraw of a request runs, later ones only ask it to go round once more with the newest
        state, so a burst costs two edits per copy, not one per step (chat rate limits).
        """
        again = self.__dict__.setdefault("_redraw_again", {})
        if approval_id in again:
            again[approval_id] = True
            return
        again[approval_id] = False
        try:
            while True:
                await self._refresh_once(approval_id)
                if not again[approval_id]:
                    return
                again[approval_id] = False
        finally:
            del again[approval_id]

    async def _refresh_once(self, approval_id: str) -> None:
        rows = await places.shown(self.services, approval_id, self.platform)
        if not rows:  # not shown on this door: nothing to redraw, nobody to tell here
            return
        view = await get(self.services, approval_id)
        copies = [Copy(r.channel_id, r.message_id, r.thread_id) for r in rows]
        await self._redraw_each(copies, view)
        requester = self.own_user(view.requester_key)
        if view.state == State.pending or not copies or requester is None:
            return
        # The thread the request opened is where the requester follows it.
        home = next((c for c in copies if c.thread), copies[0])
        try:
            await self.tell_requester(home, requester, view)
        except PostFailed as exc:
            log.warning("cannot tell the requester of %s: %s", approval_id, exc)

    def attach(self, services: Services) -> None:
        """Serve these services, and redraw this door's copies after every decision they announce.

        One door per platform redraws: a door attached later (the live bot) takes over from
        one attached earlier (the REST-only door `open_services` gives every process)."""
        self.services = services
        for hook in list(services.decision_hooks):
            other = getattr(hook, "__self__", None)
            if isinstance(other, Door) and other is not self and other.platform == self.platform:
                services.decision_hooks.remove(hook)
        if self._decided not in services.decision_hooks:
            services.decision_hooks.append(self._decided)

    def detach(self) -> None:
        """Stop redrawing (a closed door edits nothing)."""
        with contextlib.suppress(ValueError, AttributeError):
            self.services.decision_hooks.remove(self._decided)

    async def _decided(self, approval_id: str, actor: Actor) -> None:
        # Whoever decided (this door, another door, the shell, expiry, recovery): one redraw.
        await self.refresh(approval_id)

    # --- alerts and customers' questions --------------------------------------------------

    @abstractmethod
    async def alert_place(self, channel: str) -> bool:
        """Whether alerts may be posted in `channel` (never where people outside read)."""

    @abstractmethod
    async def post_alert(self, channel: str, card: Card) -> Copy | None:
        """Post one alert card as the root of its discussion; raise PostFailed when refused.

        Returns the posted message (None where the door keeps nothing to edit later).
        """

    async def deliver_alerts(self) -> int:
        """Post what is queued for this door's channels (alerts, customers' questions); how many.

        A channel people outside can read gets none: its cards stay in `/billing alerts`
        for agents. An alert the platform refuses goes back to be tried again. When more
        alerts than `notify.DIGEST_AT` pile up for one channel, they go as one digest
        (questions and approvals still one by one), so a burst never floods the channel or
        the platform's rate limits.
        """
        delivered = 0
        claimed = await notify.claim(self.services.db, self.platform)
        for channel, alerts in notify.by_channel(claimed):
            ids = [a.id for a in alerts]
            try:
                if not await self.alert_place(channel):
                    log.error(
                        "alerts %s not posted: %r is not an internal %s channel (fix the "
                        "alerts or questions channel); they stay in `/billing alerts`",
                        ids, channel, self.platform,
                    )  # fmt: skip
                    continue
            except (PostFailed, Refused) as exc:
                log.warning("cannot post alerts %s to %s: %s", ids, channel, exc)
                await notify.release(self.services.db, *ids)
                continue
            for posting in notify.postings(alerts):
                try:
                    copy = await self.post_alert(channel, posting.card)
                except (PostFailed, Refused) as exc:
                    log.warning("cannot post alerts %s to %s: %s", posting.ids, channel, exc)
                    await notify.release(self.services.db, *posting.ids)
                    continue
                delivered += len(posting.ids)
                # A request another door queued here (Intercom's): this copy is redrawn too.
                approval_id = _decided_by(posting.card)
                if copy is not None and approval_id is not None:
                    await self.remember(approval_id, copy)
        return delivered

    async def alerts_now(self) -> None:
        """Post what is queued (a question just asked) without waiting for the poll."""
        try:
            await self.deliver_alerts()
        except Exception:
            log.exception("delivering alerts failed; the next poll tries again")

    async def poll_alerts(self, seconds: float) -> None:
        """Deliver every `seconds` until cancelled: what a failed post released, or another
        process queued."""
        while True:
            await asyncio.sleep(seconds)
            await self.alerts_now()

    def start_alerts(self, seconds: float) -> asyncio.Task[None] | None:
        """The alert poll as a task (none when `seconds` is 0: alerts follow commands only)."""
        if seconds <= 0:
            return None
        return asyncio.create_task(self.poll_alerts(seconds), name=f"{self.platform}-alerts")

    @staticmethod
    async def stop_alerts(task: asyncio.Task[None] | None) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
