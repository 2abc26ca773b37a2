"""The processes that hold a chat connection: `chargedesk slack --socket`, `chargedesk discord`.

Entry points, like `bot/cli.py`: they open the services (`bot.wiring`), which the
platform packages never import, so that `open_services` may attach every door.
"""

from __future__ import annotations

from bot.settings import Settings


async def run_socket_mode(settings: Settings) -> None:
    """`chargedesk slack --socket`: the same app over an outbound websocket, no public URL."""
    from bot.chat.slack.adapter import SlackBot
    from bot.jobs import background_worker
    from bot.wiring import open_services

    assert settings.slack.app_token is not None
    services = await open_services(settings)
    bot = SlackBot(settings.slack)
    bot.bind(services)
    handler = bot.socket_mode(settings.slack.app_token.get_secret_value())
    try:
        async with background_worker(services):
            await handler.start_async()
    finally:
        await handler.close_async()
        await bot.aclose()
        await services.close()


async def run_discord(settings: Settings) -> None:
    """`chargedesk discord`: connect to the gateway and serve `/billing` until stopped."""
    from bot.chat.discord.adapter import DiscordBot
    from bot.jobs import background_worker
    from bot.wiring import open_services

    assert settings.discord.token is not None
    services = await open_services(settings)
    bot = DiscordBot(settings.discord, services)
    try:
        async with background_worker(services):
            await bot.start(settings.discord.token.get_secret_value())
    finally:
        await bot.close()
        await services.close()
