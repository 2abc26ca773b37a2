"""`reissue`: correct an issued document whose customer details changed, never edit it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from bot.cards.model import Card, Fact, Reply, Section
from bot.commands.args import Args, Reason
from bot.commands.router import Context, command
from bot.documents.reissue import reissue

DocumentNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")
]


class ReissueArgs(Args):
    number: DocumentNumber = Field(description="the document's number (INV-2026-000042)")
    reason: Reason = Field(description="why, printed on the credit note")


@command(
    "reissue",
    args=ReissueArgs,
    usage="reissue <number> reason: <text>",
    positional=("number",),
)
async def reissue_command(ctx: Context, args: ReissueArgs) -> Reply:
    """Re-issue an invoice or receipt with the customer's current details: `reissue INV-2026-000042 reason: …`.

    A credit note cancels it in full and a new document replaces it, each numbered
    in its own series and emailed to the customer; the tax is computed again (a VAT
    ID added since gives the reverse charge). Asking twice issues nothing twice;
    a document that would say the same again is refused.
    """
    fixed = await reissue(ctx.services, args.number, actor=ctx.actor, reason=args.reason)
    note, new = fixed.credit_note, fixed.replacement
    locale = ctx.services.settings.locale
    return Reply(cards=[Card(
        title=f"{args.number} re-issued as {new.number}",
        sections=[Section(facts=[
            Fact(label="Credit note", value=f"{note.number} ({note.gross.format(locale)})"),
            Fact(label="New document", value=f"{new.number} ({new.gross.format(locale)})"),
            Fact(label="Tax", value=new.content.treatment.value.replace("_", " ")),
            Fact(label="Emailed to", value=new.customer_email or "no email on file"),
        ])],
    )])  # fmt: skip
