"""`tax-id`, `address`, `name`: the customer details documents print, behind the approval policy.

Each is an action (bot/approvals/actions.py) with a policy table of its own: the
change is checked here before anyone approves it (a tax ID by its format and check
digits, `bot/tax_ids.py`, as the billing pages and the gateways check it; a gateway
that cannot hold it says so and why), audited, and run at the gateway once.

Documents already issued are never edited: a succeeded change offers (or, with
branding.toml `reissue = "automatic"`, makes) a credit note and a new document for
each invoice and receipt of this month (bot/documents/reissue.py).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from babel import Locale
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Button, Card, Reply, Section
from bot.commands.args import NOT_ASKED, Args, Asked, Reason, echo
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.documents.reissue import in_period, period_start
from bot.errors import UserError
from bot.gateways.base import Capability, ErrorCode, Gateway, GatewayError, LookupQuery
from bot.models import Address, GatewayProfile
from bot.tax_ids import checked_tax_id, normalize_tax_id


@functools.cache
def _territories() -> frozenset[str]:
    """The country codes Babel knows, read on first use: loading its English locale data
    costs about 4 MiB, which a process that never edits a customer should not hold."""
    return frozenset(Locale("en").territories)


def _one_line(value: str) -> str:
    """A name or an address line: printed on documents and cards, never a second line."""
    if any(not c.isprintable() for c in value):
        raise ValueError(f"{echo(value)} must be one line: no line breaks or tabs")
    return value


def _country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or not code.isalpha() or code not in _territories():
        raise ValueError(f"{echo(value)} is not a country code such as DE, FR or GB")
    return code


OneLine = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]  # fmt: skip
Country = Annotated[str, AfterValidator(_country)]
# An object ID, or a customer known by e-mail only (a WooCommerce guest: the card's buttons
# name them `woocommerce:gus@example.com`), so the gateway can say why it cannot change them.
CustomerRef = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        pattern=r"^([a-z][a-z0-9_-]{0,39}:)?([A-Za-z0-9][A-Za-z0-9_.\-]{1,99}"
        r"|[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,190}\.[A-Za-z]{2,63})$",
    ),
]
TaxIdText = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9:_.\-/]{1,63}$")
]
Mode = Annotated[
    Literal["add", "replace", "remove"],
    Asked(labels={
        "add": "Add it", "replace": "Replace the customer's tax IDs with it", "remove": "Remove it",
    }),
]  # fmt: skip
_MODES = ("add", "replace", "remove")


class TaxIdArgs(Args):
    customer: CustomerRef = Field(description="customer ID (ledger:cus_123)")
    tax_id: TaxIdText = Field(description="VAT/GST number: DE123456789 or eu_vat:DE123456789")
    mode: Mode = Field("add", description="add (the default), replace the others, or remove")
    reason: Reason = Field(description="why, for the audit log")
    again: Annotated[AgainRef | None, NOT_ASKED] = None

    @model_validator(mode="before")
    @classmethod
    def _mode_first(cls, data: Any) -> Any:
        """`tax-id cus_1 remove DE123…` types the mode before the number."""
        if not isinstance(data, dict):
            return data
        if str(data.get("tax_id") or "").lower() in _MODES and data.get("mode"):
            data = {**data, "tax_id": data["mode"], "mode": data["tax_id"]}
        if isinstance(data.get("mode"), str):
            data = {**data, "mode": data["mode"].lower()}
        return data


class AddressArgs(Args):
    customer: CustomerRef = Field(description="customer ID (ledger:cus_123)")
    line1: OneLine = Field(description="street and number")
    town: OneLine = Field(description="postal code and city: 10117 Berlin")
    country: Country = Field(description="country code: DE, FR, GB")
    line2: OneLine | None = Field(None, description="second line: building, floor, c/o")
    state: OneLine | None = Field(None, description="state, province or region")
    # Typed: `line1, [line2,] postal-code city, country`; forms ask for each part instead.
    address: Annotated[OneLine | None, NOT_ASKED] = None
    reason: Reason = Field(description="why, for the audit log")
    again: Annotated[AgainRef | None, NOT_ASKED] = None

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("address"), str):
            return {**data, **_split_address(data["address"]), "address": None}
        return data

    def as_address(self) -> Address:
        """`SW1A 2AA London`: the leading words with digits are the postal code."""
        words = self.town.split()
        code = []
        while words[:-1] and any(c.isdigit() for c in words[0]):
            code.append(words.pop(0))
        return Address(
            line1=self.line1, line2=self.line2, postal_code=" ".join(code) or None,
            city=" ".join(words), state=self.state, country=self.country,
        )  # fmt: skip


def _split_address(text: str) -> dict[str, str]:
    """`Friedrichstraße 68, 10117 Berlin, DE` -> line1, town, country; a fourth part, second
    of the four, is the second line."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) not in (3, 4):
        raise ValueError(
            f"{echo(text)}: write <street>, [<line 2>,] <postal code> <city>, <country>"
        )
    found = {"line1": parts[0], "town": parts[-2], "country": parts[-1]}
    if len(parts) == 4:
        found["line2"] = parts[1]
    return found


