"""All configured gateways: concurrent lookups, and finding which gateway owns an ID."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from bot.gateways.asking import NOT_ASKED, ask, not_asked
from bot.gateways.base import ErrorCode, Gateway, GatewayError, LookupQuery
from bot.gateways.calls import observed
from bot.models import (
    BillingProfile,
    Charge,
    Customer,
    GatewayFailure,
    GatewayProfile,
    Subscription,
)

if TYPE_CHECKING:
    from bot.index.search import Hit, IndexAnswer

log = logging.getLogger(__name__)
# The billing index asked beside the gateways: (readings, gateway names) -> who it holds.
IndexSearch = Callable[[Sequence[LookupQuery], Sequence[str]], Awaitable["IndexAnswer"]]

ENTRY_POINT_GROUP = "chargedesk.gateways"
T = TypeVar("T")


async def _nothing() -> None:
    return None


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

    async def lookup(
        self, text: str, *, broad: bool = False, index: IndexSearch | None = None
    ) -> BillingProfile:
        """Ask every gateway at once; a slow or failing one only marks its own section.

        `stripe:cus_1` asks that gateway alone. The text is asked as every kind it might be
        that a gateway answers (LookupQuery.exact); `broad` adds names and parts of emails,
        and a gateway without such a search gets a "not asked" line instead. `index` (the
        billing index) is asked at the same time, across every gateway: the customers it
        finds that no gateway named are added, read live by their ID (`broad`: the customer
        alone, for the pick list), and a gateway whose complete mirror was searched is not
        "not asked".
        """
        name, colon, rest = text.partition(":")
        only = [self.by_name[name]] if colon and rest.strip() and name in self.by_name else None
        typed = rest if only else text
        queries = LookupQuery.readings(typed) if broad else LookupQuery.exact(typed)
        searched = index(queries, list(self.by_name)) if index and only is None else None
        results, found = await asyncio.gather(
            self._each(lambda g: ask(g, queries), only), searched or _nothing()
        )
        profiles: list[GatewayProfile] = []
        lacking = [f for g in only or self for f in [not_asked(g, queries)] if f]
        # A gateway whose mirror was searched instead is not "not asked" (or says how fresh).
        amended = [found.instead_of(f) for f in lacking] if found else lacking
        failures = [f for f in amended if f is not None]
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
        if found is not None:
            known = {(p.gateway, p.customer.id) for p in profiles}
            down = {f.gateway for f in failures if f.code != NOT_ASKED}  # said once already
            new = [
                h
                for h in found.hits
                if (h.gateway, h.customer_id) not in known
                and h.gateway in self.by_name
                and (broad or h.gateway not in down)
            ]
            for part in await asyncio.gather(*(self._indexed(h, broad=broad) for h in new)):
                if isinstance(part, GatewayFailure):
                    failures.append(part)
                else:
                    profiles.extend(part)
        return BillingProfile(query=text, profiles=tuple(profiles), failures=tuple(failures))

    async def _indexed(self, hit: Hit, *, broad: bool) -> list[GatewayProfile] | GatewayFailure:
        """A customer the billing index found: for a pick list as the index knows them,
        else their profile read live from the gateway by ID (nothing if it is gone there)."""
        gateway = self.by_name[hit.gateway]
        can = frozenset(c.value for c in gateway.capabilities)
        if broad:
            who = Customer(gateway=hit.gateway, id=hit.customer_id, name=hit.name, email=hit.email)
            return [GatewayProfile(gateway=hit.gateway, customer=who, capabilities=can)]
        try:
            live = await self._bounded(
                gateway.lookup(LookupQuery("id", hit.customer_id)), gateway, "lookup"
            )
        except GatewayError as exc:
            if exc.code in (ErrorCode.not_found, ErrorCode.unsupported):
                return []
            return GatewayFailure(gateway=gateway.name, code=exc.code, message=exc.message)
        return [
            p.model_copy(update={"capabilities": can})
            for p in live
            if p.customer.id == hit.customer_id
        ]

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
            return gateway, await self._bounded(fetch(gateway, object_id), gateway, what)
        results = await self._each(lambda g: fetch(g, ref), operation=what)
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
        self,
        call: Callable[[Gateway], Awaitable[T]],
        only: list[Gateway] | None = None,
        operation: str = "lookup",
    ) -> list[tuple[Gateway, T | GatewayError]]:
        gateways = only or list(self.by_name.values())

        async def one(g: Gateway) -> T | GatewayError:
            try:
                return await self._bounded(call(g), g, operation)
            except GatewayError as exc:
                return exc

        return list(zip(gateways, await asyncio.gather(*(one(g) for g in gateways)), strict=True))

    async def _bounded(self, awaitable: Awaitable[T], gateway: Gateway, operation: str) -> T:
        """One call within the lookup timeout, its latency and errors counted per gateway."""
        return await observed(gateway.name, operation, self._guarded(awaitable, gateway))

    async def _guarded(self, awaitable: Awaitable[T], gateway: Gateway) -> T:
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
