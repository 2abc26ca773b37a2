"""A separate OS process that casts the deciding vote on a request and is killed at once.

Usage: python -m tests.fakes.vote_then_die <approval-id> <manager-name>
The vote commits (workflow.vote is the whole transaction); the process then dies by SIGKILL
before `execute` could start, as a crash or an OOM kill between the two would leave it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from bot.actors import Actor, Role
from bot.approvals.policy import Policy
from bot.approvals.workflow import vote
from bot.settings import load_settings
from bot.wiring import open_services


async def main(approval_id: str, name: str) -> None:
    services = await open_services(load_settings(), policy=Policy(), migrate=False)
    manager = Actor(platform="test", id=name, name=name, roles=frozenset({Role.manager}))
    view = await vote(services, manager, approval_id, approve=True, reason=None)
    print(view.state.value, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
