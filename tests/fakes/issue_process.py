"""A separate OS process issuing receipts, for the cross-process numbering test.

Usage: python -m tests.fakes.issue_process <prefix> <count> <go-file>
Issues <count> receipts for charges <prefix>-0 ... and prints their numbers as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.actors import SYSTEM
from bot.documents.issue import issue
from bot.settings import load_settings
from bot.store.db import Database
from tests.documents.drafts import draft, plain_render
from tests.fakes.approve_process import wait_for


async def main(prefix: str, count: int, go: Path) -> None:
    db = Database(load_settings().sql_url)
    await asyncio.to_thread(wait_for, go)
    numbers = []
    try:
        for i in range(count):
            document = await issue(
                db, draft(f"{prefix}-{i}"), prefix="RCT", render=plain_render, actor=SYSTEM
            )
            numbers.append(document.number)
    finally:
        await db.close()
    print(json.dumps(numbers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
