"""Chat rate limits: Redis token buckets every process shares, and Slack's 429s waited out.

The buckets run on the test's real Redis engine; two `SharedLimiter`s on two connections
stand for two processes. Slack is the Web API emulator answering 429 with `Retry-After`
as Slack does; the official slack_sdk client makes the calls.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot import notify
from bot.cards.model import Card
from bot.chat.discord.limits import DiscordLimits, route
from bot.chat.slack.limits import PER_CHANNEL, LimitedWebClient
from bot.doors import places
from bot.rate_limits import Rate, SharedLimiter
from bot.services import Services
from chargedesk_emulators.discord import DiscordAPI, discord_api
from chargedesk_emulators.slack import SlackAPI, slack_api
from tests.chat import test_discord as discord_tests
from tests.chat import test_slack as slack_tests
from tests.chat.test_slack import APPROVALS, INTERNAL, populate, running_slack

pytestmark = pytest.mark.storage


def limiter(services: Services) -> SharedLimiter:
    return SharedLimiter(services.redis, services.key)


def another_process(services: Services) -> SharedLimiter:
    """A limiter on its own connection pool, as another `web` or `worker` process has."""
    pool = aioredis.Redis.from_url(services.settings.redis_url)
    return SharedLimiter(pool, services.key)


async def test_a_burst_is_served_at_once_and_the_rest_at_the_rate(services):
    bucket, rate = "test:burst", Rate(per_second=4, burst=3)
    started = time.monotonic()
    waits = [await limiter(services).wait(bucket, rate) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(w > 0 for w in waits[3:])
    assert time.monotonic() - started >= 2 / 4 * 0.9  # two tokens at 4 a second


async def test_two_processes_share_one_bucket(services):
    here, there = limiter(services), another_process(services)
    bucket, rate = "test:shared", Rate(per_second=10, burst=2)
    assert await here.wait(bucket, rate) == 0.0
    assert await there.wait(bucket, rate) == 0.0
    # The burst is spent between them: the third token, in either process, waits.
    assert await there.wait(bucket, rate) > 0
    await there.redis.aclose()


async def test_a_hold_stops_every_process_until_it_ends(services):
    here, there = limiter(services), another_process(services)
    await here.hold("test:held", 0.3)
    started = time.monotonic()
    assert await there.wait("test:held", Rate(per_second=100, burst=10)) > 0
    assert time.monotonic() - started >= 0.25
    await there.redis.aclose()


async def test_buckets_are_apart(services):
    shared = limiter(services)
    rate = Rate(per_second=1, burst=1)
    assert await shared.wait("test:channel-a", rate) == 0.0
    assert await shared.wait("test:channel-b", rate) == 0.0


async def test_without_redis_each_process_still_keeps_the_rate(services, caplog):
    gone = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    alone = SharedLimiter(gone, services.key)
    rate = Rate(per_second=5, burst=2)
    waits = [await alone.wait("test:away", rate) for _ in range(4)]
    assert waits[:2] == [0.0, 0.0] and all(w > 0 for w in waits[2:])
    assert "chat rate limits are kept per process" in caplog.text
    await alone.hold("test:away-held", 0.2)
    assert await alone.wait("test:away-held", rate) >= 0.15


def client(services: Services, api: SlackAPI) -> LimitedWebClient:
    slack = LimitedWebClient(token=api.token, base_url=f"{api.base_url}/api/")
    slack.limiter = limiter(services)
    return slack


async def test_a_message_slack_rate_limits_is_posted_once_after_retry_after(services):
    with slack_api() as api:
        populate(api)
        api.rate_limit("chat.postMessage", times=1, retry_after=1)
        started = time.monotonic()
        await client(services, api).chat_postMessage(channel=INTERNAL, text="Refund approved")
        waited = time.monotonic() - started
        calls = api.of("chat.postMessage")
    assert [c.answer.get("error") for c in calls] == ["ratelimited", None]
    assert waited >= 0.95
    assert calls[1].at - calls[0].at >= 0.95  # Retry-After respected, not retried at once


async def test_retry_after_from_slack_holds_other_processes_too(services):
    with slack_api() as api:
        populate(api)
        api.rate_limit("chat.update", times=1, retry_after=1)
        first, second = client(services, api), client(services, api)
        second.limiter = another_process(services)
        await first.chat_update(channel=INTERNAL, ts="1.000001", text="one")
        # The hold is over by now; what matters is that the other process waited for it.
        assert [c.answer.get("error") for c in api.of("chat.update")] == ["ratelimited", None]
        api.rate_limit("chat.update", times=1, retry_after=1)
        one = asyncio.create_task(first.chat_update(channel=INTERNAL, ts="1.000001", text="a"))
        await api.wait_for("chat.update", 3)  # the 429 is in: the bucket is held
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await second.chat_update(channel=INTERNAL, ts="1.000002", text="b")
        assert time.monotonic() - started >= 0.7
        await one
        await second.limiter.redis.aclose()  # type: ignore[union-attr]


async def test_slack_rate_limited_more_often_than_we_retry_says_so(services):
    with slack_api() as api:
        populate(api)
        api.rate_limit("conversations.info", times=9, retry_after=0)
        slack = client(services, api)
        from slack_sdk.errors import SlackApiError

        with pytest.raises(SlackApiError, match="ratelimited"):
            await slack.conversations_info(channel=INTERNAL)
        assert len(api.of("conversations.info")) == 4  # the call and three retries


async def test_messages_to_one_channel_are_paced_across_the_app(services):
    with slack_api() as api:
        populate(api)
        slack = client(services, api)
        count = PER_CHANNEL.burst + 2
        for n in range(count):
            await slack.chat_postMessage(channel=APPROVALS, text=f"alert {n}")
        await slack.chat_postMessage(channel=INTERNAL, text="another channel")
        times = [c.at for c in api.of("chat.postMessage") if c.params["channel"] == APPROVALS]
        other = [c for c in api.of("chat.postMessage") if c.params["channel"] == INTERNAL]
    # The burst goes at once; the two after it are a second apart each (1 a second a channel).
    assert times[PER_CHANNEL.burst + 1] - times[0] >= 1.8
    assert len(other) == 1


async def test_the_slack_door_posts_through_the_shared_limiter(services):
    with slack_api() as api:
        populate(api)
        async with running_slack(services, api) as slack:
            assert isinstance(slack.bot.client, LimitedWebClient)
            assert slack.bot.client.limiter is not None
            api.rate_limit("chat.postMessage", times=1, retry_after=1)
            await slack.command("UAGENT0001", "lookup jane.doe@example.com")
            posted = await api.wait_for(
                "chat.postMessage", 2, match=lambda c: c.params["channel"] == INTERNAL, within=15
            )
            await slack.settle()
    assert posted[0].answer.get("error") == "ratelimited"
    assert posted[1].answer["ok"] and "Jane" in str(posted[1].params)


# --- Discord --------------------------------------------------------------------------------

MESSAGES = "/channels/{channel_id}/messages"
CHANNEL = "1500000000000000001"


def discord_limits(services: Services) -> DiscordLimits:
    shared = limiter(services)
    return DiscordLimits(lambda: shared, lambda: "fake-token")


async def send(session: aiohttp.ClientSession, api: DiscordAPI, channel: str = CHANNEL) -> int:
    async with session.post(
        f"{api.base_url}/channels/{channel}/messages",
        json={"content": "Refund approved"}, headers={"Authorization": "Bot fake-token"},
    ) as response:  # fmt: skip
        return response.status


def test_routes_keep_the_major_id_and_fold_the_others():
    assert route("PATCH", "/api/v10/channels/15/messages/99") == "PATCH /channels/15/messages/99"
    long = "/api/v10/channels/1500000000000000001/messages/1200000000000000002"
    assert route("PATCH", long) == "PATCH /channels/1500000000000000001/messages/:id"


async def test_a_discord_429_holds_its_route_for_every_process(services):
    with discord_api() as api:
        api.rate_limit(MESSAGES, times=1, retry_after=1)
        async with aiohttp.ClientSession(trace_configs=[discord_limits(services).trace()]) as s:
            assert await send(s, api) == 429
        there, bot = another_process(services), discord_limits(services)._bot()
        assert await there.held(f"discord:{bot}:POST /channels/{CHANNEL}/messages") >= 0.8
        assert await there.held(f"discord:{bot}:POST /channels/1500000000000000002/messages") == 0
        await there.redis.aclose()


async def test_a_global_429_stops_every_route_of_the_bot(services):
    with discord_api() as api:
        api.rate_limit(MESSAGES, times=1, retry_after=1, scope="global")
        async with aiohttp.ClientSession(trace_configs=[discord_limits(services).trace()]) as s:
            assert await send(s, api) == 429
            started = time.monotonic()
            assert await send(s, api, channel="1500000000000000002") == 200
        assert time.monotonic() - started >= 0.8  # another channel waited for the global hold


async def test_near_discords_invalid_request_ban_every_process_pauses(services, caplog):
    limits = discord_limits(services)
    everything = services.key("ratelimit", "hold", f"discord:{limits._bot()}:global")
    with discord_api() as api:
        api.fail(MESSAGES)  # 403 Missing Permissions: an invalid request to Discord
        window = int(time.time()) // 600
        counter = services.key("ratelimit", "discord-invalid", limits._bot(), str(window))
        await services.redis.set(counter, 8_998, ex=600)
        async with aiohttp.ClientSession(trace_configs=[limits.trace()]) as s:
            assert await send(s, api) == 403
            assert int(await services.redis.get(counter)) == 8_999
            assert await services.redis.pttl(everything) < 0  # not yet
            assert await send(s, api) == 403
        held = await services.redis.pttl(everything)
    assert held > 0 and "pausing all calls" in caplog.text


async def test_the_discord_door_posts_once_after_discord_says_slow_down(services):
    with discord_api() as api:
        discord_tests.populate(api)
        api.rate_limit(MESSAGES, times=1, retry_after=1)
        async with discord_tests.running_bot(services, api) as d:
            await d.command(
                discord_tests.AGENT, "refund", charge="ch_jane_1", amount="80",
                reason="duplicate charged twice",
            )  # fmt: skip
            posts = await api.wait_for("POST", MESSAGES, 2, within=15)
    assert posts[0].answer["message"] == "You are being rate limited."
    assert "id" in posts[1].answer and posts[1].at - posts[0].at >= 0.95
    assert api.problems == []


# --- bursts: alerts as a digest, redraws coalesced -------------------------------------------


async def queue_alerts(services: Services, kinds: list[str], channel: str = APPROVALS) -> None:
    async with services.db.write() as session:
        for n, kind in enumerate(kinds):
            card = Card(title=f"Dispute dp_{n} is due in 2 days", subtitle="<@U123> *bold*")
            await notify.queue(session, kind=kind, card=card, channel=f"slack:{channel}")


async def test_a_pile_of_alerts_goes_as_one_digest_while_questions_go_one_by_one(services):
    with slack_api() as api:
        populate(api)
        async with running_slack(services, api) as slack:
            await queue_alerts(services, ["dispute_due"] * 7 + ["question"])
            assert await slack.bot.deliver_alerts() == 8
            posted = api.of("chat.postMessage")
            assert api.problems == []
    assert len(posted) == 2
    digest = next(c for c in posted if "7 alerts at once" in str(c.params))
    shown = str(digest.params["blocks"])
    assert all(f"dp_{n} is due" in shown for n in range(7))
    assert "<@U123>" not in shown  # a mention in an alert's text stays text
    assert len(await notify.recent(services.db, limit=20)) == 8  # each still in /billing alerts


async def test_a_few_alerts_go_one_by_one(services):
    with slack_api() as api:
        populate(api)
        async with running_slack(services, api) as slack:
            await queue_alerts(services, ["dispute_due"] * notify.DIGEST_AT)
            assert await slack.bot.deliver_alerts() == notify.DIGEST_AT
            assert len(api.of("chat.postMessage")) == notify.DIGEST_AT


async def test_a_digest_slack_refuses_goes_back_whole(services):
    with slack_api() as api:
        populate(api)
        async with running_slack(services, api) as slack:
            await queue_alerts(services, ["dispute_due"] * 7)
            api.fail("chat.postMessage", "channel_not_found")
            assert await slack.bot.deliver_alerts() == 0
            assert len(await notify.pending(services.db)) == 7
            api.failures.clear()
            assert await slack.bot.deliver_alerts() == 7


async def test_a_burst_of_decisions_redraws_each_copy_at_most_twice(services):
    with slack_api() as api:
        populate(api)
        async with running_slack(services, api) as slack:
            approval_id, _card = await slack_tests.pending_refund(slack)
            copies = len(await places.shown(services, approval_id, "slack"))
            gate = api.hold("chat.update")
            burst = asyncio.gather(*(slack.bot.refresh(approval_id) for _ in range(6)))
            await asyncio.sleep(0.2)  # the first redraw waits at Slack, the rest pile up
            gate.set()
            await burst
            await slack.settle()
            updates = api.of("chat.update")
    assert copies >= 1 and len(updates) == 2 * copies
