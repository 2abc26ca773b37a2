"""`chargedesk`: init | shell | demo | import | audit | db | sync | recover | serve | slack | discord | worker."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library up here: `chargedesk --help` and a mistyped command answer from
# argparse alone; the settings, stores and wiring are imported once a command is chosen.
if TYPE_CHECKING:
    from bot.services import Services
    from bot.settings import Settings
    from bot.store.db import Database


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chargedesk", description="Billing support from chat, across payment gateways."
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    shell = sub.add_parser(
        "shell", help="the bot in your terminal (or one command per line on stdin)"
    )
    shell.add_argument(
        "--demo",
        action="store_true",
        help="a fresh temporary workspace loaded with the demo dataset",
    )
    shell.add_argument(
        "--as",
        dest="identity",
        default="agent:alex",
        metavar="ROLE:NAME",
        help="who is typing (default agent:alex)",
    )
    shell.add_argument(
        "--json", action="store_true", help="print each reply as one JSON object per line"
    )
    shell.add_argument(
        "--files-dir",
        type=Path,
        metavar="DIR",
        help="where files that come with replies (PDFs) are saved (default: DATA_DIR/files; "
        "with --demo the workspace, files included, is removed on exit)",
    )

    sub.add_parser("demo", help="load the demo dataset into the configured ledger")

    init = sub.add_parser(
        "init",
        help="write commented starting configuration files (chargedesk.toml, branding.toml, "
        "tax.toml, policy.toml); never overwrites",
        description="Write commented starting files, valid as written, into DIR. Nothing is "
        "written if any of them exists. Documents are refused until branding.toml names the "
        "seller (legal_name and country); the command lists what to edit next.",
    )
    init.add_argument(
        "dir",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="folder to write (default: $CHARGEDESK_CONFIG_DIR if set, else <data dir>/config, "
        "the data dir being $CHARGEDESK_DATA_DIR or .chargedesk)",
    )

    imp = sub.add_parser("import", help="import ledger data from a JSON or CSV file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--kind", choices=["customers", "charges", "refunds", "subscriptions", "invoices", "disputes"],
                     help="object type of a CSV file (default: from its name)")  # fmt: skip
    imp.add_argument("--no-documents", action="store_true",
                     help="history: no receipts or credit notes for the payments and refunds it adds")  # fmt: skip

    audit = sub.add_parser("audit", help="verify or export the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="walk the hash chain; non-zero exit names the first broken entry"
    )
    verify.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="also hold the chain against the signed checkpoints in FILE: finds "
                        "history rewritten with recomputed hashes, and removed entries")  # fmt: skip
    verify.add_argument("--key-file", type=Path, metavar="FILE",
                        help="the checkpoint key (default: the audit.checkpoint_key settings)")  # fmt: skip
    checkpoint = audit_sub.add_parser(
        "checkpoint", help="sign the chain head now and append it to the checkpoint file"
    )
    checkpoint.add_argument("--file", type=Path, metavar="FILE",
                            help="where to append (default: audit.checkpoint_file)")  # fmt: skip
    checkpoint.add_argument("--key-file", type=Path, metavar="FILE",
                            help="the checkpoint key (default: the audit.checkpoint_key settings)")  # fmt: skip
    export = audit_sub.add_parser("export", help="write the log as CSV or JSON Lines")
    export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply Alembic migrations up to the newest")
    cur = db_sub.add_parser(
        "currencies",
        help="list currencies whose stored digits differ from ISO 4217; keep or convert one",
    )
    decide = cur.add_mutually_exclusive_group()
    decide.add_argument("--keep", metavar="CODE",
                        help="the stored amounts already use the ISO digits: record them as they are")  # fmt: skip
    decide.add_argument("--convert", metavar="CODE",
                        help="rescale the stored ledger and approval amounts to the ISO digits")  # fmt: skip

    sync = sub.add_parser(
        "sync",
        help="mirror the gateways' customers, charges, refunds, invoices, subscriptions and "
        "disputes into the billing index (resumes where the last sync stopped)",
    )
    sync.add_argument("gateways", nargs="*", metavar="GATEWAY", help="default: every one")
    sync.add_argument(
        "--since", metavar="YYYY-MM-DD", type=_day,
        help="start afresh from objects created on or after this day",
    )  # fmt: skip
    sync.add_argument("--status", action="store_true", help="where each sync stands; sync nothing")

    sub.add_parser(
        "recover",
        help="finish approved requests left unfinished (a crash, a busy charge, a Redis outage); "
        "interrupted executions re-run with their original idempotency keys",
    )

    serve = sub.add_parser(
        "serve",
        help="the web app: health, gateway webhooks, /slack/events when Slack is configured",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    run = sub.add_parser(
        "run", help="everything in one process: the web app, plus the Discord bot when configured"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)

    slack = sub.add_parser(
        "slack", help="the Slack app: over HTTP at /slack/events, or --socket for Socket Mode"
    )
    slack.add_argument(
        "--socket",
        action="store_true",
        help="connect out over Socket Mode with CHARGEDESK_SLACK__APP_TOKEN (no public URL needed)",
    )
    slack.add_argument("--host", default="127.0.0.1")
    slack.add_argument("--port", type=int, default=8000)

    sub.add_parser(
        "discord",
        help="the Discord bot: /billing over the gateway connection (syncs commands on start)",
    )

    sub.add_parser(
        "worker",
        help="the job worker: sends queued emails (retrying failures) and other background jobs",
    )
    return parser


class _Version(argparse.Action):
    """`--version`: the installed distribution's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("chargedesk-bot")
        except PackageNotFoundError:  # a checkout that was never installed
            found = "unknown (not installed)"
        print(f"chargedesk {found}")
        parser.exit()


