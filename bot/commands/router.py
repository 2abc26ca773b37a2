"""Command registry, text parsing and dispatch: one grammar on every platform.

A command is an async function with a pydantic argument model, the roles
allowed to run it, and a docstring that is its help text. Text platforms go
through `dispatch(line)`; platforms with forms (Slack modals, Discord options)
fill the argument model and call `run()` directly.
"""

from __future__ import annotations

import inspect
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot import logs, metrics
from bot.actors import Actor, Channel, ChannelKind, Role
from bot.cards.model import Reply
from bot.commands.args import echo
from bot.errors import UserError
from bot.iso4217 import DIGITS
from bot.services import Services

log = logging.getLogger(__name__)

_REASON = re.compile(r"\breason:\s*", re.IGNORECASE)
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
# Any digits: `١٢ EUR` is joined too, so that the amount's own check names the digits.
_NUMBER = re.compile(r"^[^A-Za-z]*\d[^A-Za-z]*$")
# An error is one line of at most this many characters, whatever it quotes.
ERROR_CHARS = 300
# What read-only staff (`Role.viewer`) may run besides help: showing billing, nothing that
# moves money or changes anything.
VIEWER_COMMANDS = frozenset({"lookup"})
A = TypeVar("A", bound=BaseModel)


@dataclass(frozen=True)
class Context:
    services: Services
    actor: Actor
    channel: Channel


Handler = Callable[[Context, Any], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    name: str
    args: type[BaseModel]
    roles: frozenset[Role]
    handler: Handler
    usage: str
    positional: tuple[str, ...]
    # Answers only the person who asked, wherever asked (a customer's own billing).
    private: bool = False
    # The last positional argument takes the rest of the line as typed (a question).
    greedy: bool = False
    # The last positional argument takes the words left before `reason:` (a description).
    tail: bool = False

    @property
    def help(self) -> str:
        return inspect.cleandoc(self.handler.__doc__ or "")

    @property
    def summary(self) -> str:
        return self.help.splitlines()[0] if self.help else ""

    def allowed(self, actor: Actor) -> bool:
        if any(actor.has(role) for role in self.roles):
            return True
        return self.name in VIEWER_COMMANDS and actor.has(Role.viewer)


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    *,
    args: type[A],
    usage: str,
    roles: tuple[Role, ...] = (Role.agent,),
    positional: tuple[str, ...] = (),
    private: bool = False,
    greedy: bool = False,
    tail: bool = False,
) -> Callable[[Callable[[Context, A], Awaitable[Reply]]], Callable[[Context, A], Awaitable[Reply]]]:
    """Register a command; its docstring becomes its help.

    `private`: its answers are for the asker only, in any channel. `greedy`: the
    last positional argument is the rest of the line, spaces and all.
    """

    def register(
        handler: Callable[[Context, A], Awaitable[Reply]],
    ) -> Callable[[Context, A], Awaitable[Reply]]:
        COMMANDS[name] = Command(
            name, args, frozenset(roles), handler, usage, positional, private, greedy, tail
        )
        return handler

    return register


def parse(line: str) -> tuple[Command, dict[str, Any]]:
    """`refund ch_1 12.50 reason: duplicate charged twice` -> (refund, {charge, amount, reason})."""
    text = line.strip().removeprefix("/billing").strip()
    first = text.split(maxsplit=1)
    if not first:
        raise UserError("unknown_command", "type a command, or `help` to list them")
    name = first[0].lower()
    spec = COMMANDS.get(name)
    if spec is None:
        raise UserError(
            "unknown_command", f"unknown command {echo(first[0])}: type `help` to list commands"
        )
    if spec.greedy:
        # Free text (a question) is taken as typed: no `reason:` split, no amount joining.
        return spec, dict(
            zip(spec.positional, text.split(maxsplit=len(spec.positional))[1:], strict=False)
        )
    parts = _REASON.split(text, maxsplit=1)
    words = parts[0].split()
    raw: dict[str, Any] = {}
    rest = _join_currency(words[1:])
    if spec.tail and len(rest) > len(spec.positional):
        last = len(spec.positional) - 1
        rest = [*rest[:last], " ".join(rest[last:])]
    if len(rest) > len(spec.positional):
        raise UserError("usage", f"too many arguments: {spec.usage}")
    raw.update(zip(spec.positional, rest, strict=False))
    if len(parts) == 2:
        if "reason" not in spec.args.model_fields:
            raise UserError("usage", f"{name} takes no reason: {spec.usage}")
        raw["reason"] = parts[1].strip()
    return spec, raw


