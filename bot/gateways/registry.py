"""All configured gateways: concurrent lookups, and finding which gateway owns an ID."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from bot.gateways.asking import ask, not_asked
from bot.gateways.base import ErrorCode, Gateway, GatewayError, LookupQuery
from bot.models import BillingProfile, Charge, GatewayFailure, GatewayProfile, Subscription

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "chargedesk.gateways"
T = TypeVar("T")


def plugin_factories() -> dict[str, Callable[..., Gateway]]:
    """Third-party gateways registered under the `chargedesk.gateways` entry point group."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}


class Gateways:
    def __init__(self, gateways: list[Gateway], timeout: float) -> None:
        self.by_name = {g.name: g for g in gateways}
        self.timeout = timeout

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def get(self, name: str) -> Gateway:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise GatewayError(
                ErrorCode.not_found,
                f"no gateway named {name!r} (configured: {known})",
                gateway=name,
            ) from None

    async def lookup(self, text: str, *, broad: bool = False) -> BillingProfile:
        """Ask every gateway at once; a slow or failing one only marks its own section.

        `stripe:cus_1` asks that gateway alone. The text is asked as every kind it might be
        that a gateway answers (LookupQuery.exact); `broad` adds names and parts of emails,
        and a gateway without such a search gets a "not asked" line instead.
        """
        name, colon, rest = text.partition(":")
        only = [self.by_name[name]] if colon and rest.strip() and name in self.by_name else None
        typed = rest if only else text
        queries = LookupQuery.readings(typed) if broad else LookupQuery.exact(typed)
        results = await self._each(lambda g: ask(g, queries), only)
        profiles: list[GatewayProfile] = []
        failures = [f for g in only or self for f in [not_asked(g, queries)] if f]
        for gateway, result in results:
            if isinstance(result, GatewayError):
                if result.code != ErrorCode.unsupported:
                    failures.append(
                        GatewayFailure(
                            gateway=gateway.name, code=result.code, message=result.message
                        )
                    )
            else:
                can = frozenset(c.value for c in gateway.capabilities)
                profiles.extend(p.model_copy(update={"capabilities": can}) for p in result)
        return BillingProfile(query=text, profiles=tuple(profiles), failures=tuple(failures))

    async def locate_charge(self, ref: str) -> tuple[Gateway, Charge]:
        return await self.locate(ref, lambda g, object_id: g.get_charge(object_id), "charge")

    async def locate_subscription(self, ref: str) -> tuple[Gateway, Subscription]:
        return await self.locate(
            ref, lambda g, object_id: g.get_subscription(object_id), "subscription"
        )

    async def locate(
        self, ref: str, fetch: Callable[[Gateway, str], Awaitable[T]], what: str
    ) -> tuple[Gateway, T]:
        """The one gateway holding `ref` (`gateway:id` names it; a bare ID asks all)."""
        if ":" in ref:
            name, object_id = ref.split(":", 1)
            gateway = self.get(name)
            return gateway, await self._bounded(fetch(gateway, object_id), gateway)
        results = await self._each(lambda g: fetch(g, ref))
        found = [(g, r) for g, r in results if not isinstance(r, GatewayError)]
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(f"{g.name}:{ref}" for g, _ in found)
            raise GatewayError(
                ErrorCode.ambiguous,
                f"{what} {ref} exists in several gateways: use one of {names}",
                gateway="*",
            )
        down = [
            r
            for _, r in results
            if isinstance(r, GatewayError) and r.code in (ErrorCode.unavailable, ErrorCode.timeout)
        ]
        if down:
            raise down[0]
        raise GatewayError(ErrorCode.not_found, f"no {what} {ref} in any gateway", gateway="*")

    async def _each(
        self, call: Callable[[Gateway], Awaitable[T]], only: list[Gateway] | None = None
    ) -> list[tuple[Gateway, T | GatewayError]]:
        gateways = only or list(self.by_name.values())

        async def one(g: Gateway) -> T | GatewayError:
            try:
                return await self._bounded(call(g), g)
            except GatewayError as exc:
                return exc

        return list(zip(gateways, await asyncio.gather(*(one(g) for g in gateways)), strict=True))

    async def _bounded(self, awaitable: Awaitable[T], gateway: Gateway) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except TimeoutError:
            raise GatewayError(
                ErrorCode.timeout,
                f"{gateway.name} did not answer within {self.timeout:g} s",
                gateway=gateway.name,
            ) from None
        except GatewayError:
            raise
        except Exception as exc:  # a gateway's bug must not take the whole card down
            log.exception("gateway %s failed", gateway.name)
            raise GatewayError(
                ErrorCode.unavailable,
                f"{gateway.name} failed ({type(exc).__name__})",
                gateway=gateway.name,
            ) from None

    async def close(self) -> None:
        for gateway in self:
            await gateway.close()