def _day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write YYYY-MM-DD") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bot.errors import UserError
    from bot.settings import ConfigError, load_settings
    from bot.store.db import DatabaseUnavailable
    from bot.store.redis import RedisUnavailable

    try:
        if args.command == "init":  # before any setting is read: there may be none yet
            return _init(args.dir)
        settings = load_settings(**_overrides(args))
        _logging(settings, args.command)
        _announce_config(settings)
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "slack":
            return _slack(settings, args)
        if args.command == "discord":
            return _discord(settings)
        return asyncio.run(_COMMANDS[args.command](settings, args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except (UserError, RedisUnavailable, DatabaseUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "demo", False):
        from bot.demo import CONFIG_DIR as DEMO_CONFIG_DIR
        from bot.settings import pin_config_folder

        # The packaged demo configuration, not whatever folder is found: the demo
        # shows the same seller, tax and policy wherever and however it is installed.
        pin_config_folder(DEMO_CONFIG_DIR, "the demo configuration")
        workspace = Path(tempfile.mkdtemp(prefix="chargedesk-demo-"))
        return {"data_dir": workspace, "database_url": None, "redis_url": None}
    return {}


def _init(folder: Path | None) -> int:
    """`chargedesk init [DIR]`: write the starting files and say what to edit next."""
    from bot.settings import (
        CONFIG_DIR_ENV,
        DATA_DIR_ENV,
        ConfigError,
        config_folder,
        default_config_dir,
        forget_config_folder,
    )
    from bot.starter import NEXT_STEPS, write_starting_files

    target = (folder or default_config_dir()).absolute()
    written = write_starting_files(target)
    print(f"wrote {', '.join(p.name for p in written)} to {target}")
    print("edit next:")
    for number, step in enumerate(NEXT_STEPS, 1):
        print(f"  {number}. {step}")
    forget_config_folder()
    try:
        found = config_folder().path
    except ConfigError:
        found = None
    if found is None or found.resolve() != target.resolve():
        print(f"the bot looks elsewhere from here: set {CONFIG_DIR_ENV}={target}")
    elif config_folder().origin != CONFIG_DIR_ENV and not os.environ.get(DATA_DIR_ENV):
        # The default data dir is relative: another directory has another .chargedesk.
        print(f"the bot reads it when started in {Path.cwd()}, or anywhere with "
              f"{DATA_DIR_ENV}={target.parent}")  # fmt: skip
    return 0


def _announce_config(settings: Settings) -> None:
    """Log the configuration folder in use, or warn that there is none."""
    from bot.settings import CONFIG_DIR_ENV, ConfigError, config_folder, default_config_dir

    log = logging.getLogger("bot.config")
    folder = config_folder()
    if folder.path is None:
        log.warning(
            "%s; `chargedesk init` writes one to %s", folder.describe(), default_config_dir()
        )
    else:
        log.info("%s", folder.describe())
    try:
        from bot.documents.config import load_branding, seller_warnings

        for warning in seller_warnings(load_branding()):
            log.warning("%s", warning)
    except ConfigError:
        pass  # a bad branding.toml stops the commands that read it, with its own message
    # data_dir in chargedesk.toml moves the data, not the folder that file was read from.
    beside_data = (Path(settings.data_dir) / "config").absolute()
    moved = folder.path not in (None, beside_data) and folder.origin != CONFIG_DIR_ENV
    if moved and beside_data.is_dir():
        log.warning(
            "data_dir is %s, but configuration is read from %s: set CHARGEDESK_DATA_DIR "
            "(not data_dir in chargedesk.toml) to use %s",
            settings.data_dir, folder.path, beside_data,
        )  # fmt: skip


def _config_warnings(services: Services) -> list[str]:
    """What the configuration leaves to placeholders, for the shell to say at start."""
    from bot.documents.config import seller_warnings
    from bot.settings import config_folder, default_config_dir

    warnings = []
    if config_folder().path is None:
        warnings.append(
            f"no configuration folder, built-in defaults (every action needs a manager, "
            f"no tax); `chargedesk init` writes one to {default_config_dir()}"
        )
    return warnings + seller_warnings(services.branding)


# Long-running processes log to stdout (JSON lines off a terminal, for a log collector);
# the other commands keep stdout for what they print, and say on stderr only what went
# wrong (warnings and errors; the file keeps the rest), so a script sees one error line.
_SERVICES = frozenset({"serve", "run", "slack", "discord", "worker"})


def _logging(settings: Settings, command: str) -> None:
    from bot import logs
    from bot.portal import redact  # billing-page links are keys: none reaches a log

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    console = None
    if command == "shell":  # one line per error on the terminal, tracebacks only in the file
        from bot.chat.shell.adapter import terminal_log_handler

        console = terminal_log_handler(logs.log_file(settings))
    service = command in _SERVICES
    stream = sys.stdout if service else sys.stderr
    level = logging.INFO if service else logging.WARNING
    handlers = logs.configure(settings, stream=stream, console=console, level=level)
    redact.install(handlers, redact.UVICORN_LOGGERS)


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[int]]) -> int:
    from bot.wiring import open_services

    services = await open_services(settings)
    try:
        return await work(services)
    finally:
        await services.close()