def _join_currency(words: list[str]) -> list[str]:
    """`12.50 EUR` typed as two words is one amount. Only an ISO 4217 code (any case) or
    three capitals join the number before it: `2026-11 csv` stays two words."""
    joined: list[str] = []
    for word in words:
        currency = _CURRENCY.match(word) and (word.upper() in DIGITS or word.isupper())
        if joined and currency and _NUMBER.match(joined[-1]):
            joined[-1] = f"{joined[-1]} {word}"
        else:
            joined.append(word)
    return joined


async def dispatch(ctx: Context, line: str) -> Reply:
    """Parse one line of text and run it; every failure becomes a one-line error reply."""
    try:
        spec, raw = parse(line)
    except UserError as exc:
        log.info("%s: %s", ctx.actor.key, exc.message)
        # Counted as `unparsed`: the words typed are never a label.
        metrics.command_done(ctx.channel.platform, "unparsed", exc.code, None)
        return fail(exc.code, exc.message)
    return await run(ctx, spec, raw)


def fail(code: str, message: str) -> Reply:
    """A refusal as one line of bounded length, whatever the message quotes."""
    line = " ".join(message.split())
    if len(line) > ERROR_CHARS:
        line = line[: ERROR_CHARS - 1] + "…"
    return Reply.fail(code, line)


async def run(ctx: Context, spec: Command, raw: dict[str, Any] | BaseModel) -> Reply:
    """Check the role, validate the arguments, run the command (counted per door and command)."""
    started = time.perf_counter()
    with logs.bound(request_id=logs.current("request_id") or logs.new_id()):
        reply = await _run(ctx, spec, raw)
    outcome = "ok" if reply.error is None else reply.error.code
    metrics.command_done(ctx.channel.platform, spec.name, outcome, time.perf_counter() - started)
    return reply


async def _run(ctx: Context, spec: Command, raw: dict[str, Any] | BaseModel) -> Reply:
    if not spec.allowed(ctx.actor):
        needed = " or ".join(sorted(r.value for r in spec.roles))
        log.warning("%s may not run %s", ctx.actor.key, spec.name)
        why = f"{spec.name} needs the {needed} role"
        if ctx.actor.has(Role.viewer):
            why += ": you are read-only staff and may only look up billing"
        return Reply.fail("forbidden", why)
    try:
        args = raw if isinstance(raw, spec.args) else spec.args.model_validate(raw)
    except ValidationError as exc:
        message = describe_arguments(spec, exc)
        log.info("%s: %s", ctx.actor.key, message)
        return fail("invalid_arguments", message)
    except Exception as exc:
        # A validator that raised something other than a validation error (OverflowError
        # from a date, RecursionError...): still the arguments' fault, still one line.
        log.warning("%s: %s arguments unreadable", ctx.actor.key, spec.name, exc_info=True)
        return fail(
            "invalid_arguments",
            f"{spec.name}: arguments out of range or unreadable ({echo(exc)}): {spec.usage}",
        )
    try:
        reply = await spec.handler(ctx, args)
    except UserError as exc:
        log.info("%s: %s: %s", ctx.actor.key, spec.name, exc.message)
        return fail(exc.code, exc.message)
    except Exception:
        incident = secrets.token_hex(4)
        # `incident` marks the record as told to the user: the terminal shows no traceback.
        log.exception(
            "command %s failed (incident %s)", spec.name, incident, extra={"incident": incident}
        )
        return Reply.fail(
            "internal",
            f"{spec.name} failed on our side (incident {incident}); check `approvals` before trying again",
        )
    if spec.private:
        reply.ephemeral = True  # a customer's own billing is for their eyes only, anywhere
    elif ctx.channel.kind != ChannelKind.internal and not ctx.actor.has(Role.customer):
        reply.ephemeral = True  # agent answers never land publicly outside internal channels
    return reply


def describe_arguments(spec: Command, error: ValidationError) -> str:
    """The first problem, in words a person typing the command understands."""
    problem = error.errors()[0]
    field = ".".join(str(p) for p in problem["loc"])
    if problem["type"] == "missing":
        return f"{spec.name}: {field} is required: {spec.usage}"
    if problem["type"] == "string_pattern_mismatch":
        return f"{spec.name}: {field} {echo(problem['input'])} is malformed: {spec.usage}"
    if problem["type"] == "extra_forbidden":
        return f"{spec.name}: unexpected {echo(field)}: {spec.usage}"
    message = str(problem["msg"]).removeprefix("Value error, ")
    # A whole-model check (loc empty) names its field in its own message.
    return f"{spec.name}: {field}: {message}" if field else f"{spec.name}: {message}"
