"""Forms: what a button asks before a command runs, described once for every platform.

A Slack modal or a Discord modal is drawn from a Form; what the user submits
comes back through `submit()`, which runs the very same command as typing it.
The form is filled from the gateway (the refundable amount, the reason codes of
the policy) so the person starts from the right answer.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, Field

from bot.approvals.workflow import check_may_decide
from bot.cards.model import Reply
from bot.commands.args import Asked
from bot.commands.refund import METHOD_LABELS
from bot.commands.router import COMMANDS, Command, Context, run
from bot.errors import UserError
from bot.gateways.base import Capability


class Choice(BaseModel):
    value: str
    label: str


class FormField(BaseModel):
    name: str
    label: str
    kind: Literal["text", "textarea", "select"] = "text"
    default: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    optional: bool = False
    hint: str | None = None


class Form(BaseModel):
    """A command with some arguments fixed (`given`) and the rest asked for (`fields`)."""

    command: str
    title: str
    submit_label: str
    given: dict[str, str] = Field(default_factory=dict)
    fields: list[FormField]


def _reason_fields(ctx: Context, action: str) -> list[FormField]:
    codes = ctx.services.policy.for_action(action).reason_codes
    fields = []
    if codes:
        fields.append(FormField(
            name="reason_code", label="Reason code", kind="select", default=codes[0],
            choices=[Choice(value=c, label=c.replace("_", " ").capitalize()) for c in codes],
        ))  # fmt: skip
    fields.append(
        FormField(
            name="reason_text",
            label="Reason",
            kind="textarea",
            hint="What happened, for the audit log",
        )
    )
    return fields


async def refund_form(ctx: Context, charge_ref: str) -> Form:
    """Refund a charge: the amount starts at what is still refundable; where the gateway
    records refunds paid back by hand (WooCommerce), the form asks which it is."""
    gateway, charge = await ctx.services.gateways.locate_charge(charge_ref)
    if charge.refundable.minor <= 0:
        raise UserError("invalid_state", f"charge {charge.id} has nothing left to refund")
    how = [
        FormField(name="method", label="How", kind="select", default="gateway",
                  choices=[Choice(value=v, label=text) for v, text in METHOD_LABELS.items()])
    ] if Capability.manual_refund in gateway.capabilities else []  # fmt: skip
    return Form(
        command="refund",
        title=f"Refund {charge.id}",
        submit_label="Request refund",
        given={"charge": f"{gateway.name}:{charge.id}"},
        fields=[
            FormField(
                name="amount", label=f"Amount ({charge.amount.currency})", default=charge.refundable.plain(),
                hint=f"Up to {charge.refundable.format(ctx.services.settings.locale)}",
            ),
            *how,
            *_reason_fields(ctx, "refund"),
        ],
    )  # fmt: skip


async def cancel_form(ctx: Context, subscription_ref: str) -> Form:
    """Cancel a subscription: at period end unless the agent says now."""
    gateway, sub = await ctx.services.gateways.locate_subscription(subscription_ref)
    return Form(
        command="cancel",
        title=f"Cancel {sub.id}",
        submit_label="Request cancellation",
        given={"subscription": f"{gateway.name}:{sub.id}"},
        fields=[
            FormField(name="when", label="When", kind="select", default="period-end", choices=[
                Choice(value="period-end", label="At the end of the paid period"),
                Choice(value="now", label="Now"),
            ]),
            FormField(name="refund", label="Refund (with Now)", kind="select", default="none",
                      choices=[
                Choice(value="none", label="No refund"),
                Choice(value="last", label="Refund the last payment"),
                Choice(value="prorated", label="Refund the unused part of the period"),
            ]),
            *_reason_fields(ctx, "cancel"),
        ],
    )  # fmt: skip


def coupon_form(ctx: Context, target_ref: str) -> Form:
    """Apply a coupon to a subscription or customer, or remove its discount."""
    return Form(
        command="coupon",
        title=f"Coupon on {target_ref.split(':', 1)[-1]}",
        submit_label="Request coupon",
        given={"target": target_ref},
        fields=[
            FormField(name="code", label="Coupon or promotion code",
                      hint="It is read from the gateway first; type remove to remove the discount"),
            *_reason_fields(ctx, "coupon"),
        ],
    )  # fmt: skip


def deny_form(approval_id: str) -> Form:
    """Deny a request: the requester reads the reason."""
    return Form(
        command="deny",
        title="Deny request",
        submit_label="Deny",
        given={"id": approval_id},
        fields=[FormField(name="reason", label="Why", kind="textarea")],
    )


def reason_form(spec: Command, given: dict[str, Any], title: str) -> Form:
    """A button whose command lacks only a reason (capture, void): ask for it."""
    fixed = {k: str(v) for k, v in given.items() if k != "reason" and v not in (None, "")}
    fields = []
    amount = spec.args.model_fields.get("amount")
    if amount is not None and "amount" not in fixed:
        whole = not amount.is_required()  # refund, capture: empty takes all of it
        hint = "Empty: the whole amount" if whole else "With its currency, like 12.50 EUR"
        fields.append(FormField(name="amount", label="Amount", optional=whole, hint=hint))
    fields += _open_fields(spec, fixed)
    fields.append(
        FormField(
            name="reason", label="Reason", kind="textarea", hint="What happened, for the audit log"
        )
    )
    verb = title.split(maxsplit=1)[0] if title.strip() else spec.name.capitalize()
    return Form(command=spec.name, title=title, submit_label=verb, given=fixed, fields=fields)


def _open_fields(spec: Command, fixed: dict[str, str]) -> list[FormField]:
    """The other arguments a button left open (`plan`'s new price, when, proration), as the
    command's Args model declares them: a choice for a Literal, text for the rest."""
    fields = []
    for name, info in spec.args.model_fields.items():
        if name in fixed or name in (*WRITTEN, "amount"):
            continue
        marker = next((m for m in info.metadata if isinstance(m, Asked)), Asked())
        if marker.never:
            continue
        label = info.description or name
        label = label[:1].upper() + label[1:]
        default = None if info.is_required() or info.default is None else str(info.default)
        values = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
        if values:
            choices = [Choice(value=v, label=marker.labels.get(v, v)) for v in values]
            fields.append(FormField(
                name=name, label=label, kind="select", default=default, choices=choices
            ))  # fmt: skip
        else:
            fields.append(FormField(
                name=name, label=label, default=default, optional=not info.is_required()
            ))  # fmt: skip
    return fields


def question_form() -> Form:
    """A customer's question for the billing team."""
    return Form(
        command="ask",
        title="Ask a question",
        submit_label="Send",
        fields=[
            FormField(
                name="question", label="Your question", kind="textarea",
                hint="Our billing team sees it with your account; only they read it",
            )
        ],
    )  # fmt: skip


# Arguments only a person can write: a button whose command lacks one opens a form for it.
WRITTEN = ("reason", "question")


def asks_first(spec: Command, raw: dict[str, Any]) -> bool:
    """Whether a button's command still needs something written (a reason, a question)."""
    return any(name in spec.args.model_fields and not raw.get(name) for name in WRITTEN)


async def form_for(ctx: Context, spec: Command, raw: dict[str, Any], title: str) -> Form:
    """The form a button opens for `spec` with the arguments it already carries."""
    if spec.name == "ask":
        return question_form()
    if spec.name == "refund":
        return await refund_form(ctx, str(raw["charge"]))
    if spec.name == "cancel":
        form = await cancel_form(ctx, str(raw["subscription"]))
        for field in form.fields:
            if field.name == "when" and raw.get("when"):
                field.default = str(raw["when"])
        return form
    if spec.name == "coupon":
        return coupon_form(ctx, str(raw["target"]))
    if spec.name == "deny":
        await check_may_decide(ctx.services, ctx.actor, str(raw["id"]))
        return deny_form(str(raw["id"]))
    if spec.name in ("tax-id", "address", "name"):
        return args_form(ctx, spec, raw, title)
    return reason_form(spec, raw, title)


def args_form(ctx: Context, spec: Command, raw: dict[str, Any], title: str) -> Form:
    """The arguments a button left open, the required ones first, then the policy's reason
    fields, then the optional ones: a Discord modal (five inputs) cuts only optional ones."""
    given = {k: str(v) for k, v in raw.items() if k != "reason" and v not in (None, "")}
    asked = _open_fields(spec, given)
    return Form(
        command=spec.name, title=title, submit_label="Request change", given=given,
        fields=[*(f for f in asked if not f.optional), *_reason_fields(ctx, spec.name),
                *(f for f in asked if f.optional)],
    )  # fmt: skip


async def submit(ctx: Context, form: Form, values: dict[str, Any]) -> Reply:
    """Run the form's command with what was submitted: the same path as typing it."""
    spec = COMMANDS[form.command]
    raw: dict[str, Any] = dict(form.given)
    known = {f.name for f in form.fields}
    for name, value in values.items():
        if name not in known:
            return Reply.fail("invalid_arguments", f"{form.command}: unexpected field {name}")
        if value not in (None, ""):
            raw[name] = value
    code, text = raw.pop("reason_code", None), raw.pop("reason_text", None)
    if text is not None or code is not None:
        raw["reason"] = " ".join(part for part in (code, text) if part)
    return await run(ctx, spec, raw)
