"""Finding customers in the billing index: by name, part of an email, invoice or order number.

One indexed query across every mirrored gateway at once; it answers who (gateway, customer
ID, name, email), never what they owe: the card is read live from the gateway by that ID.
A gateway that cannot search a kind itself is found here; how complete and fresh its mirror
is (its `SyncCursor`s) is said beside the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased

from bot.gateways.base import LookupQuery
from bot.gateways.readings import MAX_MATCHES, email_pattern, folded, like_escaped
from bot.models import GatewayFailure
from bot.services import Services
from bot.store.tables import IndexedObject, SyncCursor

log = logging.getLogger(__name__)

# The code of a line saying a gateway was searched in its mirror, which is not complete yet.
PARTIAL_INDEX = "partial_index"


@dataclass(frozen=True)
class Hit:
    """A customer the index holds for what was typed."""

    gateway: str
    customer_id: str
    name: str | None
    email: str | None


@dataclass(frozen=True)
class Mirror:
    """How far one gateway's mirror of one kind of object got."""

    done: bool
    synced: int
    updated: datetime


@dataclass
class IndexAnswer:
    """The customers found, and how far each gateway's mirror got (its sync cursors)."""

    hits: list[Hit] = field(default_factory=list)
    mirrors: dict[tuple[str, str], Mirror] = field(default_factory=dict)  # (gateway, kind)

    def instead_of(self, lacking: GatewayFailure) -> GatewayFailure | None:
        """A gateway's "cannot search by name" line once its mirror was searched instead:
        gone when the mirror is complete, else saying how far it got and when."""
        mirror = self.mirrors.get((lacking.gateway, "customer"))
        if mirror is None:
            return lacking
        if mirror.done:
            return None
        held = f"{mirror.synced:,} customer{'' if mirror.synced == 1 else 's'}"
        return GatewayFailure(
            gateway=lacking.gateway,
            code=PARTIAL_INDEX,
            message=f"{lacking.message} itself: its billing index was searched instead, "
            f"which is not complete yet ({held}, the last synced "
            f"{mirror.updated:%Y-%m-%d %H:%M} UTC)",
        )


def indexed_kinds(queries: Sequence[LookupQuery]) -> list[LookupQuery]:
    """The readings the index answers: names, parts of emails, invoice numbers, and order
    numbers (an ID of digits only: `order #1234`, `1234`)."""
    return [
        q
        for q in queries
        if q.kind in ("name", "partial_email", "invoice_number")
        or (q.kind == "id" and q.value.isdigit())
    ]


async def find(
    services: Services, queries: Sequence[LookupQuery], gateways: Sequence[str]
) -> IndexAnswer:
    """Customers of `gateways` the index holds for any of `queries`, at most MAX_MATCHES + 1,
    by name; with every mirror's state. An index that cannot be read answers nothing (the
    gateways asked live still answer)."""
    asked = indexed_kinds(queries)
    if not asked or not gateways:
        return IndexAnswer()
    try:
        async with services.db.read() as session:
            rows = (await session.execute(search_statement(asked, gateways))).all()
            cursors = await session.scalars(
                select(SyncCursor).where(SyncCursor.gateway.in_(gateways))
            )
            mirrors = {
                (c.gateway, c.kind): Mirror(done=c.done, synced=c.synced, updated=c.updated)
                for c in cursors
            }
    except SQLAlchemyError:
        log.exception("the billing index could not be searched; the gateways answer alone")
        return IndexAnswer()
    # Numbers are matched in every gateway (so `number`'s index alone answers them): the
    # gateways not asked, and objects of no customer, are left out here.
    hits = list(dict.fromkeys(Hit(*r[:4]) for r in rows if r[0] in gateways and r[1]))
    return IndexAnswer(hits=hits, mirrors=mirrors)


def search_statement(queries: Sequence[LookupQuery], gateways: Sequence[str]) -> Select[Any]:
    """One query: the matching rows joined to their customer's row (a charge or an invoice
    carries no name). Each condition starts with an index's leading columns: `kind` for
    names and emails (ix_billing_index_people, read alone), `number`, and the primary key
    (`gateway`, `kind`, `object_id`) for an order's charge."""
    row = IndexedObject
    who = aliased(IndexedObject)
    customers = and_(row.kind == "customer", row.gateway.in_(gateways))
    found = []
    for q in queries:
        if q.kind == "name":
            found.append(
                and_(
                    customers, row.name_key.like(f"%{like_escaped(folded(q.value))}%", escape="\\")
                )
            )
        elif q.kind == "partial_email":
            found.append(and_(customers, row.email.like(email_pattern(q.value), escape="\\")))
        elif q.kind == "invoice_number":
            found.append(row.number == q.value)
        elif q.kind == "id":  # an order number: its charge, or an object numbered so
            found.append(
                or_(
                    and_(row.gateway.in_(gateways), row.kind == "charge", row.object_id == q.value),
                    row.number == q.value,
                )
            )
    return (
        # DISTINCT: one customer may match by several rows; PostgreSQL wants the order in it.
        select(row.gateway, row.customer_id, who.name, who.email, who.name_key)
        .join(
            who,
            and_(
                who.gateway == row.gateway,
                who.kind == "customer",
                who.object_id == row.customer_id,
            ),
            isouter=True,
        )
        .where(or_(false(), *found))
        .order_by(who.name_key, row.gateway, row.customer_id)
        .distinct()
        .limit(MAX_MATCHES + 1)
    )


def searcher(
    services: Services,
) -> Callable[[Sequence[LookupQuery], Sequence[str]], Awaitable[IndexAnswer]]:
    """The index search a lookup asks beside the gateways (Gateways.lookup's `index`)."""

    async def search(queries: Sequence[LookupQuery], gateways: Sequence[str]) -> IndexAnswer:
        return await find(services, queries, gateways)

    return search
