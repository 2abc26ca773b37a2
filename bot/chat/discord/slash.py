"""The `/billing` command tree Discord shows, generated from the router's command table.

A subcommand per router command a form can run (`subcommands`): its name, and its
description from the first line of its help. An option per argument a form asks
for (`options`), read from the argument model's field: text, an integer with the
field's bounds, or a choice of a Literal's or an Enum's values; required ones
first; the field's description. `bot.commands.args.Asked` on a field says what
its type cannot: suggestions (autocomplete), the labels of a choice, an argument
no form asks for (`again`'s request ID, so `again` has no subcommand), or one
asked under another name (`me pdf <id>` is the option `pdf`). The callback puts
the options back under the argument names, as the typed grammar would, and calls
`bot.command`, where the same model validates them again.

discord.py reads a command's options from its callback's signature. Each callback
here gets one through `__signature__` (Python's own way to give a function a
signature) and the public decorators `describe`, `choices` and `autocomplete`,
and is added with `Group.add_command`: no private attribute of discord.py.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import discord
from discord import app_commands
from pydantic.fields import FieldInfo

from bot.commands.args import Asked
from bot.commands.help import ORDER
from bot.commands.router import COMMANDS, Command

if TYPE_CHECKING:
    from bot.chat.discord.adapter import DiscordBot

# Discord's limits (discord.com/developers/docs/interactions/application-commands).
NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
TEXT = 100  # a description, a choice's name
OPTIONS = 25  # options of a subcommand, choices of an option
# Where a help line turns to examples of the typed grammar (`: \`refund ch_1\``): Discord shows options.
_EXAMPLES = re.compile(r":\s*`")
_PLAIN = Asked()  # a field without a marker: asked, by its own name

Suggester = Callable[[discord.Interaction, str], Awaitable[list[app_commands.Choice[str]]]]


@dataclass(frozen=True)
class Option:
    """One option of a subcommand: the argument it fills and how Discord asks for it."""

    name: str  # what Discord shows
    argument: str  # the argument model's field it fills
    kind: type  # str or int
    required: bool
    description: str
    choices: tuple[app_commands.Choice[Any], ...] = ()
    low: int | None = None
    high: int | None = None
    suggest: str | None = None  # "charges" or "subscriptions"
    implies: Mapping[str, str] = field(default_factory=dict)

    @property
    def annotation(self) -> Any:
        """What discord.py reads the option's type (and an integer's bounds) from."""
        typed: Any = self.kind
        if self.kind is int and (self.low is not None or self.high is not None):
            typed = app_commands.Range[int, self.low, self.high]
        return typed if self.required else typed | None


def asked(info: FieldInfo) -> Asked:
    """The field's `Asked` marker (on the field, or inside `X | None`), or the plain one."""
    found = [m for m in [*info.metadata, *_bare(info.annotation)[1]] if isinstance(m, Asked)]
    return found[0] if found else _PLAIN


