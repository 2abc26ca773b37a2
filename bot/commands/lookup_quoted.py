"""What a customer quotes, for `lookup`: one of our documents, a name, part of an email.

- Our document number (`INV-2026-000042`, a receipt, a credit note) finds the document and
  shows its customer's card beside the document's, which links to its source object.
- A name or part of an email is asked of every gateway that can search that way (the others
  are "not asked", with why): one match shows that customer's card, several a pick list
  with one button per match (`lookup stripe:cus_1`), at most MAX_MATCHES, then "N more,
  narrow it down".
- In a shared channel (customers read it) no name or partial search runs: a list of
  customers is one adapter mistake away from being shown to a customer.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot import lookup_cache
from bot.actors import ChannelKind
from bot.cards.billing import profile_card
from bot.cards.model import Button, Card, Reply, Section, Table
from bot.commands.args import echo
from bot.commands.documents import document_card
from bot.commands.router import Context
from bot.documents.issue import IssuedDocument, find
from bot.documents.model import DocumentKind
from bot.errors import UserError
from bot.gateways.asking import NOT_ASKED
from bot.gateways.base import ErrorCode, LookupQuery
from bot.gateways.readings import BROAD_KINDS, MAX_MATCHES, partial_email_problem
from bot.index.search import PARTIAL_INDEX, searcher
from bot.models import BillingProfile, GatewayFailure, GatewayProfile


async def quoted(ctx: Context, text: str) -> Reply | None:
    """The answer for a document number, a name or part of an email; None for anything the
    ordinary lookup answers (an email, an ID, an order or invoice number of a gateway)."""
    document = await _document(ctx, text)
    if document is not None:
        return await _document_reply(ctx, document)
    readings = LookupQuery.readings(text)
    broad = [q for q in readings if q.kind in BROAD_KINDS]
    if not broad or ":" in text:
        return None
    if ctx.channel.kind == ChannelKind.shared:
        if len(broad) < len(readings):
            return None  # `Smith` is also an ID: asked as one, as before names were searched
        raise UserError(
            "shared_channel",
            "names and parts of emails are not searched in a channel customers can read: "
            "search in an internal channel, or look up the whole email or an ID",
        )
    for reading in broad:
        problem = partial_email_problem(reading.value) if reading.kind == "partial_email" else None
        if problem:
            raise UserError("usage", f"{echo(text)} is too broad: {problem}")
    found = await ctx.services.gateways.lookup(text, broad=True, index=searcher(ctx.services))
    matches = found.profiles
    if not matches:
        raise not_found(ctx, text, found.failures)
    if len(matches) == 1:
        profile = await lookup_cache.lookup(ctx.services, _ref(matches[0]))
        card = profile_card(profile, locale=ctx.services.settings.locale)
        card.sections += not_asked_sections(found.failures)  # last: "more" buttons count
        return Reply(cards=[card])
    return Reply(cards=[pick_list(text, matches, found.failures)])


async def one_match(ctx: Context, text: str) -> str:
    """What to look up for the card `text` showed (its "more" buttons): the customer of a
    document, the one customer a name or part of an email matched, or the text itself."""
    document = await _document(ctx, text)
    if document is not None:
        return _owner(document)
    if ":" in text or not any(q.kind in BROAD_KINDS for q in LookupQuery.readings(text)):
        return text
    found = await ctx.services.gateways.lookup(text, broad=True, index=searcher(ctx.services))
    return _ref(found.profiles[0]) if len(found.profiles) == 1 else text


# The code of a lookup that found nobody because a gateway timed out (worth asking again).
TIMED_OUT = "timeout"


def nobody(text: str, failures: Sequence[GatewayFailure], timeout: float | None = None) -> str:
    """`no customer matches X`, with the gateways not asked and why (never "no match" for
    a gateway that could not search that way); when a gateway that could search timed out
    or failed, nobody can say there is no match: `could not answer: … ; try again`."""
    down = unanswered(failures)
    if down:
        return f"could not answer: {'; '.join(_why(f, timeout) for f in down)}; try again"
    said = "; ".join(f.message for f in failures)
    return f"no customer matches {echo(text)}" + (f" (not asked: {said})" if said else "")


def unanswered(failures: Sequence[GatewayFailure]) -> list[GatewayFailure]:
    """The gateways that could have searched but timed out or failed: while there is one,
    nobody can say there is no match."""
    return [f for f in failures if f.code not in (NOT_ASKED, PARTIAL_INDEX)]


def _why(failure: GatewayFailure, timeout: float | None) -> str:
    if failure.code == ErrorCode.timeout and timeout is not None:
        return f"{failure.gateway} timed out after {timeout:g} s"
    return f"{failure.gateway}: {failure.message}"


def not_found(ctx: Context, text: str, failures: Sequence[GatewayFailure]) -> UserError:
    """The refusal of a lookup that found nobody: `not_found` only when every gateway that
    can search that way answered, else `timeout` (every one down only timed out) or
    `unavailable`: a busy or down gateway is no answer."""
    said = nobody(text, failures, ctx.services.gateways.timeout)
    down = unanswered(failures)
    if not down:
        return UserError("not_found", said)
    late = all(f.code == ErrorCode.timeout for f in down)
    return UserError(TIMED_OUT if late else "unavailable", said)


def not_asked_sections(failures: Sequence[GatewayFailure]) -> list[Section]:
    """A line per gateway not asked, searched only in its part-synced mirror, or down."""
    return [
        Section(title=f"{f.gateway}: not asked", text=f.message, tone="muted")
        if f.code == NOT_ASKED
        else Section(title=f"{f.gateway}: from the billing index", text=f.message, tone="muted")
        if f.code == PARTIAL_INDEX
        else Section(
            title=f"{f.gateway}: unavailable", text=f"{f.message} ({f.code})", tone="danger"
        )
        for f in failures
    ]


def pick_list(
    text: str, matches: Sequence[GatewayProfile], failures: Sequence[GatewayFailure]
) -> Card:
    """One row and one button per customer matching `text`, across gateways."""
    ordered = sorted(matches, key=lambda p: ((p.customer.name or "").casefold(), p.gateway))
    shown = ordered[:MAX_MATCHES]
    extra = len(ordered) - len(shown)
    # A gateway answering MAX_MATCHES + 1 has more than it said.
    full = any(
        sum(p.gateway == g for p in matches) > MAX_MATCHES for g in {p.gateway for p in matches}
    )
    more = f"{'at least ' if full else ''}{extra} more" if extra else ("more" if full else "")
    sections = [
        Section(
            table=Table(
                columns=["Name", "Email", "Customer"],
                rows=[[p.customer.name or "—", p.customer.email or "—", _ref(p)] for p in shown],
            )
        ),
        *not_asked_sections(failures),
    ]
    if more:
        sections.append(Section(text=f"{more}: narrow it down", tone="warning"))
    return Card(
        title=f"{len(shown)} customers match {text}" + (f" ({more})" if more else ""),
        subtitle="Pick one to see their billing",
        sections=sections,
        actions=[
            Button(label=f"{p.customer.name or p.customer.email or p.customer.id} ({p.gateway})",
                   command=f"lookup {_ref(p)}")
            for p in shown
        ],
    )  # fmt: skip


def _ref(profile: GatewayProfile) -> str:
    return f"{profile.gateway}:{profile.customer.id}"


# --- our documents ------------------------------------------------------------------------

_PDF = {
    DocumentKind.invoice: "invoice pdf {source}",
    DocumentKind.receipt: "receipt {source}",
}


async def _document(ctx: Context, text: str) -> IssuedDocument | None:
    """Our document whose number `text` is (`INV-2026-000042`, any case), if any."""
    for reading in LookupQuery.readings(text):
        if reading.kind == "invoice_number":
            document = await find(ctx.services.db, reading.value)
            if document is not None:
                return document
    return None


def _owner(document: IssuedDocument) -> str:
    """`gateway:customer` of a document (its source object where it names no customer)."""
    content = document.content
    who = content.customer_id or content.source_id
    return f"{content.source_gateway}:{who}"


async def _document_reply(ctx: Context, document: IssuedDocument) -> Reply:
    """The customer's card, then the document's: it links to its source object, and the
    customer's card names the document."""
    content = document.content
    source = f"{content.source_gateway}:{content.source_id}"
    owner = _owner(document)
    locale = ctx.services.settings.locale
    profile = await lookup_cache.lookup(ctx.services, owner)
    card = document_card(document, locale=locale)
    card.actions.append(Button(label=f"Show {content.source_id}", command=f"lookup {source}"))
    if document.kind in _PDF:
        card.actions.append(Button(label="PDF", command=_PDF[document.kind].format(source=source)))
    if not profile.found:
        card.sections.append(
            Section(text=f"{source} is not found now: "
                         f"{nobody(owner, profile.failures, ctx.services.gateways.timeout)}",
                    tone="warning")
        )  # fmt: skip
        return Reply(cards=[card])
    customer = profile_card(profile, locale=locale)
    customer.sections.append(Section(  # last: the card's "more" buttons count sections
        title=f"Found by {document.number}",
        text=f"{card.title}, for {source}", tone="success",
    ))  # fmt: skip
    return Reply(cards=[customer, card])


# --- what was quoted, named on the card ---------------------------------------------------


def found_by(profile: BillingProfile, text: str, locale: str) -> Section | None:
    """The refund or invoice the agent typed, named on the customer's card (its charge's row
    shows only a refunded total)."""
    typed = " ".join(text.split()).partition(":")[2] or text.strip()
    for part in profile.profiles:
        for refund in part.refunds:
            if refund.id == typed:
                return Section(
                    title=f"Refund {refund.id}",
                    text=f"{refund.amount.format(locale)} of charge {refund.charge_id}"
                    + (f" on {refund.created:%Y-%m-%d}" if refund.created else "")
                    + f" ({refund.status}"
                    + (f": {refund.reason})" if refund.reason else ")"),
                    tone="success",
                )
        for invoice in part.invoices:
            if typed in (invoice.id, invoice.number) or typed.upper() == invoice.number:
                return Section(
                    title=f"Invoice {invoice.number or invoice.id}",
                    text=f"{invoice.id}: {invoice.amount_due.format(locale)}, {invoice.status.value}",
                    tone="success",
                )
    return None
