"""`/billing` is generated from the router's command table and argument models (issue 13).

Offline, the tree is built for a stand-in bot and read through discord.py's public
`Command`/`Parameter` API: a subcommand per command a form can run, an option per
argument a form asks for, and the same subcommands, options and choices as the
hand-written tree it replaces. Then the real bot logs in to the fake Discord API:
the commands it syncs satisfy Discord's published API description and limits, and
options typed in Discord reach the core as the hand-written tree sent them.
"""

from __future__ import annotations

import asyncio
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import discord
import jsonschema
import pytest
from discord import app_commands
from discord.enums import AppCommandOptionType
from pydantic import Field, create_model

from bot.actors import Role
from bot.chat.discord.slash import Billing, asked, description, layout, options, subcommands
from bot.commands import COMMANDS
from bot.commands.args import Args
from bot.commands.router import Command
from chargedesk_emulators.discord import GUILD_ID
from chargedesk_emulators.discord import description as discord_api_description
from tests.chat import test_discord
from tests.chat.test_discord import AGENT, INTERNAL, Harness, interaction, lookup_card

# The Discord tests' fake REST API and logged-in bot.
api = test_discord.api
discord_bot = test_discord.discord_bot

SYNC = "/applications/{application_id}/guilds/{guild_id}/commands"
NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
TEXT, INTEGER = AppCommandOptionType.string, AppCommandOptionType.integer


def opt(
    name: str, kind: AppCommandOptionType, required: bool,
    choices: tuple[tuple[str, str], ...] = (), suggest: bool = False,
) -> tuple[Any, ...]:  # fmt: skip
    return name, kind, required, choices, suggest


# The hand-written tree (before issue 13), option by option. One difference, on purpose:
# `invoice` asks `action` first now, in the order it is typed (`invoice pdf <id>`).
HAND_WRITTEN = {
    "help": [opt("topic", TEXT, False)],
    "lookup": [opt("query", TEXT, True)],
    "refund": [opt("charge", TEXT, True, suggest=True), opt("reason", TEXT, True),
               opt("amount", TEXT, False),
               # Added since (issue 16): a refund paid back by hand, recorded at the gateway.
               opt("method", TEXT, False, choices=(("Through the payment method", "gateway"),
                                                   ("Paid back by hand: record it", "manual")))],
    "cancel": [opt("subscription", TEXT, True, suggest=True), opt("reason", TEXT, True),
               opt("when", TEXT, False, choices=(("At the end of the paid period", "period-end"),
                                                 ("Now", "now"))),
               # Added with `cancel … now and-refund`: a new option, the old ones unchanged.
               opt("refund", TEXT, False, choices=(("No refund", "none"),
                                                   ("Refund the last payment", "last"),
                                                   ("Refund the unused part of the period", "prorated")))],
    "capture": [opt("charge", TEXT, True, suggest=True), opt("reason", TEXT, True),
                opt("amount", TEXT, False)],
    "void": [opt("charge", TEXT, True, suggest=True), opt("reason", TEXT, True)],
    "invoice": [opt("action", TEXT, True, choices=(("PDF", "pdf"), ("Email it to the customer", "send"))),
                opt("invoice", TEXT, True)],
    "receipt": [opt("charge", TEXT, True, suggest=True),
                opt("action", TEXT, False, choices=(("PDF", "pdf"), ("Email it to the customer", "send")))],
    "approvals": [opt("which", TEXT, False)],
    "approve": [opt("id", TEXT, True)],
    "deny": [opt("id", TEXT, True), opt("reason", TEXT, True)],
    "audit": [opt("who", TEXT, False), opt("since", TEXT, False)],
    "alerts": [opt("count", INTEGER, False)],
    "verify": [opt("email", TEXT, False), opt("code", TEXT, False)],
    "me": [opt("pdf", TEXT, False)],
    "portal": [],
    "ask": [opt("question", TEXT, True)],
    "links": [opt("who", TEXT, True)],
    "unlink": [opt("who", TEXT, True), opt("reason", TEXT, True)],
}  # fmt: skip