def _bare(annotation: Any) -> tuple[Any, list[Any]]:
    """`Annotated[int | None, Ge(1)]` -> (int, [Ge(1)]): the type without None and metadata."""
    metadata: list[Any] = []
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            metadata += extra
        elif get_origin(annotation) in (Union, types.UnionType):
            rest = [a for a in get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation, metadata
            annotation = rest[0]
        else:
            return annotation, metadata


def runnable(spec: Command) -> bool:
    """Whether a form can run the command: a required argument no form asks for means no."""
    return not any(
        asked(info).never and info.is_required() for info in spec.args.model_fields.values()
    )


def subcommands() -> list[Command]:
    """The router's commands that are `/billing` subcommands, in the order `help` lists them."""
    specs = sorted(
        COMMANDS.values(), key=lambda s: ORDER.index(s.name) if s.name in ORDER else len(ORDER)
    )
    return [spec for spec in specs if runnable(spec)]


# Discord lets `/billing` hold 25 children, and more commands than that exist: the less daily
# ones sit one level down, by what they act on (`/billing subscription plan`). The typed
# grammar is unchanged (`plan sub_1 pro` in Slack and the shell). A command in no group is a
# child of `/billing` itself; one that would make it 26 goes under `more`.
GROUPS: dict[str, tuple[str, ...]] = {
    "subscription": ("subscribe", "plan", "pause", "resume", "coupon"),
    "customer": ("tax-id", "address", "name", "reissue"),
    "payment": ("charge", "request"),
}
OVERFLOW = "more"


def layout() -> tuple[list[Command], dict[str, list[Command]]]:
    """(children of `/billing`, subcommands of each group), each in `help`'s order."""
    grouped = {name: group for group, names in GROUPS.items() for name in names}
    direct: list[Command] = []
    groups: dict[str, list[Command]] = {}
    for spec in subcommands():
        if spec.name in grouped:
            groups.setdefault(grouped[spec.name], []).append(spec)
        else:
            direct.append(spec)
    if len(direct) + len(groups) > OPTIONS:
        room = OPTIONS - len(groups) - 1
        direct, groups[OVERFLOW] = direct[:room], direct[room:]
    return direct, groups


def clip(text: str, limit: int = TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def description(spec: Command) -> str:
    """The first line of the command's help, without its typed examples or backticks."""
    text = _EXAMPLES.split(spec.summary, maxsplit=1)[0].replace("`", "").strip().rstrip(".")
    return clip(text or spec.name)


def options(spec: Command) -> list[Option]:
    """The options of the command's subcommand: one per argument a form asks for."""
    found: list[Option] = []
    for argument, info in spec.args.model_fields.items():
        marker = asked(info)
        if marker.never:
            continue
        found.append(_option(spec, argument, info, marker))
    if len(found) > OPTIONS:
        raise ValueError(f"{spec.name}: {len(found)} options, Discord takes {OPTIONS}")
    return sorted(found, key=lambda o: not o.required)  # Discord: required ones first


def _option(spec: Command, argument: str, info: FieldInfo, marker: Asked) -> Option:
    name = marker.name or argument
    if not NAME.match(name):
        raise ValueError(f"{spec.name}: option name {name!r} is not one Discord takes")
    unknown = set(marker.implies) - set(spec.args.model_fields)
    if unknown:
        raise ValueError(f"{spec.name}.{argument} implies unknown arguments {sorted(unknown)}")
    base, metadata = _bare(info.annotation)
    values: list[Any] | None = None
    if get_origin(base) is Literal:
        values = list(get_args(base))
    elif isinstance(base, type) and issubclass(base, Enum):
        values = [member.value for member in base]
    kind = type(values[0]) if values else base
    if kind not in (str, int) or (values and any(type(v) is not kind for v in values)):
        raise TypeError(f"{spec.name}.{argument}: no Discord option type for {info.annotation!r}")
    low, high = _bounds([*info.metadata, *metadata]) if kind is int and not values else (None, None)
    choices = tuple(
        app_commands.Choice(name=clip(marker.labels.get(str(v), str(v))), value=v)
        for v in values or ()
    )
    if len(choices) > OPTIONS:
        raise ValueError(f"{spec.name}.{argument}: {len(choices)} choices, Discord takes {OPTIONS}")
    return Option(
        name=name, argument=argument, kind=kind, required=info.is_required(),
        description=clip(info.description or argument), choices=choices, low=low, high=high,
        suggest=marker.suggest, implies=dict(marker.implies),
    )  # fmt: skip


def _bounds(metadata: list[Any]) -> tuple[int | None, int | None]:
    """An integer field's smallest and largest values, from its `ge`/`gt`/`le`/`lt`."""
    low = high = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = int(m.ge)
        elif isinstance(m, annotated_types.Gt):
            low = int(m.gt) + 1
        elif isinstance(m, annotated_types.Le):
            high = int(m.le)
        elif isinstance(m, annotated_types.Lt):
            high = int(m.lt) - 1
    return low, high


def arguments(opts: list[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The options Discord sent, under their argument names: what the command receives.

    An option not given is None (the adapter leaves it out); one given also sets the
    arguments it implies (`pdf` -> `{"action": "pdf", "document": ...}`).
    """
    raw: dict[str, Any] = {}
    for option in opts:
        value = given.get(option.name)
        raw[option.argument] = value
        if value is not None:
            raw.update(option.implies)
    return raw


class Billing(app_commands.Group):
    """`/billing`: a subcommand per core command; options fill the command's arguments."""

    def __init__(self, bot: DiscordBot) -> None:
        super().__init__(name="billing", description="ChargeDesk billing support")
        self.bot = bot
        direct, groups = layout()
        for spec in direct:
            self.add_command(self._subcommand(spec, self))
        for name, specs in groups.items():
            group = app_commands.Group(
                name=name, description=clip(", ".join(s.name for s in specs))
            )
            for spec in specs:
                group.add_command(self._subcommand(spec, group))
            self.add_command(group)

    def _subcommand(
        self, spec: Command, parent: app_commands.Group
    ) -> app_commands.Command[Any, ..., None]:
        opts = options(spec)
        name = spec.name

        async def callback(interaction: discord.Interaction, **given: Any) -> None:
            await self.bot.command(interaction, name, arguments(opts, given))

        keyword = inspect.Parameter.KEYWORD_ONLY
        callback.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=discord.Interaction),
            *(inspect.Parameter(o.name, keyword, annotation=o.annotation,
                                default=inspect.Parameter.empty if o.required else None)
              for o in opts),
        ])  # fmt: skip
        if opts:
            app_commands.describe(**{o.name: o.description for o in opts})(callback)
        if chosen := {o.name: list(o.choices) for o in opts if o.choices}:
            app_commands.choices(**chosen)(callback)
        if suggested := {o.name: self._suggester(o.suggest) for o in opts if o.suggest}:
            app_commands.autocomplete(**suggested)(callback)
        return app_commands.Command(
            name=name, description=description(spec), callback=callback, parent=parent
        )

    def _suggester(self, kind: str) -> Suggester:
        async def suggest(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return await self.bot.suggest(interaction, current, kind)

        return suggest
