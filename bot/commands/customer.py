"""Customer self-service: `verify`, `me`, `portal`, `ask`, privately, for a verified customer only.

A chat user sees billing only after proving they read the mailbox of the email
on file (`bot/identity.py`). Then they see exactly the gateway profiles whose
customer email is that email, nothing else: a near match, another customer's ID
or a gateway that cannot be asked never shows anything (fail closed). Every
answer is for the asker's eyes only, wherever they typed, and every action
lands in the audit log.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bot import identity, lookup_cache, questions
from bot.actors import Role
from bot.audit.log import AuditRecord, append
from bot.billing_links import issue_link
from bot.cards.customer import billing_card, document_card, self_service
from bot.cards.model import Attachment, Button, Card, Reply, Section
from bot.commands.args import NOT_ASKED, Args, Asked, ObjectRef, echo
from bot.commands.router import Context, command
from bot.documents import on_demand
from bot.documents.issue import IssuedDocument
from bot.errors import UserError
from bot.models import BillingProfile

log = logging.getLogger(__name__)

# Customers, and agents who are customers too: what anyone sees here is only their own.
SELF = (Role.customer, Role.agent)
NOT_VERIFIED = "verify your email first: `verify <email>`"
VERIFY_USAGE = "verify <email|code>"
ME_USAGE = "me [pdf <invoice, payment or refund>]"
PDF = "application/pdf"
# Refusals of a code that was checked: worth an audit entry (someone may be guessing).
_CHECKED = ("no_code", "code_expired", "wrong_code", "code_used_up")


class VerifyArgs(Args):
    email: str | None = Field(
        None, max_length=320, description="the email your billing is under: a code is sent there"
    )
    code: str | None = Field(None, max_length=20, description="the six-digit code from that email")

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: object) -> object:
        # Typed as one word (`verify jane@example.com`, `verify 123456`): its shape says which.
        if isinstance(data, dict) and "value" in data:
            data = dict(data)
            value = str(data.pop("value") or "").strip()
            data["email" if "@" in value else "code"] = value
        return data


class MeArgs(Args):
    # `me pdf <id>`: a form asks only for the document, as `pdf`, and the action follows.
    action: Annotated[Literal["pdf"] | None, NOT_ASKED] = None
    document: Annotated[ObjectRef | None, Asked(name="pdf", implies={"action": "pdf"})] = Field(
        None, description="an invoice, payment or refund ID of yours: its PDF"
    )

    @field_validator("action", mode="before")
    @classmethod
    def _known(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() != "pdf":
            raise ValueError(f"{echo(value)} is not pdf: {ME_USAGE}")
        return value.strip().lower() if isinstance(value, str) else value


class NoArgs(Args):
    pass


class AskArgs(Args):
    question: str = Field(
        min_length=1, max_length=questions.MAX_LENGTH, description="what you would like to know"
    )


@command(
    "verify", args=VerifyArgs, usage=VERIFY_USAGE, roles=SELF, positional=("value",), private=True
)
async def verify(ctx: Context, args: VerifyArgs) -> Reply:
    """Prove which customer you are: `verify <email>`, then `verify <code>` from the email we send.

    The code goes to the address only if it is on file for billing; the answer
    is the same either way. A code works once, for a few minutes. Once verified,
    `me` shows your own billing, to you only.
    """
    if (args.email is None) == (args.code is None):
        raise UserError(
            "usage", f"give your email, or the six-digit code from the email: {VERIFY_USAGE}"
        )
    if args.email is not None:
        email = identity.normalize_email(args.email)
        said = await identity.send_code(ctx.services, ctx.actor.key, email)
        await _audit(ctx, "verification_requested", "requested", email=email)
        return Reply(
            cards=[Card(title="Check your mailbox", sections=[Section(text=_sentence(said))])]
        )
    assert args.code is not None
    try:
        email = await identity.verify(ctx.services, ctx.actor, args.code)
    except UserError as exc:
        if exc.code in _CHECKED:
            await _audit(ctx, "customer_verified", "refused", refusal=exc.code)
        raise
    return Reply(cards=[Card(
        title=f"You are verified as {email}",
        tone="success",
        sections=[Section(text="`me` shows your payments, subscriptions and invoices, to you only.")],
        actions=[Button(label="My billing", command="me", style="primary"), *self_service()],
    )])  # fmt: skip


@command(
    "me", args=MeArgs, usage=ME_USAGE, roles=SELF, positional=("action", "document"), private=True
)
async def me(ctx: Context, args: MeArgs) -> Reply:
    """Your own payments, subscriptions, invoices and refunds, or one of them as a PDF.

    Only you see the answer, wherever you ask. `me pdf in_123` is the invoice,
    `me pdf ch_123` the receipt of a payment, `me pdf re_123` the credit note of
    a refund. Verify your email first: `verify <email>`.
    """
    email = await _verified(ctx)
    if args.action == "pdf" or args.document is not None:
        if args.action is None or args.document is None:
            raise UserError("usage", f"name the invoice, payment or refund: {ME_USAGE}")
        return await _document(ctx, email, args.document)
    profile = own(await lookup_cache.lookup(ctx.services, email), email)
    await _audit(
        ctx, "customer_viewed_billing", "shown", email=email,
        gateways=sorted({p.gateway for p in profile.profiles}),
        unavailable=sorted(f.gateway for f in profile.failures),
    )  # fmt: skip
    return Reply(cards=[billing_card(profile, email, locale=ctx.services.settings.locale)])


@command("portal", args=NoArgs, usage="portal", roles=SELF, private=True)
async def portal(ctx: Context, args: NoArgs) -> Reply:
    """A fresh link to your billing page: invoices, receipts and your card, in the browser.

    The link is for you only: anyone who has it sees your billing until it
    expires. Verify your email first: `verify <email>`.
    """
    email = await _verified(ctx)
    url = await issue_link(ctx.services, email, issued_by=ctx.actor.key)
    # The grant ID names the link in the audit log; the link itself is a key and stays out.
    grant = url.rsplit("/", 1)[-1].split(".", 1)[0]
    await _audit(ctx, "portal_link_issued", "issued", email=email, grant=grant)
    days = ctx.services.settings.portal.link_days
    return Reply(cards=[Card(
        title="Your billing page",
        subtitle="only you can see this link",
        # The link is the button (and its text in the terminal): shown once, not twice.
        sections=[Section(
            text=f"It opens your billing page for {days} days. Keep it to yourself: "
            "whoever has it sees your billing.",
        )],
        actions=[Button(label="Open billing page", url=url, style="primary")],
    )])  # fmt: skip


@command("ask", args=AskArgs, usage="ask <question>", roles=SELF, positional=("question",),
         private=True, greedy=True)  # fmt: skip
async def ask(ctx: Context, args: AskArgs) -> Reply:
    """Ask our billing team a question about your account: `ask why was I charged twice?`

    The team gets your question with your billing, in their own channel, and
    answers you. Verify your email first: `verify <email>`.
    """
    email = await _verified(ctx)
    await questions.ask(ctx.services, ctx.actor, email, args.question, source=ctx.channel.platform)
    return Reply(cards=[Card(
        title="Question sent",
        tone="success",
        sections=[Section(text="Our billing team has your question and your account details; "
                               "they will get back to you.")],
    )])  # fmt: skip


# --- the rules ------------------------------------------------------------------------


def own(profile: BillingProfile, email: str) -> BillingProfile:
    """Only the gateway profiles whose customer email is `email` itself: never a near match."""
    mine = tuple(p for p in profile.profiles if (p.customer.email or "").strip().lower() == email)
    return profile.model_copy(update={"profiles": mine})


async def _verified(ctx: Context) -> str:
    email = await identity.linked_email(ctx.services, ctx.actor)
    if email is None:
        raise UserError("not_verified", NOT_VERIFIED)
    return email


async def _document(ctx: Context, email: str, ref: str) -> Reply:
    """A PDF of the customer's own invoice, payment or refund; anything else is unknown to them."""
    gateway, _, object_id = ref.rpartition(":")
    profile = own(await ctx.services.gateways.lookup(email), email)

    def named(item: object) -> bool:
        return getattr(item, "id", None) == object_id and gateway in (
            "",
            getattr(item, "gateway", None),
        )

    document: IssuedDocument | None = None
    if invoice := next((i for i in profile.invoices() if named(i)), None):
        document = await on_demand.invoice(
            ctx.services, f"{invoice.gateway}:{invoice.id}", actor=ctx.actor
        )
    elif charge := next((c for c in profile.charges() if named(c)), None):
        document = await on_demand.receipt(
            ctx.services, f"{charge.gateway}:{charge.id}", actor=ctx.actor
        )
    elif refund := next((r for p in profile.profiles for r in p.refunds if named(r)), None):
        document = await on_demand.credit_note(
            ctx.services, f"{refund.gateway}:{refund.charge_id}", refund.id, actor=ctx.actor
        )
    if document is not None and (document.customer_email or email).strip().lower() != email:
        # The gateway names another buyer on the document than on the profile: show nothing.
        log.warning(
            "document %s names another email than %s's profile", document.number, ctx.actor.key
        )
        document = None
    if document is None:
        # The same words whether the object is someone else's or does not exist at all.
        await _audit(ctx, "customer_document", "refused", email=email, asked=ref)
        down = ", ".join(f.gateway for f in profile.failures)
        raise UserError(
            "not_found",
            f"no invoice, payment or refund {ref} on your account"
            + (f" ({down} could not be asked: try again later)" if down else ""),
        )
    await _audit(
        ctx, "customer_document", "sent", email=email, asked=ref, number=document.number,
        gateway=document.content.source_gateway, object_id=document.content.source_id,
    )  # fmt: skip
    return Reply(
        cards=[document_card(document, locale=ctx.services.settings.locale)],
        files=[Attachment(name=document.filename, mime=PDF, content=document.pdf)],
    )


async def _audit(
    ctx: Context, action: str, outcome: str, *, gateway: str | None = None,
    object_id: str | None = None, **detail: object,
) -> None:  # fmt: skip
    async with ctx.services.db.write() as session:
        await append(session, AuditRecord(
            actor=ctx.actor, action=action, outcome=outcome, gateway=gateway,
            object_id=object_id, detail={"channel": ctx.channel.kind.value, **detail},
        ))  # fmt: skip


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
