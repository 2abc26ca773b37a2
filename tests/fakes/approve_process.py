"""A separate OS process that approves one request, for the cross-process exactly-once test.

Usage: python -m tests.fakes.approve_process <approval-id> <manager-name> <go-file>
Prints one JSON line: {"state": ..., "error": ...}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bot.actors import Actor, Role
from bot.approvals.policy import Policy
from bot.approvals.requests import decide
from bot.errors import UserError
from bot.settings import load_settings
from bot.wiring import open_services


def wait_for(go: Path, limit: float = 30.0) -> None:
    """Both processes start together once the test creates the go file."""
    deadline = time.monotonic() + limit
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)


async def main(approval_id: str, name: str, go: Path) -> None:
    services = await open_services(load_settings(), policy=Policy(), migrate=False)
    manager = Actor(platform="test", id=name, name=name, roles=frozenset({Role.manager}))
    await asyncio.to_thread(wait_for, go)
    try:
        view = await decide(services, manager, approval_id, approve=True)
        result = {"state": view.state.value, "error": None}
    except UserError as exc:
        result = {"state": "lost", "error": exc.code}
    finally:
        await services.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
