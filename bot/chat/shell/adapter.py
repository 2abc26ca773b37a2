"""The terminal shell: the bot in a terminal, or fed one command per line on stdin.

A door like Slack's or Discord's (`bot.doors.base.Door`): it turns a line into
(actor, channel, command), calls the core, and draws the reply. No billing logic
here. A terminal has no approvals channel and no message to edit later: a
request waiting for a manager is shown once, and `approvals` lists it again.
Files that come with a reply (PDFs) are saved in a folder and shown by path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.text import Text

from bot.actors import Actor, Channel, ChannelKind, Role
from bot.approvals.workflow import ApprovalView
from bot.cards.model import Attachment, Card, ErrorInfo, Reply, Section
from bot.chat.shell.render import render, to_json
from bot.commands import Context
from bot.doors.base import Copy, Door
from bot.errors import UserError
from bot.services import Services

CHANNEL = Channel(platform="shell", id="terminal", kind=ChannelKind.internal)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
log = logging.getLogger(__name__)


class _TerminalLines(logging.Formatter):
    """One line per record on the terminal; tracebacks go only to the log file."""

    def __init__(self, log_file: Path | None) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.where = f" (details in {log_file})" if log_file is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        line = " ".join(record.getMessage().split())
        more = self.where if record.exc_info or record.stack_info else ""
        return f"{record.levelname.lower()}: {line}{more}"


def _not_told(record: logging.LogRecord) -> bool:
    # An incident was already answered on the terminal, with its number: once is enough.
    return not hasattr(record, "incident")


def terminal_log_handler(log_file: Path | None, stream: TextIO | None = None) -> logging.Handler:
    """The shell's stderr logging: errors only, one line each, no traceback, no incident twice."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(_TerminalLines(log_file))
    handler.addFilter(_not_told)
    return handler


def parse_identity(text: str) -> Actor:
    """`manager:maria` -> Actor maria with the manager role (and the roles it implies)."""
    role, sep, name = text.partition(":")
    if not sep or not name.strip():
        raise UserError("usage", f"{text!r}: write ROLE:NAME, e.g. agent:alex or manager:maria")
    try:
        parsed = Role(role.strip().lower())
    except ValueError:
        raise UserError(
            "usage", f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}"
        ) from None
    name = name.strip()
    return Actor(platform="shell", id=name, name=name, roles=frozenset({parsed}))