async def _shell(settings: Settings, args: argparse.Namespace) -> int:
    from bot.actors import SYSTEM
    from bot.approvals.executor import recover
    from bot.approvals.workflow import expire_due
    from bot.chat.shell.adapter import Shell, parse_identity
    from bot.demo.dataset import load_demo
    from bot.jobs import background_worker
    from bot.settings import config_folder

    actor = parse_identity(args.identity)

    async def work(services: Services) -> int:
        if args.demo:
            await load_demo(services.db)
        await expire_due(services, SYSTEM)
        await recover(services)
        shell = Shell(services, actor, json_lines=args.json, files_dir=args.files_dir)
        warnings = _config_warnings(services)
        if sys.stdin.isatty() and not args.json:
            shell.console.print(f"[bold]ChargeDesk[/] shell on {settings.sql_url.split('///')[0]} · type [bold]help[/], "
                                "[bold]/as manager:maria[/] to switch user, Ctrl-D to leave")  # fmt: skip
            shell.console.print(config_folder().describe(), style="dim", markup=False)
            for warning in warnings:
                shell.console.print(f"warning: {warning}", style="yellow", markup=False)
        else:  # stdout is for replies; a script's log still says what is missing
            for warning in warnings:
                print(f"warning: {warning}", file=sys.stderr)
        async with background_worker(services):
            return await shell.run(sys.stdin, Path(settings.data_dir) / "shell_history")

    try:
        return await _with_services(settings, work)
    finally:
        if args.demo:  # the demo workspace is temporary by promise
            shutil.rmtree(settings.data_dir, ignore_errors=True)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.demo.dataset import load_demo

    async def work(services: Services) -> int:
        print(await load_demo(services.db))
        return 0

    return await _with_services(settings, work)


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.documents.automatic import import_recorder, start_imported
    from bot.gateways.ledger.importer import LedgerImportError, NewMoney, import_file

    async def work(services: Services) -> int:
        added: list[NewMoney] = []
        record = import_recorder(services)

        async def on_write(session: Any, new: NewMoney) -> None:
            await record(session, new)
            added.append(new)

        try:
            print(await import_file(services.db, args.file, kind=args.kind,
                                    on_write=None if args.no_documents else on_write))  # fmt: skip
        except LedgerImportError as exc:
            # One problem is one line (a script greps it); several are listed under a header.
            single = len(exc.problems) == 1
            print(f"nothing imported: {exc.problems[0]}" if single else f"nothing imported:\n{exc}",
                  file=sys.stderr)  # fmt: skip
            return 1
        for new in added:
            await start_imported(services, new)
        return 0

    return await _with_services(settings, work)


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from bot.audit.log import export
    from bot.store.db import Database

    db = Database(settings.sql_url)
    try:
        await db.migrate()
        if args.audit_command in ("verify", "checkpoint"):
            return await _audit_checkpoints(settings, db, args)
        if args.output:
            with args.output.open("w", newline="", encoding="utf-8") as out:
                count = await export(db, args.format, out)
            print(f"exported {count} entries to {args.output}", file=sys.stderr)
        else:
            await export(db, args.format, sys.stdout)
        return 0
    finally:
        await db.close()


