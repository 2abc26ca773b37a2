"""Signed checkpoints of the audit chain, kept outside the database.

The hash chain finds a row changed by someone who did not recompute the hashes.
Someone who can write the database can recompute them all, and the head row,
after changing an amount or dropping the last entries. A checkpoint is a signed
line, `{"seq": N, "hash": <hash of entry N>, "at": ..., "sig": ...}`, appended to a
file outside the store with a key that is not in it; `verify_with_checkpoints`
holds the chain against every line: each checkpointed entry must still have the
hash that was signed, and the log must be at least as long as the longest one.

Signatures are HMAC-SHA256 (the standard library: no new dependency). Whoever
holds the key can verify and could sign, so it stays with the bot and the
auditors, never in the database or data_dir. `alg` is in every line so a
public-key signature (Ed25519) can follow without breaking old files.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import select

from bot.audit.log import GENESIS, HEAD_ID, Verification, verify
from bot.job_schedule import periodic
from bot.settings import ConfigError, Settings
from bot.store.db import Database
from bot.store.tables import AuditEntry, AuditHead

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

VERSION = 1
ALGORITHM = "hmac-sha256"
# Domain separation: a checkpoint signature can never be another message's MAC.
_DOMAIN = b"chargedesk audit checkpoint\n"
_SIGNED = ("v", "alg", "key_id", "seq", "hash", "at")
MIN_KEY = 32
SHUTDOWN_TIMEOUT = 10.0


class CheckpointError(Exception):
    """A checkpoint file or key that cannot be used; the message says which line or setting."""


class ForgedCheckpoint(CheckpointError):
    """A line the key did not sign: the checkpoint file was tampered with."""


class CheckpointKey:
    """The HMAC key checkpoints are signed and verified with."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY:
            raise CheckpointError(f"the checkpoint key must be at least {MIN_KEY} bytes")
        self._secret = secret

    @classmethod
    def from_file(cls, path: Path) -> CheckpointKey:
        try:
            return cls(path.read_bytes().strip())
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint key {path}: {exc}") from None

    @property
    def key_id(self) -> str:
        """Names the key without revealing it (rotation: which key signed a line)."""
        return hmac.new(self._secret, b"key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, body: dict[str, Any]) -> str:
        canonical = json.dumps(
            {k: body[k] for k in _SIGNED}, sort_keys=True, separators=(",", ":")
        ).encode()
        return hmac.new(self._secret, _DOMAIN + canonical, hashlib.sha256).hexdigest()

    def valid(self, body: dict[str, Any], signature: str) -> bool:
        return hmac.compare_digest(self.sign(body), signature)


@dataclass(frozen=True)
class Checkpoint:
    """At `at`, the log held `seq` entries and entry `seq` had hash `hash` (seq 0: empty)."""

    seq: int
    hash: str
    at: str
    key_id: str
    sig: str
    line_no: int = 0

    def line(self) -> str:
        body = {"v": VERSION, "alg": ALGORITHM, "key_id": self.key_id, "seq": self.seq}
        body |= {"hash": self.hash, "at": self.at, "sig": self.sig}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


def configured_key(settings: Settings, key_file: Path | None = None) -> CheckpointKey:
    """The key from `key_file`, else from the settings; a CheckpointError says what to set."""
    audit = settings.audit
    if key_file is not None:
        return CheckpointKey.from_file(key_file)
    if audit.checkpoint_key is not None:
        return CheckpointKey(audit.checkpoint_key.get_secret_value().encode())
    if audit.checkpoint_key_file is not None:
        return CheckpointKey.from_file(audit.checkpoint_key_file)
    raise CheckpointError(
        "no checkpoint key: set CHARGEDESK_AUDIT__CHECKPOINT_KEY or audit.checkpoint_key_file "
        '(32+ characters, e.g. python -c "import secrets; print(secrets.token_urlsafe(48))"), '
        "kept outside the database and data_dir"
    )


def configured(settings: Settings) -> bool:
    """Do the settings ask for scheduled checkpoints (a file and a key)?"""
    audit = settings.audit
    has_key = audit.checkpoint_key is not None or audit.checkpoint_key_file is not None
    return audit.checkpoint_file is not None and has_key


async def take(db: Database, key: CheckpointKey, *, now: datetime | None = None) -> Checkpoint:
    """Sign the chain head as it is now."""
    async with db.read() as session:
        head = await session.get(AuditHead, HEAD_ID)
    seq, digest = (head.seq, head.hash) if head is not None else (0, GENESIS)
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    body = {"v": VERSION, "alg": ALGORITHM, "key_id": key.key_id, "seq": seq}
    body |= {"hash": digest, "at": at}
    return Checkpoint(seq=seq, hash=digest, at=at, key_id=key.key_id, sig=key.sign(body))


def append_line(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line in one write (O_APPEND), so processes writing at once never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def write(
    db: Database, key: CheckpointKey, path: Path, *, now: datetime | None = None
) -> Checkpoint:
    """Take a checkpoint, append it to `path` and to the log (a second copy, shipped elsewhere)."""
    checkpoint = await take(db, key, now=now)
    await asyncio.to_thread(append_line, path, checkpoint)
    log.info("audit checkpoint %s", checkpoint.line())
    return checkpoint


def read(path: Path, key: CheckpointKey) -> list[Checkpoint]:
    """Every checkpoint in the file, each signature checked; a bad line refuses the whole file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            body = json.loads(line)
            checkpoint = Checkpoint(
                seq=int(body["seq"]), hash=str(body["hash"]), at=str(body["at"]),
                key_id=str(body["key_id"]), sig=str(body["sig"]), line_no=number,
            )  # fmt: skip
            if body["v"] != VERSION or body["alg"] != ALGORITHM:
                raise CheckpointError(
                    f"{where}: unknown checkpoint format {body['v']}/{body['alg']}"
                )
        except (ValueError, KeyError, TypeError):
            raise ForgedCheckpoint(f"{where}: not a checkpoint line: refusing this file") from None
        if checkpoint.seq < 0 or not key.valid(body, checkpoint.sig):
            why = (
                "signed with another key"
                if checkpoint.key_id != key.key_id
                else "its signature does not match"
            )
            raise ForgedCheckpoint(
                f"{where}: checkpoint of entry {checkpoint.seq} is forged or altered ({why}): "
                "refusing this file"
            )
        found.append(checkpoint)
    return found


async def verify_with_checkpoints(db: Database, checkpoints: Sequence[Checkpoint]) -> Verification:
    """The chain walk of `verify`, then every checkpoint held against it.

    Read the checkpoints before calling: then none can be newer than the walk.
    """
    result = await verify(db)
    if not result.ok:
        return result
    if not checkpoints:
        return Verification(False, result.entries, "no checkpoint to hold the log against", None)
    last = result.entries
    wanted = sorted({c.seq for c in checkpoints if 0 < c.seq <= last})
    stored = {0: GENESIS}
    async with db.read() as session:
        for start in range(0, len(wanted), 500):
            rows = await session.execute(
                select(AuditEntry.seq, AuditEntry.hash).where(
                    AuditEntry.seq.in_(wanted[start : start + 500])
                )
            )
            stored.update({seq: digest for seq, digest in rows})
    still_good = 0
    for checkpoint in sorted(checkpoints, key=lambda c: (c.seq, c.line_no)):
        if checkpoint.seq > last:
            return Verification(
                False,
                last,
                f"the log ends at entry {last}, but the checkpoint of {checkpoint.at} "
                f"(line {checkpoint.line_no}) signed entry {checkpoint.seq}: entries {last + 1} "
                f"to {checkpoint.seq} were removed",
                last + 1,
            )
        if stored.get(checkpoint.seq) != checkpoint.hash:
            return Verification(
                False,
                last,
                f"entry {checkpoint.seq} is not the entry the checkpoint of {checkpoint.at} "
                f"(line {checkpoint.line_no}) signed: entries {still_good + 1} to "
                f"{checkpoint.seq} were rewritten, their hashes recomputed",
                still_good + 1,
            )
        still_good = checkpoint.seq
    return Verification(True, last)


def due_key(services: Services) -> str:
    return services.key("audit", "checkpoint-due")


@periodic(second=20, run_at_startup=True)
async def audit_checkpoint(ctx: dict[str, Any]) -> str:
    """Every `audit.checkpoint_minutes`, once per deployment: sign the chain head to the file."""
    services: Services = ctx["services"]
    settings = services.settings
    if not configured(settings):
        return "off"
    due = due_key(services)
    try:
        # The job runs every minute; the key makes one run per interval write, in one worker.
        if not await services.redis.set(
            due, "1", nx=True, ex=settings.audit.checkpoint_minutes * 60
        ):
            return "not due"
    except RedisError:
        log.warning("audit checkpoint: Redis unavailable, writing one anyway")
    try:
        await write_configured(services)
    except (CheckpointError, ConfigError, OSError):
        with suppress(RedisError):
            await services.redis.delete(due)  # try again next minute
        log.exception("audit checkpoint not written")
        return "failed"
    return "written"


async def write_configured(services: Services) -> Checkpoint:
    """Check the log against the newest checkpoint (an alarm in the log if it no longer
    matches), then write the next one."""
    settings = services.settings
    path = settings.audit.checkpoint_file
    if path is None:
        raise CheckpointError("no checkpoint file: set audit.checkpoint_file (outside data_dir)")
    key = configured_key(settings)
    problem = await still_matches_last(services.db, path, key)
    if problem is not None:
        log.error("AUDIT LOG TAMPERING: %s; run `chargedesk audit verify --checkpoint`", problem)
    return await write(services.db, key, path)


TAIL_BYTES = 4096


async def still_matches_last(db: Database, path: Path, key: CheckpointKey) -> str | None:
    """What is wrong between the log and the file's last checkpoint, if anything.

    One query, so it can run before every checkpoint: a rewrite or a truncation since
    the previous one is reported within the hour, not at the next audit.
    """
    try:
        tail = await asyncio.to_thread(_tail, path)
    except OSError:
        return None  # no file yet, or one this process may only append to
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        body = json.loads(lines[-1])
        last = Checkpoint(
            seq=int(body["seq"]), hash=str(body["hash"]), at=str(body["at"]),
            key_id=str(body["key_id"]), sig=str(body["sig"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return f"the last line of {path} is not a checkpoint"
    if not key.valid(body, last.sig):
        return f"the last checkpoint in {path} is not signed with this key"
    async with db.read() as session:
        head = await session.get(AuditHead, HEAD_ID)
        digest = (
            GENESIS
            if last.seq == 0
            else await session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == last.seq))
        )
    head_seq = head.seq if head is not None else 0
    if head_seq < last.seq:
        return (
            f"the log ends at entry {head_seq}, but the checkpoint of {last.at} signed {last.seq}"
        )
    if digest != last.hash:
        return f"entry {last.seq} is no longer the entry the checkpoint of {last.at} signed"
    return None


def _tail(path: Path) -> str:
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - TAIL_BYTES))
        return handle.read().decode("utf-8", errors="replace")


async def at_shutdown(services: Services) -> None:
    """The last checkpoint of a stopping worker: what it saw is signed before it goes."""
    if not configured(services.settings):
        return
    try:
        await asyncio.wait_for(write_configured(services), SHUTDOWN_TIMEOUT)
    except Exception:  # shutting down: say so, never stop the shutdown
        log.exception("audit checkpoint at shutdown not written")