class NameArgs(Args):
    customer: CustomerRef = Field(description="customer ID (ledger:cus_123)")
    name: OneLine = Field(description="the name documents print: a person's or a company's")
    reason: Reason = Field(description="why, for the audit log")
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command(
    "tax-id",
    args=TaxIdArgs,
    usage="tax-id <customer> [replace|remove] <tax ID> reason: <text>",
    positional=("customer", "tax_id", "mode"),
)
async def tax_id(ctx: Context, args: TaxIdArgs) -> Reply:
    """Add, replace or remove a customer's VAT/GST number: `tax-id cus_123 DE123456789 reason: …`.

    The number is checked (format and check digits) before anyone approves it;
    `tax-id cus_123 replace FR40303265045 reason: …` removes the others once it is added;
    `tax-id cus_123 remove DE123456789 reason: …` removes one. A new number may change
    the tax on documents (reverse charge): this month's are offered for re-issue.
    """
    profile = await _profile(ctx, args.customer, Capability.tax_id)
    customer = profile.customer
    held = {normalize_tax_id(t.value): t for t in profile.tax_ids}
    if args.mode == "remove":
        number = normalize_tax_id(args.tax_id.rpartition(":")[2])
        if number not in held:
            raise UserError("not_found", f"{customer.id} has no tax ID {number}")
        value = number
    else:
        kind, number = checked_tax_id(
            args.tax_id, country=customer.country, gateway=profile.gateway, unchecked_types=True
        )
        if number in held and (args.mode == "add" or len(held) == 1):
            raise UserError("unchanged", f"{customer.id} has the tax ID {number} already")
        value = f"{kind}:{number}"
    return await _request(ctx, "tax-id", profile, args.reason, args.again,
                          {"tax_id": value, "mode": args.mode})  # fmt: skip


@command(
    "address",
    args=AddressArgs,
    usage="address <customer> <street>, <postal code> <city>, <country> reason: <text>",
    positional=("customer", "address"),
    tail=True,
)
async def address(ctx: Context, args: AddressArgs) -> Reply:
    """Change a customer's billing address: `address cus_123 Friedrichstraße 68, 10117 Berlin, DE reason: …`.

    The address replaces the whole one on file. Documents issued this month still show
    the old one: they are offered for re-issue (a credit note and a new document).
    """
    profile = await _profile(ctx, args.customer, Capability.customer_details)
    new = args.as_address()
    if profile.customer.address == new:
        raise UserError("unchanged", f"{profile.customer.id} has this address already")
    return await _request(ctx, "address", profile, args.reason, args.again,
                          {"address": new.model_dump(exclude_none=True)})  # fmt: skip


@command(
    "name",
    args=NameArgs,
    usage="name <customer> <name> reason: <text>",
    positional=("customer", "name"),
    tail=True,
)
async def name(ctx: Context, args: NameArgs) -> Reply:
    """Change the name a customer's documents print: `name cus_123 Acme GmbH reason: …`."""
    profile = await _profile(ctx, args.customer, Capability.customer_details)
    if profile.customer.name == args.name:
        raise UserError("unchanged", f"{profile.customer.id} is named {args.name} already")
    return await _request(ctx, "name", profile, args.reason, args.again, {"name": args.name})


async def _profile(ctx: Context, ref: str, capability: Capability) -> GatewayProfile:
    """The customer's profile at the one gateway holding them, refusing first (with the
    gateway's reason) where that gateway cannot make the change at all."""
    gateways = ctx.services.gateways
    if ":" in ref:
        gateways.get(ref.split(":", 1)[0]).require(capability)

    async def fetch(gateway: Gateway, object_id: str) -> GatewayProfile:
        for found in await gateway.lookup(LookupQuery("id", object_id)):
            if found.customer.id == object_id:
                return found
        raise GatewayError(ErrorCode.not_found, f"no customer {object_id}", gateway=gateway.name)

    gateway, profile = await gateways.locate(ref, fetch, "customer")
    gateway.require(capability)
    if capability == Capability.customer_details:
        # A change this customer can never take (a guest's details at WooCommerce) is
        # refused here, not after a manager approved it.
        await gateway.precheck_customer_details(profile.customer.id)
    return profile


async def _request(
    ctx: Context,
    action: str,
    profile: GatewayProfile,
    reason: str,
    again: str | None,
    params: dict[str, Any],
) -> Reply:
    customer = profile.customer
    reply = await request_action(ctx, ActionRequest(
        action=action, gateway=profile.gateway, target_id=customer.id, customer_id=customer.id,
        reason=reason, reason_code=reason_code(ctx, action, reason), params=params,
    ), again=again)  # fmt: skip
    if reply.approval is not None and reply.approval.state == "succeeded":
        reply.cards.append(await _documents_card(ctx, profile.gateway, customer.id))
    return reply


async def _documents_card(ctx: Context, gateway: str, customer_id: str) -> Card:
    """This month's documents, which still show the old details: re-issued, or offered."""
    async with ctx.services.db.read() as session:
        rows = await in_period(session, gateway, customer_id, since=period_start())
    numbers = [r.number for r in rows]
    if not numbers:
        text = "No invoice or receipt issued this month shows the old details."
        return Card(title="Documents", sections=[Section(text=text, tone="muted")])
    listed = ", ".join(numbers)
    if ctx.services.branding.reissue == "automatic":
        text = f"Re-issuing with the new details (a credit note and a new document each): {listed}"
        return Card(title="Documents", sections=[Section(text=text)])
    return Card(
        title="Documents",
        sections=[Section(text=f"Issued this month with the old details: {listed}. "
                          "Re-issue one: a credit note cancels it, a new one replaces it.")],
        actions=[Button(label=f"Re-issue {n}", command=f"reissue {n} reason: ") for n in numbers[:5]],
    )  # fmt: skip
