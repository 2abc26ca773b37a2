"""Gateway webhooks: verify, record once, and act on what happened outside the bot.

- Each event is processed once: its ID is stored in `processed_events` in the
  same transaction as everything it causes, so a redelivery does nothing.
- Events can arrive out of order: `gateway_object_state` keeps the newest
  event time per object, and an older event never overwrites it.
- Refunds and captures made outside the bot go into the audit log as
  `external`; ours (known by idempotency key or result ID) are already there.
- New disputes and failed payments queue an alert card for the alerts channel.
- Every new event goes to the services' listeners, inside its transaction and
  after it (receipts and credit notes are requested that way).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import lookup_cache, metrics
from bot.actors import Actor, Role
from bot.audit.log import AuditRecord, append
from bot.cards.disputes import dispute_buttons
from bot.cards.model import Button, Card, Fact, Section
from bot.gateways.base import Capability, WebhookRejected
from bot.gateways.events import EventKind, GatewayEvent
from bot.notify import queue
from bot.services import Services
from bot.store.tables import ApprovalRow, GatewayObjectState, ProcessedEvent

log = logging.getLogger(__name__)

_ALERTS = {EventKind.dispute_created: "New dispute", EventKind.payment_failed: "Payment failed"}
# Stripe's largest events are a few hundred KB; a bigger body is refused before it is read
# whole (bot/web.py answers 413) and, whoever calls `receive`, before any signature check.
MAX_BODY = 1024 * 1024


def gateway_actor(gateway: str) -> Actor:
    """Who acted when money moved outside the bot: the gateway, as far as we can tell."""
    return Actor(
        platform="gateway",
        id=gateway,
        name=f"{gateway} (outside ChargeDesk)",
        roles=frozenset({Role.admin}),
    )


async def receive(
    services: Services, gateway_name: str, body: bytes, headers: Mapping[str, str]
) -> list[str]:
    """Verify one delivery and process its events; returns each event's outcome.

    Raises WebhookRejected (answer 400) for a forged or stale signature, before anything changes.
    """
    gateway = services.gateways.get(gateway_name)
    if len(body) > MAX_BODY:
        raise WebhookRejected(gateway_name, f"a delivery has at most {MAX_BODY:,} bytes")
    events = await gateway.parse_webhook(body, headers)
    outcomes = [await process(services, event) for event in events]
    for event, outcome in zip(events, outcomes, strict=True):
        metrics.webhook_received(event.gateway, event.created, outcome)
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome != "processed":
            continue
        for listener in services.listeners:
            try:
                await listener.after_event(services, event)
            except Exception:  # must not make the gateway redeliver a processed event
                log.exception("listener %s failed after %s", type(listener).__name__, event.id)
    return outcomes


async def process(services: Services, event: GatewayEvent) -> str:
    """Record and act on one event: `processed`, `duplicate` or `outdated`."""
    for _ in range(3):
        try:
            outcome = await _process_once(services, event)
        except IntegrityError:
            # Another delivery inserted the same event or the same object's first state
            # row at the same moment: look again, now that its row is committed.
            continue
        log.info("%s event %s (%s) %s", event.gateway, event.id, event.raw_type, outcome)
        if outcome == "processed":
            await lookup_cache.forget(services, event.gateway, event.customer_id)
        return outcome
    raise RuntimeError(f"event {event.id} kept colliding with concurrent deliveries")


async def _process_once(services: Services, event: GatewayEvent) -> str:
    async with services.db.write() as session:
        if await session.get(ProcessedEvent, (event.gateway, event.id)) is not None:
            return "duplicate"
        outcome = "processed" if await _newest(session, event) else "outdated"
        if outcome == "processed":
            await _act(services, session, event)
        session.add(ProcessedEvent(
            gateway=event.gateway, event_id=event.id, kind=event.kind.value, raw_type=event.raw_type,
            object_id=event.object_id, created=event.created, outcome=outcome, processed_at=datetime.now(UTC),
        ))  # fmt: skip
        await session.flush()
    return outcome


async def _newest(session: AsyncSession, event: GatewayEvent) -> bool:
    """Remember the newest state per object; False if we already hold a newer one."""
    state = await session.get(
        GatewayObjectState, (event.gateway, event.object_id), with_for_update=True
    )
    if state is None:
        session.add(GatewayObjectState(
            gateway=event.gateway, object_id=event.object_id, status=event.status,
            event_id=event.id, event_created=event.created,
        ))  # fmt: skip
        return True
    if event.created < state.event_created:
        return False
    state.status, state.event_id, state.event_created = event.status, event.id, event.created
    return True


async def _act(services: Services, session: AsyncSession, event: GatewayEvent) -> None:
    if event.kind in (EventKind.refund, EventKind.capture) and not await _ours(session, event):
        await append(session, AuditRecord(
            actor=gateway_actor(event.gateway), action=event.kind.value, outcome="external",
            gateway=event.gateway, object_id=event.related_id or event.object_id, customer_id=event.customer_id,
            amount=event.amount, reason=f"made outside ChargeDesk ({event.raw_type})",
            gateway_request_id=event.object_id, detail={"event_id": event.id, "status": event.status},
        ))  # fmt: skip
    elif event.kind == EventKind.subscription_canceled:
        await append(session, AuditRecord(
            actor=gateway_actor(event.gateway), action="cancel", outcome="canceled_at_gateway",
            gateway=event.gateway, object_id=event.object_id, customer_id=event.customer_id,
            detail={"event_id": event.id},
        ))  # fmt: skip
    if event.kind in _ALERTS:
        gateway = services.gateways.by_name.get(event.gateway)
        answerable = gateway is not None and Capability.dispute_evidence in gateway.capabilities
        card = alert_card(event, services.settings.locale, answerable=answerable)
        await queue(session, kind=event.kind.value, card=card,
                    channel=services.settings.alerts_channel)  # fmt: skip
    for listener in services.listeners:
        await listener.record_event(services, session, event)


async def _ours(session: AsyncSession, event: GatewayEvent) -> bool:
    """Did an approved ChargeDesk action cause this? (by idempotency key or the object it produced)"""
    conditions = [ApprovalRow.result_id == event.object_id]
    if event.idempotency_key:
        conditions.append(ApprovalRow.id == event.idempotency_key)
    found = await session.scalar(select(ApprovalRow.id).where(or_(*conditions)).limit(1))
    return found is not None


def alert_card(event: GatewayEvent, locale: str, *, answerable: bool = False) -> Card:
    """The alert for a new dispute or a failed payment; `answerable`: the gateway takes
    answers to disputes, so the card offers them."""
    facts = [
        Fact(label="Gateway", value=event.gateway),
        Fact(label="Object", value=event.object_id),
    ]
    if event.related_id:
        facts.append(Fact(label="Charge", value=event.related_id))
    if event.customer_id:
        facts.append(Fact(label="Customer", value=event.customer_id))
    if event.amount:
        facts.append(Fact(label="Amount", value=event.amount.format(locale)))
    disputed = event.kind == EventKind.dispute_created
    if disputed and event.status:
        facts.append(Fact(label="Status", value=event.status))
    for key, value in event.detail.items():
        facts.append(Fact(label=key.replace("_", " ").capitalize(), value=str(value)))
    lookup = event.customer_id or event.related_id or event.object_id
    return Card(
        title=f"{_ALERTS[event.kind]}: {event.gateway} {event.object_id}",
        subtitle=f"{event.raw_type} at {event.created:%Y-%m-%d %H:%M} UTC",
        tone="danger",
        sections=[Section(facts=facts)],
        actions=[Button(label="Look up", command=f"lookup {lookup}")]
        + (dispute_buttons(event.gateway, event.object_id) if disputed and answerable else []),
    )
