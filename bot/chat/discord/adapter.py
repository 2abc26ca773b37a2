"""Discord: `/billing` subcommands, embeds, buttons and modals, approvals in threads.

A chat adapter on discord.py 2.x. It turns an interaction into (Actor, Channel,
command), calls the core (`run`, `forms.submit`; Approve and Deny are the
`approve`/`deny` commands, which go through `decide`), and draws the Reply as
embeds. No billing rule lives here.

- Every interaction is answered within Discord's three seconds: deferred before
  any slow work, then completed with `edit_original_response` or follow-ups. A
  button that opens a modal cannot defer; its form is built within a budget and
  falls back to an unfilled form when a gateway is slow.
- Buttons and modals carry what they act on in their custom_id (`cd:approve:apr_...`,
  `cd:form:refund:charge=...`) and are routed from `on_interaction`, so there is
  no per-message state to lose: buttons keep working after a restart.
- Support channels (configured) are shared: agent answers there are ephemeral,
  approvals go to the approvals channel only, and an interaction whose place
  cannot be told is refused (fail closed).
- Files of a reply (invoice and receipt PDFs) are attachments of the answer
  itself, so they are exactly as private as the answer. A customer's own
  billing (`me`, `portal`, `verify`) is deferred ephemerally in every channel.
- Queued alerts and customers' questions are posted to their Discord channel
  (never a support channel) right after a command and every few seconds, each
  with a thread of its own where agents discuss it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from redis.exceptions import RedisError

from bot import deliveries, lookup_cache
from bot.actors import Actor, ChannelKind, Role
from bot.approvals.workflow import ApprovalView
from bot.cards.billing import approval_card
from bot.cards.model import Attachment, Card, Reply
from bot.chat.discord.limits import DiscordLimits
from bot.chat.discord.render import (
    BUTTON_LABEL,
    PAGE_ROWS,
    PREFIX,
    DiscordMessage,
    Modal,
    clip,
    command_of,
    escape,
    form_given,
    form_modal,
    inert,
    modal_values,
    reply_message,
)
from bot.chat.discord.slash import Billing
from bot.commands import COMMANDS, Context
from bot.commands.forms import (
    Form,
    FormField,
    asks_first,
    form_for,
    reason_form,
    submit,
)
from bot.commands.lookup import LOOKUP_PAGE
from bot.commands.router import Command, parse
from bot.doors.base import ALERT_SECONDS, DECISIONS, Copy, Door, PostFailed, Refused
from bot.errors import UserError
from bot.rate_limits import SharedLimiter
from bot.services import Services
from bot.settings import DiscordSettings

log = logging.getLogger(__name__)

PLATFORM = "discord"
# A modal must be the first answer to a click, within three seconds: keep room for the network.
FORM_BUDGET = 2.0
AUTOCOMPLETE_BUDGET = 2.0
ROLES_TTL = 300
LAST_LOOKUP_TTL = 24 * 3600
CHOICES = 25
THREAD_NAME = 100
# Fields a Discord modal may send back; anything else is refused by `forms.submit`.
FORM_FIELDS = ("amount", "when", "reason", "reason_code", "reason_text", "question")
# Nothing pings unless a message names who it pings (`pings`): data can never ping anyone.
MENTIONS = discord.AllowedMentions.none()


def pings(*users: int | str) -> discord.AllowedMentions:
    """Exactly these users may be pinged by a message: the bot's own mentions, never @everyone."""
    return discord.AllowedMentions(
        everyone=False, roles=False, replied_user=False,
        users=[discord.Object(id=int(u)) for u in users if str(u).isdigit()],
    )  # fmt: skip


@dataclass(frozen=True)
class Turn:
    """One interaction being answered: whether its deferred answer is private, or a message update."""

    interaction: discord.Interaction
    private: bool
    update: bool = False