class StandIn:
    """The Discord bot as `Billing` calls it when a subcommand runs: it records the call."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    async def command(self, interaction: Any, name: str, raw: dict[str, Any]) -> None:
        self.commands.append((name, raw))


def built() -> tuple[Billing, StandIn]:
    bot = StandIn()
    return Billing(bot), bot  # type: ignore[arg-type]


def shape(command: app_commands.Command[Any, ..., Any]) -> list[tuple[Any, ...]]:
    return [
        opt(p.display_name, p.type, p.required,
            tuple((c.name, c.value) for c in p.choices), p.autocomplete)
        for p in command.parameters
    ]  # fmt: skip


def leaves(billing: Billing) -> list[app_commands.Command[Any, ..., Any]]:
    """Every subcommand, whether a child of `/billing` or of one of its groups."""
    return [c for c in billing.walk_commands() if isinstance(c, app_commands.Command)]


def sub(billing: Billing, name: str) -> app_commands.Command[Any, ..., Any]:
    found = next((c for c in leaves(billing) if c.name == name), None)
    assert found is not None, name
    return found


# --- the tree, offline ------------------------------------------------------------------


def test_every_router_command_for_discord_users_is_a_subcommand():
    billing, _ = built()
    names = [c.name for c in leaves(billing)]
    # Every role a command may need can be held on Discord: all commands but those a form
    # cannot run, whose required argument only a button or the typed grammar fills.
    assert set(COMMANDS) - set(names) == {"again"}
    assert asked(COMMANDS["again"].args.model_fields["id"]).never
    assert sorted(names) == sorted(spec.name for spec in subcommands())
    for spec in subcommands():
        assert sub(billing, spec.name).description == description(spec)


def test_options_match_the_argument_models():
    billing, _ = built()
    for spec in subcommands():
        fields = spec.args.model_fields
        for p in sub(billing, spec.name).parameters:
            argument = next(n for n, f in fields.items() if (asked(f).name or n) == p.display_name)
            info = fields[argument]
            assert not asked(info).never, f"{spec.name}.{argument}"
            assert p.required == info.is_required(), f"{spec.name}.{argument}"
            assert p.description == info.description, f"{spec.name}.{argument}"
            base = _bare(info.annotation)
            if get_origin(base) is Literal:
                assert p.type == TEXT and [c.value for c in p.choices] == list(get_args(base))
            elif base is int:
                assert p.type == INTEGER and not p.choices
            else:
                assert base is str and p.type == TEXT and not p.choices
        shown = {p.display_name for p in sub(billing, spec.name).parameters}
        expected = {asked(f).name or n for n, f in fields.items() if not asked(f).never}
        assert shown == expected, spec.name
    count = sub(billing, "alerts").get_parameter("count")
    assert count is not None and (count.min_value, count.max_value) == (1, 50)


def _bare(annotation: Any) -> Any:
    """`Annotated[str, ...] | None` -> str."""
    while get_origin(annotation) in (Union, types.UnionType, Annotated):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def test_users_see_the_subcommands_options_and_choices_they_had():
    billing, _ = built()
    children = {c.name for c in billing.commands}
    assert set(HAND_WRITTEN) <= children  # where they were: no group moved them
    assert {name: shape(sub(billing, name)) for name in HAND_WRITTEN} == HAND_WRITTEN


def test_billing_holds_at_most_25_children_and_the_rest_sit_in_groups():
    billing, _ = built()
    direct, groups = layout()
    assert len(billing.commands) == len(direct) + len(groups) <= 25
    for group in groups:
        found = billing.get_command(group)
        assert isinstance(found, app_commands.Group) and len(found.commands) <= 25
    grouped = {spec.name for specs in groups.values() for spec in specs}
    assert grouped.isdisjoint(HAND_WRITTEN)  # only commands Discord users never had are nested


async def test_each_subcommand_sends_the_arguments_the_hand_written_tree_sent():
    billing, bot = built()
    cases = [
        ("help", {}, {"topic": None}),
        ("lookup", {"query": "jane@example.com"}, {"query": "jane@example.com"}),
        ("refund", {"charge": "ch_1", "reason": "duplicate x"},
         {"charge": "ch_1", "amount": None, "method": None, "reason": "duplicate x"}),
        ("cancel", {"subscription": "sub_1", "reason": "other x", "when": "now"},
         {"subscription": "sub_1", "reason": "other x", "when": "now", "refund": None}),
        ("invoice", {"invoice": "in_1", "action": "send"}, {"invoice": "in_1", "action": "send"}),
        ("receipt", {"charge": "ch_1"}, {"charge": "ch_1", "action": None}),
        ("alerts", {"count": 5}, {"count": 5}),
        ("verify", {"code": "123456"}, {"email": None, "code": "123456"}),
        ("me", {"pdf": "in_1"}, {"action": "pdf", "document": "in_1"}),
        ("portal", {}, {}),
        ("unlink", {"who": "discord:1", "reason": "left"}, {"who": "discord:1", "reason": "left"}),
    ]  # fmt: skip
    for name, given, raw in cases:
        await sub(billing, name).callback(object(), **given)  # type: ignore[call-arg]
        assert bot.commands.pop() == (name, raw)
    # `me` alone: the hand-written tree sent {}; None is left out before the command runs.
    await sub(billing, "me").callback(object())  # type: ignore[call-arg]
    assert bot.commands.pop() == ("me", {"document": None})


def test_only_charge_and_subscription_options_suggest_ids():
    billing, _ = built()
    suggesting = {
        (c.name, p.display_name) for c in leaves(billing) if c.name in HAND_WRITTEN
        for p in c.parameters if p.autocomplete
    }  # fmt: skip
    assert suggesting == {("refund", "charge"), ("capture", "charge"), ("void", "charge"),
                          ("receipt", "charge"), ("cancel", "subscription")}  # fmt: skip


def test_an_argument_discord_cannot_ask_for_fails_when_the_tree_is_built():
    class Ratio(Args):
        ratio: float = Field(description="a ratio")

    many = create_model(
        "Many", __base__=Args, **{f"a{n}": (str, Field(description="x")) for n in range(26)}
    )

    async def handler(ctx: Any, args: Any) -> Any:
        """A command for this test."""

    def spec(args: type[Args]) -> Command:
        return Command("test", args, frozenset({Role.agent}), handler, "test", ())

    with pytest.raises(TypeError, match="no Discord option type"):
        options(spec(Ratio))
    with pytest.raises(ValueError, match="26 options, Discord takes 25"):
        options(spec(many))


# --- the bot, logged in to the fake Discord API ------------------------------------------


@pytest.mark.storage
async def test_the_synced_commands_satisfy_discords_api_description_and_limits(discord_bot):
    synced = await discord_bot.api.wait_for("PUT", SYNC)
    body = synced[0].body
    published = discord_api_description()
    request = published["paths"][SYNC]["put"]["requestBody"]["content"]["application/json"]
    jsonschema.Draft202012Validator(
        {**request["schema"], "components": published["components"]}
    ).validate(body)
    (billing,) = body
    assert len(billing["options"]) <= 25
    for command in billing["options"]:
        assert NAME.match(command["name"]) and 1 <= len(command["description"]) <= 100
        assert not command["description"].endswith("…"), f"help line of {command['name']} clipped"
        given = command.get("options", [])
        assert len(given) <= 25
        required = [o.get("required", False) for o in given]
        assert required == sorted(required, reverse=True), f"{command['name']}: required first"
        for option in given:
            assert NAME.match(option["name"]), option["name"]
            assert 1 <= len(option["description"]) <= 100 and not option["description"].endswith(
                "…"
            )
            assert all(1 <= len(c["name"]) <= 100 for c in option.get("choices", []))


@pytest.mark.storage
async def test_options_typed_in_discord_reach_the_core_as_before(discord_bot, monkeypatch):
    d: Harness = discord_bot
    received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def command(interaction: discord.Interaction, name: str, raw: dict[str, Any]) -> None:
        await received.put((name, raw))

    monkeypatch.setattr(d.bot, "command", command)
    cases = [
        ("cancel", {"subscription": "sub_1", "reason": "other x", "when": "now"},
         {"subscription": "sub_1", "reason": "other x", "when": "now", "refund": None}),
        ("me", {"pdf": "in_1"}, {"action": "pdf", "document": "in_1"}),
        ("invoice", {"action": "pdf", "invoice": "in_1"}, {"action": "pdf", "invoice": "in_1"}),
        ("alerts", {"count": 7}, {"count": 7}),
        ("help", {}, {"topic": None}),
    ]  # fmt: skip
    for name, given, raw in cases:
        await d.command(AGENT, name, **given)
        assert await asyncio.wait_for(received.get(), 5) == (name, raw)


@pytest.mark.storage
@pytest.mark.parametrize(
    ("command", "option", "typed", "suggested"),
    [
        ("cancel", "subscription", "pro", "ledger:sub_jane_pro"),
        ("receipt", "charge", "jane_1", "ledger:ch_jane_1"),
        ("capture", "charge", "auth", "ledger:ch_jane_auth"),
        ("void", "charge", "auth", "ledger:ch_jane_auth"),
    ],
)
async def test_charge_and_subscription_options_suggest_the_looked_up_customers_ids(
    discord_bot, command, option, typed, suggested
):
    d: Harness = discord_bot
    await lookup_card(d)
    data = {"id": "1700000000000000001", "name": "billing", "type": 1, "guild_id": GUILD_ID,
            "options": [{"type": 1, "name": command, "options": [
                {"type": 3, "name": option, "value": typed, "focused": True}]}]}  # fmt: skip
    answer = await d.callback(d.feed(interaction(4, AGENT, INTERNAL, data)))
    assert answer["type"] == 8
    assert suggested in [c["value"] for c in answer["data"]["choices"]]
