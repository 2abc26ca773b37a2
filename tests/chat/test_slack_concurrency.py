"""Many lookups at once through Slack: each waits its turn, nobody is told a false "no match".

Signed `/billing lookup` requests go into the ASGI app as in test_slack.py; a gateway
that takes a while per lookup and counts how many run at once stands beside the ledger.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest

from bot.gateways.base import Capability, Gateway, LookupQuery
from bot.gateways.registry import Gateways
from bot.models import Customer, GatewayProfile
from chargedesk_emulators.slack import TEAM_ID, Call
from tests.chat.test_slack import AGENT, JANE, Slack, api, slack, trigger  # noqa: F401  (fixtures)

pytestmark = pytest.mark.storage

CHANNELS = [f"C0BURST000{i}" for i in range(5)]


class Counting(Gateway):
    """Finds `<name>@queue.example` as customer <name> after `delay` s; counts lookups at once."""

    name = "queue"
    capabilities = frozenset({Capability.lookup})

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.running = 0
        self.most = 0

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        if not query.value.endswith("@queue.example"):
            return []
        who = query.value.split("@")[0]
        customer = Customer(gateway=self.name, id=f"cus_{who}", email=query.value, name=who)
        return [GatewayProfile(gateway=self.name, customer=customer)]


class Stuck(Gateway):
    """Never answers within the lookup timeout."""

    name = "stuck"
    capabilities = frozenset({Capability.lookup})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        await asyncio.sleep(30)
        return []


async def lookup(harness: Slack, text: str, channel: str, response_url: str) -> None:
    body = urlencode({
        "token": "legacy", "team_id": TEAM_ID, "team_domain": "chargedesk-test", "channel_id": channel,
        "channel_name": "billing", "user_id": AGENT, "user_name": "agent", "command": "/billing",
        "text": f"lookup {text}", "api_app_id": "A0CHARGE01", "response_url": response_url,
        "trigger_id": trigger(),
    })  # fmt: skip
    answer = await harness.post(body, "application/x-www-form-urlencoded")
    assert answer.status_code == 200


def said(call: Call) -> str:
    return str(call.params.get("text") or "")


async def test_a_lookup_whose_gateway_timed_out_says_so_and_never_no_match(services, slack):  # noqa: F811
    services.settings.lookup.cache_seconds = 0
    services.gateways = Gateways([services.gateways.get("ledger"), Stuck()], timeout=0.2)
    await slack.command(AGENT, "lookup nobody@example.com")
    answer = said((await slack.api.wait_for("chat.postEphemeral"))[0])
    assert "could not answer: stuck timed out after 0.2 s; try again" in answer
    assert "no customer matches" not in answer


async def test_a_lookup_every_gateway_answered_still_says_no_customer_matches(services, slack):  # noqa: F811
    services.settings.lookup.cache_seconds = 0
    services.gateways = Gateways([services.gateways.get("ledger"), Counting(0.0)], timeout=5)
    await slack.command(AGENT, "lookup nobody@example.com")
    answer = said((await slack.api.wait_for("chat.postEphemeral"))[0])
    assert "no customer matches 'nobody@example.com'" in answer
    assert "could not answer" not in answer


async def test_thirty_lookups_at_once_with_two_slots_each_get_their_card_busy_notice_first(
    services,
    slack,  # noqa: F811
):
    lookups = services.settings.lookup
    lookups.cache_seconds, lookups.concurrency, lookups.busy_notice = 0, 2, 0.3
    queue = Counting(0.1)
    # The gateway timeout is shorter than the line: it must start when each lookup does.
    services.gateways = Gateways([services.gateways.get("ledger"), queue], timeout=1.0)
    for channel in CHANNELS:
        slack.api.channel(channel, channel.lower(), private=True)
        # The workspace as a busy team has it: who and where already known (cached).
        await lookup(slack, JANE, channel, slack.api.response_url())
    await slack.settle()
    before = len(slack.api.of("chat.postMessage"))
    urls = [slack.api.response_url() for _ in range(30)]
    await asyncio.gather(
        *(
            lookup(slack, f"agent{i}@queue.example", CHANNELS[i % len(CHANNELS)], url)
            for i, url in enumerate(urls)
        )
    )
    await slack.settle()
    cards = slack.api.of("chat.postMessage")[before:]
    notices = [c for c in slack.api.of("response_url") if said(c).startswith("Busy: ")]
    assert len(cards) == 30 and queue.most == 2
    assert not [c for c in slack.api.of("chat.postEphemeral") if said(c)]  # nothing refused
    # At 0.1 s a lookup, two at a time, all but the first few waited past 0.3 s.
    assert 10 <= len(notices) <= 28
    for i in range(30):
        card = next(c for c in cards if said(c).startswith(f"agent{i}:"))
        assert "no customer matches" not in said(card) and "did not answer" not in str(card.params)
        notice = [n for n in notices if f"`lookup agent{i}@queue.example`" in said(n)]
        if notice:  # at most one, and before the card
            (first,) = notice
            assert first.at < card.at
            assert said(first).endswith(f"the card for `lookup agent{i}@queue.example` follows.")
            assert 1 <= int(said(first).split()[1]) <= 29


async def test_two_processes_share_the_bound_and_a_dead_ones_slot_comes_back(services):
    from bot.lookup_slots import LookupSlots

    def process() -> LookupSlots:  # each its own line, one Redis between them
        return LookupSlots(services.redis, services.key, per_process=4, shared=3, lease_ms=600)

    first, second = process(), process()
    running = most = 0

    async def look(slots: LookupSlots) -> None:
        nonlocal running, most
        async with slots.slot():
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.05)
            running -= 1

    await asyncio.gather(*(look(first if i % 2 else second) for i in range(16)))
    assert most == 3  # 4 allowed in each process, 3 across both
    # A process dies holding every shared slot: its leases run out, the others go on.
    # (It took them as every process does, then neither renewed nor released them.)
    dead = process()
    for n in range(3):
        assert await dead._take(keys=dead._keys, args=[f"dead{n}", 3, 600, 5000]) == -1
    waited = asyncio.get_running_loop().time()
    await asyncio.wait_for(look(first), timeout=10)
    assert asyncio.get_running_loop().time() - waited >= 0.3  # it waited for the leases


class SlowOnce(Gateway):
    """Misses the lookup timeout the first time it is asked, then answers at once."""

    name = "late"
    capabilities = frozenset({Capability.lookup})

    def __init__(self) -> None:
        self.asked = 0

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        self.asked += 1
        if self.asked == 1:
            await asyncio.sleep(30)
        customer = Customer(gateway=self.name, id="cus_late", email=query.value, name="Lena Late")
        return [GatewayProfile(gateway=self.name, customer=customer)]


async def test_a_lookup_that_timed_out_is_asked_once_more_and_the_card_comes(services, slack):  # noqa: F811
    services.settings.lookup.cache_seconds = 0
    late = SlowOnce()
    services.gateways = Gateways([services.gateways.get("ledger"), late], timeout=0.2)
    await slack.command(AGENT, "lookup lena@late.example")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.settle()
    assert late.asked == 2 and said(card).startswith("Lena Late")
    assert slack.api.of("chat.postEphemeral") == [] and slack.api.of("response_url") == []