class _Drawn(discord.ui.View):
    """Buttons to draw only: clicks are routed by custom_id in `on_interaction`, never stored."""

    def __init__(self, message: DiscordMessage) -> None:
        super().__init__(timeout=None)
        for number, row in enumerate(message.rows):
            for spec in row:
                if spec.url:
                    self.add_item(discord.ui.Button(label=spec.label, url=spec.url, row=number))
                    continue
                self.add_item(
                    discord.ui.Button(
                        label=spec.label,
                        custom_id=spec.custom_id,
                        style=discord.ButtonStyle(spec.style),
                        row=number,
                    )
                )

    def is_dispatchable(self) -> bool:
        return False


def _embeds(message: DiscordMessage) -> list[discord.Embed]:
    return [discord.Embed.from_dict(e) for e in message.embeds]


def _drawn(message: DiscordMessage) -> dict[str, Any]:
    """Keyword arguments for discord.py's send/edit calls."""
    return {
        "content": message.content,
        "embeds": _embeds(message),
        "view": _Drawn(message) if message.rows else None,
        "allowed_mentions": pings(*message.ping),
    }


def _error(text: str) -> DiscordMessage:
    return reply_message(Reply.fail("refused", text))


class _Form(discord.ui.Modal):
    """A form drawn as a modal; its submission is routed by custom_id like a button."""

    def __init__(self, modal: Modal) -> None:
        super().__init__(title=modal.title, custom_id=modal.custom_id, timeout=None)
        for field in modal.inputs:
            self.add_item(
                discord.ui.TextInput(
                    label=field.label,
                    custom_id=field.custom_id,
                    style=discord.TextStyle.paragraph
                    if field.style == "paragraph"
                    else discord.TextStyle.short,
                    required=field.required,
                    default=field.value,
                    placeholder=field.placeholder,
                )
            )
        # Finished before it is sent: discord.py then keeps no copy to route to.
        self.stop()


