"""Slack Web API calls kept to Slack's published rate limits, across every process.

Slack limits each app per workspace and method ("tiers": Tier 2 about 20 calls a minute,
Tier 3 about 50, Tier 4 about 100) and `chat.postMessage` to about one message a second
per channel, with short bursts. `LimitedWebClient` takes a token from the shared bucket of
the method (and of the channel, for messages) before each call, and when Slack still
answers 429 it closes that bucket for the `Retry-After` seconds for every process, waits,
and tries again (`RETRIES` times) instead of losing the message.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.rate_limits import Rate, SharedLimiter

log = logging.getLogger(__name__)

TIER_2, TIER_3, TIER_4 = Rate.per_minute(20), Rate.per_minute(50), Rate.per_minute(100)
METHODS: dict[str, Rate] = {
    "chat.postEphemeral": TIER_4,
    "chat.update": TIER_3,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.push": TIER_4,
    "conversations.info": TIER_3,
    "conversations.open": TIER_3,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "usergroups.users.list": TIER_2,
    "users.info": TIER_4,
    "auth.test": TIER_4,
}
PER_CHANNEL = Rate(per_second=1, burst=4)  # chat.postMessage, per channel
RETRIES = 3
MAX_RETRY_AFTER = 60.0  # longer than this, the message is better late than blocking a worker


class LimitedWebClient(AsyncWebClient):
    """An AsyncWebClient that waits for the shared buckets; `limiter` is set once bound."""

    limiter: SharedLimiter | None = None

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        if self.limiter is None:
            return await super().api_call(api_method, **kwargs)
        bucket, rate = self._bucket(api_method, kwargs)
        for attempt in range(RETRIES + 1):
            await self.limiter.wait(bucket, rate)
            try:
                return await super().api_call(api_method, **kwargs)
            except SlackApiError as error:
                retry_after = _retry_after(error)
                if retry_after is None or attempt == RETRIES:
                    raise
                log.warning(
                    "Slack rate-limited %s: waiting %.0f s (try %d)",
                    api_method, retry_after, attempt + 1,
                )  # fmt: skip
                await self.limiter.hold(bucket, retry_after)
        raise AssertionError("unreachable")

    def _bucket(self, method: str, call: dict[str, Any]) -> tuple[str, Rate]:
        # The token's fingerprint names the app and workspace; the token itself never
        # goes into a Redis key.
        app = hashlib.sha256((self.token or "").encode()).hexdigest()[:12]
        if method == "chat.postMessage":
            body = call.get("json") or call.get("data") or call.get("params") or {}
            channel = body.get("channel", "") if isinstance(body, dict) else ""
            return f"slack:{app}:{method}:{channel}", PER_CHANNEL
        return f"slack:{app}:{method}", METHODS.get(method, TIER_3)


def _retry_after(error: SlackApiError) -> float | None:
    """Seconds Slack asked us to wait, or None if this was not a rate limit."""
    response = error.response
    if response is None or response.status_code != 429:
        return None
    try:
        seconds = float(response.headers.get("Retry-After", response.headers.get("retry-after", 1)))
    except (TypeError, ValueError):
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