async def _audit_checkpoints(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    """`audit verify [--checkpoint FILE]` and `audit checkpoint`: exit 1 when the log is not
    what was written (or signed), 2 when the key or file cannot be used."""
    from bot.audit import checkpoint
    from bot.audit.log import verify

    if args.audit_command == "verify" and args.checkpoint is None:
        result = await verify(db)
        if result.ok:
            print(
                f"audit log intact: {result.entries} entries (hash chain only: "
                "add --checkpoint FILE to catch a rewrite with recomputed hashes)"
            )
            return 0
        print(
            f"audit log BROKEN at entry {result.first_bad_seq}: {result.problem}", file=sys.stderr
        )
        return 1
    try:
        key = checkpoint.configured_key(settings, args.key_file)
        if args.audit_command == "checkpoint":
            path = args.file or settings.audit.checkpoint_file
            if path is None:
                raise checkpoint.CheckpointError(
                    "no file: pass --file or set audit.checkpoint_file"
                )
            print((await checkpoint.write(db, key, path)).line())
            return 0
        # Read first: every checkpoint is then older than the walk that checks it.
        checkpoints = checkpoint.read(args.checkpoint, key)
    except checkpoint.ForgedCheckpoint as exc:
        print(f"audit checkpoints REFUSED: {exc}", file=sys.stderr)
        return 1
    except checkpoint.CheckpointError as exc:
        print(f"audit checkpoints unusable: {exc}", file=sys.stderr)
        return 2
    result = await checkpoint.verify_with_checkpoints(db, checkpoints)
    if not result.ok:
        if result.first_bad_seq is None:
            print(f"audit log NOT VERIFIED: {result.problem}", file=sys.stderr)
        else:
            print(
                f"audit log BROKEN at entry {result.first_bad_seq}: {result.problem}",
                file=sys.stderr,
            )
        return 1
    newest = max(checkpoints, key=lambda c: c.seq)
    print(
        f"audit log intact: {result.entries} entries, matching {len(checkpoints)} signed "
        f"checkpoint(s); the newest covers entry {newest.seq} ({newest.at}), "
        f"{result.entries - newest.seq} newer entries are covered by the chain only"
    )
    return 0


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.db import Database

    db = Database(settings.sql_url)
    try:
        await db.migrate()
        if args.db_command == "currencies":
            return await _currencies(db, args)
        print("database schema is up to date")
        return 0
    finally:
        await db.close()


async def _currencies(db: Database, args: argparse.Namespace) -> int:
    """List, keep or convert currencies whose stored digits differ from ISO 4217."""
    from bot import currency_digits
    from bot.actors import Actor, Role

    operator = getpass.getuser()
    actor = Actor(platform="cli", id=operator, name=operator, roles=frozenset({Role.admin}))
    if args.keep:
        change = await currency_digits.keep(db, args.keep, actor)
        print(
            f"{change.currency}: stored amounts kept; read with {change.iso} digit(s) from now on"
        )
        return 0
    if args.convert:
        change, rows = await currency_digits.convert(db, args.convert, actor)
        print(
            f"{change.currency}: {rows} row(s) rescaled from {change.stored} to {change.iso} digit(s)"
        )
        return 0
    changes = await currency_digits.pending_changes(db)
    for change, in_use in changes:
        state = "stored amounts use it: decide with --keep or --convert" if in_use else "unused"
        print(f"{change.explain()} [{state}]")
    if not changes:
        print(f"every recorded currency has its digits from {currency_digits.ISO_SOURCE}")
    return 1 if any(in_use for _, in_use in changes) else 0


async def _recover(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bot.approvals.executor import recover

    async def work(services: Services) -> int:
        for view in await recover(services, older_than=timedelta(0)):
            print(f"{view.id}: {view.state.value}")
        return 0

    return await _with_services(settings, work)


async def _sync(settings: Settings, args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from bot.index.sync import cursors, sync_all

    async def work(services: Services) -> int:
        if args.status:
            for c in await cursors(services):
                state = "complete" if c.done else "resumes at its cursor"
                print(
                    f"{c.gateway} {c.kind}: {c.synced:,} written, {state}, {c.updated:%Y-%m-%d %H:%M} UTC"
                )
            return 0
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(gateway: str, kind: str, written: int) -> None:
                key = f"{gateway} {kind}"
                if key not in tasks:
                    tasks[key] = bar.add_task(key)
                bar.update(tasks[key], description=f"{key}: {written:,}")

            results = await sync_all(services, args.gateways, since=args.since, progress=progress)
        for result in results:
            if result.skipped:
                print(f"{result.gateway}: {result.skipped}")
            else:
                counts = ", ".join(
                    f"{n:,} {k}{'' if n == 1 else 's'}" for k, n in result.written.items() if n
                )
                print(f"{result.gateway}: {counts or 'nothing new'}")
        return 0

    return await _with_services(settings, work)


async def _stores_answer(settings: Settings) -> None:
    """Raise DatabaseUnavailable or RedisUnavailable unless the configured servers answer."""
    from bot.store import redis as redis_store
    from bot.store.db import Database

    db = Database(settings.sql_url)
    try:
        await db.ping()
    finally:
        await db.close()
    if settings.redis_url is not None:  # the embedded engine is started by the app itself
        client, _ = await redis_store.connect(settings.redis_url, Path(settings.data_dir))
        await client.aclose()


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from bot.web import create_app

    stopping = _exit_zero_on_sigterm()
    # uvicorn reports a store that fails at startup as a traceback: ask the servers first.
    asyncio.run(_stores_answer(settings))
    if stopping:  # SIGTERM while the stores were asked: nothing was served
        return 0
    # On SIGTERM uvicorn stops listening, lets requests under way finish (at most
    # shutdown_seconds), then runs the app's shutdown: jobs drained, gateways and pools closed.
    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level="info",
        log_config=None,  # its records go through our handlers (format, redaction)
        timeout_graceful_shutdown=int(settings.shutdown_seconds),
    )  # fmt: skip
    return 0


def _exit_zero_on_sigterm() -> list[int]:
    """SIGTERM is how a supervisor stops a server: a clean stop exits 0, not -15.

    uvicorn handles SIGTERM while it serves, then raises it again once stopped (so a process
    killed by it looks killed); the handler set here receives that second one, and notes
    it instead of dying. The list returned holds the signals received outside uvicorn.
    """
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    return received


def _slack(settings: Settings, args: argparse.Namespace) -> int:
    from bot.settings import ConfigError

    if settings.slack.bot_token is None:
        raise ConfigError("slack.bot_token: required (CHARGEDESK_SLACK__BOT_TOKEN=xoxb-...)")
    if args.socket:
        if settings.slack.app_token is None:
            raise ConfigError(
                "slack.app_token: required for --socket (CHARGEDESK_SLACK__APP_TOKEN=xapp-..., "
                "an app-level token with the connections:write scope)"
            )
        from bot.chat.runners import run_socket_mode

        asyncio.run(run_socket_mode(settings))
        return 0
    if settings.slack.signing_secret is None:
        raise ConfigError(
            "slack.signing_secret: required over HTTP (CHARGEDESK_SLACK__SIGNING_SECRET), "
            "or use --socket"
        )
    return _serve(settings, args)


def _discord(settings: Settings) -> int:
    from bot.settings import ConfigError

    if settings.discord.token is None:
        raise ConfigError("discord.token: required (CHARGEDESK_DISCORD__TOKEN=<bot token>)")
    from bot.chat.runners import run_discord

    asyncio.run(run_discord(settings))
    return 0


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    """One process, one set of services (one embedded Redis engine): the small-team deployment."""
    import uvicorn

    from bot.jobs import background_worker
    from bot.web import create_app

    async def work(services: Services) -> int:
        config = uvicorn.Config(
            create_app(settings, services), host=args.host, port=args.port,
            log_config=None, timeout_graceful_shutdown=int(settings.shutdown_seconds),
        )  # fmt: skip
        server = uvicorn.Server(config)
        parts = [server.serve()]
        bot = None
        if settings.discord.token is not None:
            from bot.chat.discord.adapter import DiscordBot

            bot = DiscordBot(settings.discord, services)
            parts.append(bot.start(settings.discord.token.get_secret_value()))
        try:
            async with background_worker(services):
                await asyncio.gather(*parts)
        finally:
            if bot is not None:
                await bot.close()
        return 0

    return await _with_services(settings, work)


async def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from bot.jobs import keep_working, queue_name
    from bot.mail.transport import describe
    from bot.settings import ConfigError

    try:
        mail = describe(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def work(services: Services) -> int:
        logging.getLogger(__name__).info(
            "worker on Redis queue %s; emails %s", queue_name(settings), mail
        )
        # Outlives Redis outages: reconnects with backoff, then its sweeps catch up.
        task = asyncio.create_task(keep_working(services))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Stop cleanly: jobs cut short go back to the queue, services close.
            loop.add_signal_handler(signum, task.cancel)
        await asyncio.wait([task])
        if not task.cancelled():
            task.result()
        return 0

    return await _with_services(settings, work)


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Awaitable[int]]] = {
    "run": _run,
    "shell": _shell,
    "demo": _demo,
    "import": _import,
    "audit": _audit,
    "db": _db,
    "recover": _recover,
    "sync": _sync,
    "worker": _worker,
}
