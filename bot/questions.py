"""A customer's billing question, delivered to the agents with the customer's card.

The question is queued in SQL (the alerts outbox, `bot/notify.py`) for the
`questions_channel` (default: `alerts_channel`), whose platform adapter posts
it; agents answer in its thread. Every question is in the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.actors import Actor
from bot.audit.log import AuditRecord, append
from bot.cards.billing import profile_card
from bot.cards.model import Card, Fact, Section
from bot.errors import UserError
from bot.identity import limit
from bot.notify import queue
from bot.services import Services

MAX_LENGTH = 2000
PER_HOUR = 10  # per asker: enough for a conversation, not for flooding the helpdesk


async def ask(services: Services, actor: Actor, email: str, question: str, *, source: str) -> Card:
    """Queue `question` from the verified customer `email`; returns the card the agents get."""
    text = question.strip()
    if not text:
        raise UserError("empty_question", "write your question first")
    if len(text) > MAX_LENGTH:
        raise UserError("question_too_long", f"a question may have at most {MAX_LENGTH} characters")
    await limit(services, "ask", actor.key, PER_HOUR, "many questions were asked this hour")
    profile = await services.gateways.lookup(email)
    customer = profile_card(profile, locale=services.settings.locale)
    card = Card(
        title=f"Billing question from {profile.name or email}",
        subtitle=f"{email} · via {source} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        tone="warning",
        sections=[
            Section(text=text),
            Section(facts=[Fact(label="Customer", value=email)]),
            *customer.sections,
        ],
        actions=customer.actions,
    )
    channel = services.settings.questions_channel or services.settings.alerts_channel
    async with services.db.write() as session:
        await queue(session, kind="question", card=card, channel=channel)
        await append(session, AuditRecord(
            actor=actor, action="customer_question", outcome="queued",
            detail={"email": email, "source": source, "channel": channel or "-"},
        ))  # fmt: skip
    return card
