"""The job registry: modules declare their jobs (`@job`) and periodic work (`@periodic`) here.

It imports nothing of the bot, so any module can register work without
importing the worker (`bot/jobs.py`), which runs everything registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from arq.worker import Function, func

JobFunction = TypeVar("JobFunction", bound=Callable[..., Any])


@dataclass(frozen=True)
class Periodic:
    """A coroutine run on an arq cron schedule (`schedule` holds arq.cron fields: minute, second, ...)."""

    coroutine: Callable[..., Any]
    schedule: dict[str, Any] = field(default_factory=dict)


JOBS: dict[str, Function] = {}
PERIODIC: dict[str, Periodic] = {}


def job(
    *, name: str | None = None, max_tries: int | None = None, timeout: float | None = None
) -> Callable[[JobFunction], JobFunction]:
    """Register `async def f(ctx, *args)` as a job; `ctx["services"]` holds the worker's Services."""

    def register(coroutine: JobFunction) -> JobFunction:
        key = name or coroutine.__name__
        JOBS[key] = func(coroutine, name=key, max_tries=max_tries, timeout=timeout)
        return coroutine

    return register


def periodic(*, name: str | None = None, **schedule: Any) -> Callable[[JobFunction], JobFunction]:
    """Register `async def f(ctx)` to run on a schedule (arq.cron fields), once per deployment."""

    def register(coroutine: JobFunction) -> JobFunction:
        PERIODIC[name or coroutine.__name__] = Periodic(coroutine, dict(schedule))
        return coroutine

    return register