class DiscordBot(Door[Turn], discord.Client):
    """The Discord door: a `/billing` command tree whose callbacks call the core."""

    platform = PLATFORM

    def __init__(
        self, settings: DiscordSettings, services: Services, *, alert_seconds: float = ALERT_SECONDS
    ) -> None:
        if settings.api_base:
            # discord.py keeps its REST base on the class: REST, callbacks and follow-ups share it.
            discord.http.Route.BASE = str(settings.api_base).rstrip("/")
        intents = discord.Intents.none()
        intents.guilds = True  # role names and threads come with the guild cache
        self._limiter: SharedLimiter | None = None
        token = settings.token.get_secret_value() if settings.token else ""
        limits = DiscordLimits(self._shared_limiter, lambda: token)
        # Every process calling Discord as this bot keeps to its limits together.
        super().__init__(intents=intents, allowed_mentions=MENTIONS, http_trace=limits.trace())
        self.settings = settings
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(Billing(self))
        self.tree.on_error = self._tree_error  # type: ignore[method-assign]
        self.alert_seconds = alert_seconds
        self._poller: asyncio.Task[None] | None = None
        self.attach(services)

    def _shared_limiter(self) -> SharedLimiter | None:
        services = getattr(self, "services", None)
        if services is None:
            return None
        if self._limiter is None or self._limiter.redis is not services.redis:
            self._limiter = SharedLimiter(services.redis, services.key)
        return self._limiter

    def role_entries(self) -> dict[Role, list[str]]:
        return {
            Role.agent: self.settings.agent_roles,
            Role.manager: self.settings.manager_roles,
            Role.admin: self.settings.admin_roles,
            Role.finance: self.settings.finance_roles,
        }

    @property
    def approvals_channel(self) -> str | None:
        channel = self.settings.approvals_channel
        return str(channel) if channel else None

    async def setup_hook(self) -> None:
        """Sync `/billing` on start: to the configured guilds (instant), else globally."""
        if self.settings.guild_ids:
            for guild_id in self.settings.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        if self._poller is None:
            self._poller = self.start_alerts(self.alert_seconds)

    async def close(self) -> None:
        await self.stop_alerts(self._poller)
        self._poller = None
        self.detach()  # a closed bot redraws nothing
        await super().close()

    # --- alerts and questions -------------------------------------------------------------

    async def alert_place(self, channel: str) -> bool:
        """An internal channel: never a support channel (customers read it)."""
        return channel.isdigit() and int(channel) not in self.settings.support_channels

    async def post_alert(self, channel: str, card: Card) -> Copy | None:
        """A message with a thread of its own, where agents discuss it."""
        try:
            posted = await self.get_partial_messageable(int(channel)).send(
                **_drawn(reply_message(Reply(cards=[card])))
            )
        except discord.HTTPException as exc:
            raise PostFailed(str(exc)) from exc
        try:
            await self.http.start_thread_with_message(
                int(channel), posted.id, name=clip(card.title, THREAD_NAME),
                auto_archive_duration=1440,
            )  # fmt: skip
        except discord.HTTPException as exc:
            log.info("alert in %s has no thread (agents can open one): %s", channel, exc)
        return Copy(channel, str(posted.id))

    # --- slash commands -------------------------------------------------------------------

    async def command(
        self, interaction: discord.Interaction, name: str, raw: dict[str, Any]
    ) -> None:
        """A `/billing` subcommand: defer, build the raw arguments, `run` validates them again."""
        if not await self._first(interaction, name):
            return
        turn = await self._defer(interaction, private=COMMANDS[name].private)
        try:
            ctx = await self._context(interaction)
            given = {k: v for k, v in raw.items() if v is not None}
            reply = await self.run_command(ctx, COMMANDS[name], given)
            if name == "lookup" and reply.error is None:
                await self._remember_lookup(ctx.actor, str(given["query"]))
            decided = str(given["id"]) if name in DECISIONS else None
            await self._answer(turn, ctx, reply, decided=decided, query=given.get("query"))
        except Refused as exc:
            await self.refuse(turn, str(exc))
        except Exception:
            await self.failed(turn, f"/billing {name}")
        await self.alerts_now()

    async def suggest(
        self, interaction: discord.Interaction, current: str, kind: str
    ) -> list[app_commands.Choice[str]]:
        """IDs from the customer this user looked up last; nothing for customers."""
        try:
            async with asyncio.timeout(AUTOCOMPLETE_BUDGET):
                ctx = await self._context(interaction)
                if not ctx.actor.has(Role.agent):
                    return []
                query = await self.services.redis.get(self._last_key(ctx.actor))
                if not query:
                    return []
                text = query.decode() if isinstance(query, bytes) else str(query)
                profile = await lookup_cache.lookup(self.services, text)
        except (TimeoutError, Refused, RedisError):
            return []
        locale = self.services.settings.locale
        if kind == "charges":
            items = [
                (c.gateway, c.id, f"{c.amount.format(locale)} · {c.status.value}")
                for c in profile.charges()
            ]
        else:
            items = [
                (s.gateway, s.id, f"{s.plan} · {s.status.value}") for s in profile.subscriptions()
            ]
        typed = current.strip().lower()
        return [
            app_commands.Choice(
                name=clip(f"{object_id} · {about}", 100), value=f"{gateway}:{object_id}"
            )
            for gateway, object_id, about in items
            if typed in object_id.lower() and len(f"{gateway}:{object_id}") <= 100
        ][:CHOICES]

    async def _tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error("Discord command failed", exc_info=error)
        if not interaction.response.is_done():
            await interaction.response.send_message(
                "That failed on our side; check `/billing approvals` before trying again.",
                ephemeral=True,
            )

    # --- buttons and modals ---------------------------------------------------------------

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Buttons and modal submissions of ours, routed by custom_id (restart-proof)."""
        data = interaction.data or {}
        custom = str(data.get("custom_id") or "")
        if not custom.startswith(f"{PREFIX}:"):
            return
        if interaction.type == discord.InteractionType.component:
            await self._on_button(interaction, custom)
        elif interaction.type == discord.InteractionType.modal_submit:
            await self._on_submit(interaction, custom)

    async def _first(self, interaction: discord.Interaction, kind: str) -> bool:
        """Whether this interaction runs: Discord gives each one an ID, and a copy delivered
        again (a gateway replay after a resume) runs nothing and answers nothing."""
        return await deliveries.first(self.services, PLATFORM, str(interaction.id), kind)

    async def _on_button(self, interaction: discord.Interaction, custom: str) -> None:
        if not await self._first(interaction, "button"):
            return
        if custom.startswith(f"{PREFIX}:page:"):
            await self._on_page(interaction, custom)
            return
        line = command_of(custom)
        try:
            spec, raw = parse(line or "")
        except UserError:
            await interaction.response.send_message("That button is out of date.", ephemeral=True)
            return
        if asks_first(spec, raw):
            await self._open_form(interaction, spec, raw)
            return
        turn = await self._defer(interaction, update=True)
        try:
            ctx = await self._context(interaction)
            reply = await self.run_command(ctx, spec, raw)
            decided = str(raw["id"]) if spec.name in DECISIONS else None
            # A decision shows as its card redrawn in place; only a refusal needs its own answer.
            await self._answer(
                turn, ctx, reply, decided=decided, show=decided is None or reply.error is not None
            )
        except Refused as exc:
            await self.refuse(turn, str(exc))
        except Exception:
            await self.failed(turn, "that button")

    async def _open_form(
        self, interaction: discord.Interaction, spec: Command, raw: dict[str, Any]
    ) -> None:
        """Answer the click with the command's modal, prefilled from the gateway when it is quick."""
        try:
            ctx = await self._context(interaction)
            if not spec.allowed(ctx.actor):
                needed = " or ".join(sorted(r.value for r in spec.roles))
                raise UserError("forbidden", f"{spec.name} needs the {needed} role")
            label = _label(interaction) or spec.name.capitalize()
            try:
                form = await asyncio.wait_for(form_for(ctx, spec, raw, label), FORM_BUDGET)
            except TimeoutError:
                # The click expires in three seconds: ask without the gateway's prefill.
                form = reason_form(spec, raw, label)
            modal = form_modal(form)
            if modal is None:
                raise UserError("usage", f"type it instead: /billing {spec.name}")
            await interaction.response.send_modal(_Form(modal))
        except (UserError, Refused) as exc:
            text = exc.message if isinstance(exc, UserError) else str(exc)
            await interaction.response.send_message(**_drawn(_error(text)), ephemeral=True)
        except Exception:
            log.exception("Discord: opening a form failed")
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    "That failed on our side; try again, or type the command.", ephemeral=True
                )

    async def _on_submit(self, interaction: discord.Interaction, custom: str) -> None:
        """A modal submitted: the form's command runs through `forms.submit`."""
        if not await self._first(interaction, "modal_submit"):
            return
        parsed = form_given(custom)
        if parsed is None or parsed[0] not in COMMANDS:
            await interaction.response.send_message("That form is out of date.", ephemeral=True)
            return
        name, given = parsed
        values = modal_values((interaction.data or {}).get("components", []))  # type: ignore[arg-type]
        decision = name in DECISIONS and interaction.message is not None
        turn = await self._defer(interaction, update=decision, private=COMMANDS[name].private)
        try:
            ctx = await self._context(interaction)
            form = Form(
                command=name, title=name, submit_label=name, given=given,
                fields=[FormField(name=n, label=n) for n in values if n in FORM_FIELDS],
            )  # fmt: skip
            reply = await submit(ctx, form, values)
            decided = given.get("id") if name in DECISIONS else None
            await self._answer(
                turn, ctx, reply, decided=decided, show=decided is None or reply.error is not None
            )
        except Refused as exc:
            await self.refuse(turn, str(exc))
        except Exception:
            await self.failed(turn, "that form")
        await self.alerts_now()

    async def _on_page(self, interaction: discord.Interaction, custom: str) -> None:
        """Previous / next rows of one list, edited into the same message (through `run`)."""
        turn = await self._defer(interaction, update=True)
        try:
            _, _, section, offset, query = custom.split(":", 4)
            ctx = await self._context(interaction)
            start = int(offset)
            reply = await self.run_command(
                ctx, LOOKUP_PAGE, {"query": query, "section": int(section), "offset": max(1, start)}
            )
            if start == 0 and reply.error is None:
                reply = await self.run_command(ctx, COMMANDS["lookup"], {"query": query})
            if reply.error is not None:
                await self._show(turn, reply_message(reply), private=True)
                return
            message = reply_message(
                reply, pager=_pager(query, int(section)), offset=start, actions=start == 0
            )
            await interaction.edit_original_response(**_drawn(message))
        except ValueError:
            await self._show(turn, _error("that button is out of date"), private=True)
        except Refused as exc:
            await self.refuse(turn, str(exc))
        except Exception:
            await self.failed(turn, "that page")

    # --- who and where --------------------------------------------------------------------

    def _kind(self, interaction: discord.Interaction) -> ChannelKind:
        """internal or shared (a support channel, or a thread under one); Refused when unknown."""
        channel_id = interaction.channel_id
        if channel_id is None:
            raise Refused("I cannot tell where this was asked, so I will not answer here.")
        guild_id = interaction.guild_id
        if (
            guild_id is not None
            and self.settings.guild_ids
            and guild_id not in self.settings.guild_ids
        ):
            raise Refused("This server is not configured for ChargeDesk.")
        support = set(self.settings.support_channels)
        if channel_id in support:
            return ChannelKind.shared
        channel = interaction.channel
        parent = getattr(channel, "parent_id", None)
        kind = getattr(channel, "type", None)
        threads = (discord.ChannelType.public_thread, discord.ChannelType.private_thread)
        if kind in threads and (parent is None or parent in support):
            return ChannelKind.shared  # a thread we cannot place is treated as readable by all
        return ChannelKind.internal

    async def _context(self, interaction: discord.Interaction) -> Context:
        kind = self._kind(interaction)
        actor = await self._actor(interaction)
        return self.context(actor, str(interaction.channel_id), kind)

    async def _actor(self, interaction: discord.Interaction) -> Actor:
        """The member with the roles their Discord roles map to; anyone else is a customer."""
        user = interaction.user
        held: set[str] = set()
        names: set[str] = set()
        if isinstance(user, discord.Member) and interaction.guild_id is not None:
            # The interaction's member carries role IDs even when the guild is not cached.
            held = {str(r) for r in getattr(user, "_roles", [])}
            names = await self._role_names(interaction.guild_id, held)

        async def holds(entry: str) -> bool:  # a role by ID or by name
            return entry in held or entry.lower() in names

        name = getattr(user, "display_name", None) or user.name
        # A direct message has no member and no roles: a customer.
        return await self.person(str(user.id), name, holds)

    async def _role_names(self, guild_id: int, held: set[str]) -> set[str]:
        """Lower-cased names of the held roles, from the guild cache or REST (cached a few minutes)."""
        configured = [
            *self.settings.agent_roles,
            *self.settings.manager_roles,
            *self.settings.admin_roles,
        ]
        if not held or all(e.isdigit() for e in configured):
            return set()
        guild = self.get_guild(guild_id)
        if guild is not None and guild.roles:
            return {r.name.lower() for r in guild.roles if str(r.id) in held}
        key = self.services.key("discord", "roles", str(guild_id))
        known: dict[str, str] | None = None
        try:
            cached = await self.services.redis.get(key)
            known = json.loads(cached) if cached else None
        except RedisError:
            pass
        if known is None:
            try:
                listed = await self.http.get_roles(guild_id)
            except discord.HTTPException as exc:
                # Roles by name cannot be checked: the member keeps only roles given by ID.
                log.warning("cannot list roles of guild %s: %s", guild_id, exc)
                return set()
            known = {str(r["id"]): str(r["name"]) for r in listed}
            try:
                await self.services.redis.set(key, json.dumps(known), ex=ROLES_TTL)
            except RedisError:
                log.warning("cannot cache the roles of guild %s", guild_id)
        return {name.lower() for role_id, name in known.items() if role_id in held}

    def _last_key(self, actor: Actor) -> str:
        return self.services.key("discord", "last-lookup", actor.id)

    async def _remember_lookup(self, actor: Actor, query: str) -> None:
        try:
            await self.services.redis.set(self._last_key(actor), query, ex=LAST_LOOKUP_TTL)
        except RedisError:
            log.warning("cannot remember the last lookup of %s", actor.key)

    # --- answers --------------------------------------------------------------------------

    async def _defer(
        self, interaction: discord.Interaction, *, update: bool = False, private: bool = False
    ) -> Turn:
        """Answer Discord at once; the place (or a private command) decides whether it is private."""
        try:
            private = private or self._kind(interaction) == ChannelKind.shared
        except Refused:
            private = True
        if update:
            await interaction.response.defer()
        else:
            await interaction.response.defer(ephemeral=private, thinking=True)
        return Turn(interaction, private, update)

    async def _answer(
        self,
        turn: Turn,
        ctx: Context,
        reply: Reply,
        *,
        decided: str | None = None,
        show: bool = True,
        query: Any = None,
    ) -> None:
        """Show a reply where it belongs: in place, privately, or as an approval thread."""
        await self.settle_decision(ctx, decided, reply)
        if self.pending(reply) and not decided:
            await self.post_approval(ctx, reply, turn)
            return
        if not show:
            return
        private = self.private(ctx, reply)
        pager = _pager(str(query), None) if query else None
        await self._show(
            turn, reply_message(reply, pager=pager), private=private, files=reply.files
        )

    async def _show(
        self,
        turn: Turn,
        message: DiscordMessage,
        *,
        private: bool,
        files: Sequence[Attachment] = (),
    ) -> None:
        """One message as the interaction's answer, files attached; a private one never lands publicly."""
        interaction = turn.interaction
        if turn.update:
            await interaction.followup.send(
                **_followup(message), **_files(files), ephemeral=private or turn.private
            )
            return
        if private and not turn.private:
            # The public "thinking…" placeholder goes; the answer comes privately.
            try:
                await interaction.delete_original_response()
            except discord.HTTPException as exc:
                log.info("cannot delete the placeholder: %s", exc)
            await interaction.followup.send(**_followup(message), **_files(files), ephemeral=True)
            return
        attached = {"attachments": _discord_files(files)} if files else {}
        await interaction.edit_original_response(**_drawn(message), **attached)

    def shows_publicly(self, ctx: Context, reply: Reply, turn: Turn) -> bool:
        return super().shows_publicly(ctx, reply, turn) and not turn.private

    def _request_card(self, turn: Turn, reply: Reply) -> DiscordMessage:
        user = turn.interaction.user.id
        return reply_message(reply, content=f"Requested by <@{user}>", ping=(str(user),))

    async def post_beside(self, ctx: Context, reply: Reply, turn: Turn) -> Copy | None:
        """A thread on the agent's message (the deferred answer), the card inside it."""
        interaction = turn.interaction
        if turn.update or interaction.channel_id is None:
            return None
        approval_id = reply.approval.id if reply.approval else ""
        user = interaction.user.id
        title = reply.cards[0].title if reply.cards else approval_id
        card = self._request_card(turn, reply)
        head = await interaction.edit_original_response(
            content=clip(f"<@{user}> asked: {inert(title)}", 2000), embeds=[], view=None,
            allowed_mentions=pings(user),
        )  # fmt: skip
        try:
            thread = await self.http.start_thread_with_message(
                interaction.channel_id, head.id,
                name=clip(f"Approval {approval_id}", THREAD_NAME), auto_archive_duration=1440,
            )  # fmt: skip
            posted = await self.get_partial_messageable(int(thread["id"])).send(**_drawn(card))
            return Copy(str(thread["id"]), str(posted.id), str(thread["id"]))
        except discord.HTTPException as exc:
            # No thread (permissions, archived channel): the request's own message carries the card.
            log.warning("cannot open an approval thread in %s: %s", interaction.channel_id, exc)
            await interaction.edit_original_response(**_drawn(card))
            return Copy(str(interaction.channel_id), str(head.id))

    async def post_to_approvals(
        self, ctx: Context, reply: Reply, turn: Turn, channel: str
    ) -> Copy | None:
        try:
            posted = await self.get_partial_messageable(int(channel)).send(
                **_drawn(self._request_card(turn, reply))
            )
        except discord.HTTPException as exc:
            log.warning("cannot post %s to the approvals channel: %s", channel, exc)
            return None
        return Copy(channel, str(posted.id))

    async def say_where_decided(
        self, ctx: Context, reply: Reply, turn: Turn, channel: str | None
    ) -> None:
        where = f"<#{channel}>" if channel else "`/billing approvals`"
        quiet = reply_message(reply, actions=False, content=f"A manager decides in {where}.")
        await self._show(turn, quiet, private=True)

    def _card(self, view: ApprovalView) -> DiscordMessage:
        card = approval_card(view, locale=self.services.settings.locale)
        requester = self.own_user(view.requester_key)
        who = f"Requested by <@{requester}>" if requester else None
        return reply_message(
            Reply(cards=[card]), content=who, ping=(requester,) if requester else ()
        )

    async def redraw(self, copy: Copy, view: ApprovalView) -> None:
        """An edit through the REST API: it needs the token, not the gateway connection."""
        partial = self.get_partial_messageable(int(copy.channel)).get_partial_message(
            int(copy.message)
        )
        try:
            await partial.edit(**_drawn(self._card(view)))
        except discord.HTTPException as exc:
            raise PostFailed(str(exc)) from exc

    async def tell_requester(self, home: Copy, user: str, view: ApprovalView) -> None:
        drawn = self._card(view)
        title = drawn.embeds[0].get("title", view.id) if drawn.embeds else view.id
        who = f" (decided by {view.votes[-1].name})" if view.votes else ""
        try:
            await self.get_partial_messageable(int(home.channel)).send(
                content=clip(f"<@{user}> {inert(title)}{escape(who)}", 2000),
                allowed_mentions=pings(user),
            )
        except discord.HTTPException as exc:
            raise PostFailed(str(exc)) from exc

    async def send_private(self, turn: Turn, text: str) -> None:
        await self._show(turn, _error(text), private=True)


