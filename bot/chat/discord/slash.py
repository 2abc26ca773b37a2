"""The `/billing` command tree Discord shows: a subcommand per core command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.chat.discord.adapter import DiscordBot


_DOCUMENT_ACTIONS = [
    app_commands.Choice(name="PDF", value="pdf"),
    app_commands.Choice(name="Email it to the customer", value="send"),
]


class Billing(app_commands.Group):
    """`/billing`: a subcommand per core command; options fill the command's arguments."""

    def __init__(self, bot: DiscordBot) -> None:
        super().__init__(name="billing", description="ChargeDesk billing support")
        self.bot = bot

    @app_commands.command(name="help", description="List the commands you may run, or explain one")
    @app_commands.describe(topic="a command name, such as refund")
    async def help_(self, interaction: discord.Interaction, topic: str | None = None) -> None:
        await self.bot.command(interaction, "help", {"topic": topic})

    @app_commands.command(description="Show a customer's billing across every gateway")
    @app_commands.describe(query="email, or a customer, charge, invoice or subscription ID")
    async def lookup(self, interaction: discord.Interaction, query: str) -> None:
        await self.bot.command(interaction, "lookup", {"query": query})

    @app_commands.command(description="Refund a charge, fully or in part")
    @app_commands.describe(
        charge="charge ID (ledger:ch_123)", reason="reason code and text, for the audit log",
        amount="amount such as 12.50 or 12.50 EUR; empty: what remains refundable",
    )  # fmt: skip
    async def refund(
        self, interaction: discord.Interaction, charge: str, reason: str, amount: str | None = None
    ) -> None:
        await self.bot.command(
            interaction, "refund", {"charge": charge, "amount": amount, "reason": reason}
        )

    @app_commands.command(description="Cancel a subscription now or at the end of the period")
    @app_commands.describe(
        subscription="subscription ID", reason="reason code and text", when="when it ends"
    )
    @app_commands.choices(
        when=[
            app_commands.Choice(name="At the end of the paid period", value="period-end"),
            app_commands.Choice(name="Now", value="now"),
        ]
    )
    async def cancel(
        self,
        interaction: discord.Interaction,
        subscription: str,
        reason: str,
        when: app_commands.Choice[str] | None = None,
    ) -> None:
        raw = {"subscription": subscription, "reason": reason, "when": when.value if when else None}
        await self.bot.command(interaction, "cancel", raw)

    @app_commands.command(description="Capture an authorized charge, fully or in part")
    @app_commands.describe(charge="charge ID", reason="reason", amount="amount; empty: all of it")
    async def capture(
        self, interaction: discord.Interaction, charge: str, reason: str, amount: str | None = None
    ) -> None:
        await self.bot.command(
            interaction, "capture", {"charge": charge, "amount": amount, "reason": reason}
        )

    @app_commands.command(description="Void an authorized charge: nothing is charged")
    @app_commands.describe(charge="charge ID", reason="reason")
    async def void(self, interaction: discord.Interaction, charge: str, reason: str) -> None:
        await self.bot.command(interaction, "void", {"charge": charge, "reason": reason})

    @app_commands.command(
        name="invoice", description="Our invoice for a gateway invoice: the PDF, or email it"
    )
    @app_commands.describe(
        invoice="gateway invoice ID (ledger:in_123)", action="show the PDF, or email it"
    )
    @app_commands.choices(action=_DOCUMENT_ACTIONS)
    async def invoice_(
        self, interaction: discord.Interaction, invoice: str, action: app_commands.Choice[str]
    ) -> None:
        await self.bot.command(interaction, "invoice", {"invoice": invoice, "action": action.value})

    @app_commands.command(description="The receipt for a paid charge, as a PDF, or email it")
    @app_commands.describe(charge="charge ID (ledger:ch_123)", action="PDF (default), or email it")
    @app_commands.choices(action=_DOCUMENT_ACTIONS)
    async def receipt(
        self,
        interaction: discord.Interaction,
        charge: str,
        action: app_commands.Choice[str] | None = None,
    ) -> None:
        raw = {"charge": charge, "action": action.value if action else None}
        await self.bot.command(interaction, "receipt", raw)

    @app_commands.command(description="Requests waiting for approval, or one request")
    @app_commands.describe(which="pending, all, mine, or a request ID")
    async def approvals(self, interaction: discord.Interaction, which: str | None = None) -> None:
        await self.bot.command(interaction, "approvals", {"which": which})

    @app_commands.command(description="Approve a request (not your own)")
    @app_commands.describe(id="request ID such as apr_0a1b2c3d4e5f")
    async def approve(self, interaction: discord.Interaction, id: str) -> None:
        await self.bot.command(interaction, "approve", {"id": id})

    @app_commands.command(description="Deny a request, with the reason the requester reads")
    @app_commands.describe(id="request ID", reason="why")
    async def deny(self, interaction: discord.Interaction, id: str, reason: str) -> None:
        await self.bot.command(interaction, "deny", {"id": id, "reason": reason})

    @app_commands.command(description="The audit log, newest first")
    @app_commands.describe(who="agent name or platform:id", since="7d, 24h or 2026-11-01")
    async def audit(
        self, interaction: discord.Interaction, who: str | None = None, since: str | None = None
    ) -> None:
        await self.bot.command(interaction, "audit", {"who": who, "since": since})

    @app_commands.command(description="New disputes and failed payments, newest first")
    @app_commands.describe(count="how many (1 to 50)")
    async def alerts(self, interaction: discord.Interaction, count: int | None = None) -> None:
        await self.bot.command(interaction, "alerts", {"count": count})

    @app_commands.command(
        name="verify", description="Prove which customer you are: your email, then the code we send"
    )
    @app_commands.describe(
        email="the email your billing is under: a code is sent there",
        code="the six-digit code from that email",
    )
    async def verify_(
        self, interaction: discord.Interaction, email: str | None = None, code: str | None = None
    ) -> None:
        await self.bot.command(interaction, "verify", {"email": email, "code": code})

    @app_commands.command(description="Your own billing, only to you; or one document as a PDF")
    @app_commands.describe(pdf="an invoice, payment or refund ID of yours: its PDF")
    async def me(self, interaction: discord.Interaction, pdf: str | None = None) -> None:
        raw = {"action": "pdf", "document": pdf} if pdf else {}
        await self.bot.command(interaction, "me", raw)

    @app_commands.command(description="A fresh link to your billing page, only to you")
    async def portal(self, interaction: discord.Interaction) -> None:
        await self.bot.command(interaction, "portal", {})

    @app_commands.command(description="Ask our billing team a question about your account")
    @app_commands.describe(question="what you would like to know")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        await self.bot.command(interaction, "ask", {"question": question})

    @app_commands.command(description="Who is verified as which customer")
    @app_commands.describe(who="an email, a chat user such as discord:1234, or a mention")
    async def links(self, interaction: discord.Interaction, who: str) -> None:
        await self.bot.command(interaction, "links", {"who": who})

    @app_commands.command(description="Revoke verified links: they see no billing any more")
    @app_commands.describe(
        who="an email, a chat user such as discord:1234, or a mention", reason="why"
    )
    async def unlink(self, interaction: discord.Interaction, who: str, reason: str) -> None:
        await self.bot.command(interaction, "unlink", {"who": who, "reason": reason})

    @refund.autocomplete("charge")
    @receipt.autocomplete("charge")
    @capture.autocomplete("charge")
    @void.autocomplete("charge")
    async def _charges(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self.bot.suggest(interaction, current, "charges")

    @cancel.autocomplete("subscription")
    async def _subscriptions(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self.bot.suggest(interaction, current, "subscriptions")
