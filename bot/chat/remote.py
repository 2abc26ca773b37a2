"""Every configured chat door, REST only: redraws after a decision taken in this process.

Approval copies are stored in SQL (`bot.doors.places`), and redrawing one needs only
the platform's REST API and the bot token (Slack's chat.update, Discord's message
edit), not the process that holds Slack's app or Discord's gateway connection. So
every process (`chargedesk shell`, `worker`, `serve`, `discord`) redraws the copies
of a request it decides on every configured platform. A live door attached later in
the same process (the Slack app in `serve`, the bot in `discord`) takes over from
the REST-only door of its platform (`Door.attach`), so each copy is redrawn once.
"""

from __future__ import annotations

from bot.services import Services


def attach_chat_doors(services: Services) -> None:
    """Register the REST-only door of each configured chat platform as a decision hook."""
    settings = services.settings
    if settings.slack.bot_token is not None:
        # Imported when configured: each SDK costs start-up time.
        from bot.chat.slack.adapter import SlackBot

        SlackBot(settings.slack, alert_seconds=0).attach(services)
    if settings.discord.token is not None:
        from bot.chat.discord.adapter import DiscordRedraw

        DiscordRedraw(settings.discord, services)  # attaches itself