def _discord_files(files: Sequence[Attachment]) -> list[discord.File]:
    # A discord.File is read once when sent: a fresh one per message.
    return [discord.File(io.BytesIO(f.content), filename=f.name) for f in files]


def _files(files: Sequence[Attachment]) -> dict[str, Any]:
    """Keyword arguments for send(): none at all without files (discord.py takes no empty list)."""
    return {"files": _discord_files(files)} if files else {}


def _followup(message: DiscordMessage) -> dict[str, Any]:
    """Follow-ups take no `None` content or view."""
    drawn = _drawn(message)
    return {k: v for k, v in drawn.items() if v is not None}


def _label(interaction: discord.Interaction) -> str | None:
    """The clicked button's label, from the message it sits on."""
    message = interaction.message
    custom = (interaction.data or {}).get("custom_id")
    if message is None:
        return None
    for row in message.components:
        for child in getattr(row, "children", []):
            if getattr(child, "custom_id", None) == custom:
                return clip(getattr(child, "label", None) or "", BUTTON_LABEL) or None
    return None


def _pager(query: str, section: int | None) -> Any:
    """custom_ids of the previous / next page buttons of a lookup's lists (None when too long)."""

    def ids(
        card: int, number: int, offset: int, shown: int
    ) -> tuple[str | None, str | None] | None:
        if card != 0 or (section is not None and number != 0):
            return None
        at = number if section is None else section
        back = f"{PREFIX}:page:{at}:{max(0, offset - PAGE_ROWS)}:{query}" if offset > 0 else None
        more = f"{PREFIX}:page:{at}:{offset + shown}:{query}"
        if len(more) > 100:
            return None
        return back, more

    return ids


class DiscordRedraw(DiscordBot):
    """Discord's approval copies redrawn from a process without the gateway connection.

    `chargedesk shell`, a worker's recovery or the web process (Slack) can decide a
    request shown on Discord while `chargedesk discord` holds the connection. An edit
    needs only the bot token and the REST API: each decision logs in over REST, redraws
    every stored copy, tells the requester, and closes the HTTP session again.
    """

    def __init__(self, settings: DiscordSettings, services: Services) -> None:
        super().__init__(settings, services, alert_seconds=0)
        self._rest = asyncio.Lock()

    async def _decided(self, approval_id: str, actor: Actor) -> None:
        if self.settings.token is None:
            return
        async with self._rest:  # one REST session at a time on this client
            self.http.connector = discord.utils.MISSING  # the last close closed it
            await self.http.static_login(self.settings.token.get_secret_value())
            try:
                await self.refresh(approval_id)
            finally:
                await self.http.close()