def save_file(folder: Path, file: Attachment) -> Path:
    """Write `file` into `folder` under its own name; a different file already there is kept.

    The same bytes asked for again reuse the existing file; other bytes under
    that name get `-1`, `-2`, ... before the suffix. Only the last part of the
    name counts, so a name can never point outside `folder`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = _UNSAFE.sub("_", Path(file.name).name).lstrip(".") or "file"
    stem, suffix = Path(name).stem or "file", Path(name).suffix
    for n in range(1000):
        path = folder / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            with path.open("xb") as out:  # exclusive: never replaces what is there
                out.write(file.content)
            return path
        except FileExistsError:
            if path.is_file() and path.read_bytes() == file.content:
                return path
    raise UserError("file_exists", f"too many files named like {name} in {folder}")


class Shell(Door[None]):
    """The terminal door: one person at a time (`/as ROLE:NAME`), one internal channel."""

    platform = "shell"

    def __init__(
        self,
        services: Services,
        actor: Actor,
        *,
        json_lines: bool,
        out: TextIO | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self.attach(services)
        self.actor = actor
        self.json_lines = json_lines
        self.out = out or sys.stdout
        self.console = Console(file=self.out, highlight=False, soft_wrap=False)
        self.files_dir = files_dir or Path(services.settings.data_dir) / "files"

    def prompt(self) -> str:
        return f"chargedesk ({self.actor.key.removeprefix('shell:')} · {'/'.join(sorted(r.value for r in self.actor.roles))})> "

    async def handle(self, line: str) -> Reply | None:
        """One line in, one reply out; `/as ROLE:NAME` switches who is typing."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        if line.startswith("/"):
            return self._meta(line)
        return await self.run_line(self.context(self.actor, CHANNEL.id, CHANNEL.kind), line)

    # What the door base leaves to a door: a terminal has none of it, or draws it as it comes.

    def role_entries(self) -> dict[Role, list[str]]:
        return {}  # the ROLE:NAME identity names the role itself (`parse_identity`)

    @property
    def approvals_channel(self) -> str | None:
        return None

    async def send_private(self, where: None, text: str) -> None:
        self.show(Reply.fail("refused", text))  # a terminal is private

    async def post_beside(self, ctx: Context, reply: Reply, where: None) -> Copy | None:
        return None  # the reply itself shows the request, once

    async def post_to_approvals(
        self, ctx: Context, reply: Reply, where: None, channel: str
    ) -> Copy | None:
        return None

    async def say_where_decided(
        self, ctx: Context, reply: Reply, where: None, channel: str | None
    ) -> None:
        pass  # the request's own card says a manager decides

    async def redraw(self, copy: Copy, view: ApprovalView) -> None:
        pass  # nothing posted, nothing to edit

    async def tell_requester(self, home: Copy, user: str, view: ApprovalView) -> None:
        pass

    async def alert_place(self, channel: str) -> bool:
        return False  # alerts wait in `/billing alerts`

    async def post_alert(self, channel: str, card: Card) -> Copy | None:
        return None

    def _meta(self, line: str) -> Reply:
        word, _, rest = line.partition(" ")
        if word == "/as":
            try:
                self.actor = parse_identity(rest)
            except UserError as exc:
                return Reply.fail(exc.code, exc.message)
            roles = ", ".join(sorted(r.value for r in self.actor.roles))
            return Reply(
                cards=[
                    Card(
                        title=f"You are now {self.actor.name}",
                        sections=[Section(text=f"roles: {roles}")],
                    )
                ]
            )
        if word == "/whoami":
            return Reply(cards=[Card(title=self.actor.label())])
        return Reply.fail(
            "unknown_command", f"unknown shell command {word}: /as ROLE:NAME, /whoami, /quit"
        )

    def show(self, reply: Reply) -> bool:
        """Draw the reply, its files saved under `files_dir` and shown by path; False if it failed."""
        saved: list[Path | None] = []
        problems: list[str] = []
        for file in reply.files:
            try:
                saved.append(save_file(self.files_dir, file))
            except (OSError, UserError) as exc:
                saved.append(None)
                problems.append(f"{file.name} not saved: {exc}")
        if problems and reply.error is None:
            failure = ErrorInfo(code="file_not_saved", message="; ".join(problems))
            reply = reply.model_copy(update={"error": failure})
        if self.json_lines:
            self.out.write(to_json(reply, saved=saved) + "\n")
            self.out.flush()
        else:
            render(reply, self.console)
            for file, path in zip(reply.files, saved, strict=True):
                if path is not None:
                    self.console.print(Text(f"📎 {path} ({_size(file.size)})", style="bold"))
        return reply.error is None

    async def run(self, stdin: TextIO, history: Path | None) -> int:
        """Read until end of input or /quit. Fed from a pipe, exit 1 if any command failed."""
        interactive = stdin.isatty()
        read = _interactive_reader(self, history) if interactive else stdin.readline
        failed = False
        while True:
            line = await asyncio.to_thread(read)
            if line is None or line == "" or line.strip() in ("/quit", "/exit"):
                return 1 if failed and not interactive else 0
            try:
                reply = await self.handle(line)
                if reply is not None:
                    failed = not self.show(reply) or failed
            except Exception:
                # Whatever broke, the shell stays up: one line here, the traceback in the log.
                incident = secrets.token_hex(4)
                log.exception(
                    "shell line failed (incident %s)", incident, extra={"incident": incident}
                )
                self.show(Reply.fail("internal", f"that failed on our side (incident {incident})"))
                failed = True


def _size(size: int) -> str:
    return f"{size:,} bytes" if size < 10_000 else f"{size / 1024:,.0f} KiB"


def _interactive_reader(shell: Shell, history: Path | None) -> Callable[[], str | None]:
    import readline  # line editing and history on a terminal only

    if history is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
        readline.set_history_length(1000)

    def read() -> str | None:
        try:
            line = input(shell.prompt())
        except EOFError:
            return None
        if history is not None:
            readline.write_history_file(history)
        return line + "\n"

    return read
