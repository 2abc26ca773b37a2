"""Forms start from the right answer and submit through the same command as typing."""

from __future__ import annotations

from bot.commands.forms import cancel_form, deny_form, refund_form, submit
from bot.commands.router import Context
from tests.conftest import CHANNEL


async def test_refund_form_is_prefilled_with_what_is_refundable(services, agent):
    ctx = Context(services, agent, CHANNEL)
    form = await refund_form(ctx, "ch_jane_2")  # 49.00 with 19.00 refunded
    amount = next(f for f in form.fields if f.name == "amount")
    assert amount.default == "30.00 EUR" and "€30.00" in (amount.hint or "")
    codes = next(f for f in form.fields if f.name == "reason_code")
    assert [c.value for c in codes.choices][:3] == [
        "duplicate",
        "fraudulent",
        "requested_by_customer",
    ]
    assert form.given == {"charge": "ledger:ch_jane_2"}


async def test_submitting_a_refund_form_runs_the_refund_command(services, agent):
    ctx = Context(services, agent, CHANNEL)
    form = await refund_form(ctx, "ch_jane_1")
    reply = await submit(
        ctx, form, {"amount": "20", "reason_code": "goodwill", "reason_text": "late parcel"}
    )
    assert reply.approval.state == "succeeded"
    too_much = await submit(
        ctx, form, {"amount": "500", "reason_code": "goodwill", "reason_text": "x y z"}
    )
    assert too_much.error.code == "amount_too_large"
    forged = await submit(
        ctx, form, {"charge": "ledger:ch_john_2", "reason_code": "goodwill", "reason_text": "x"}
    )
    assert forged.error.code == "invalid_arguments"  # the fixed arguments cannot be overridden


async def test_cancel_and_deny_forms(services, agent, manager):
    ctx = Context(services, agent, CHANNEL)
    form = await cancel_form(ctx, "sub_jane_pro")
    assert next(f for f in form.fields if f.name == "when").default == "period-end"
    pending = await submit(
        ctx, form, {"when": "now", "reason_code": "requested_by_customer", "reason_text": "moving"}
    )
    assert pending.approval.state == "pending"
    denied = await submit(
        Context(services, manager, CHANNEL), deny_form(pending.approval.id), {"reason": "keep them"}
    )
    assert denied.approval.state == "denied"


async def test_nothing_to_refund_is_said_before_the_form_opens(services, agent):
    from bot.errors import UserError

    try:
        await refund_form(Context(services, agent, CHANNEL), "ch_john_1")
    except UserError as exc:
        assert exc.code == "invalid_state"
    else:
        raise AssertionError("a fully refunded charge has no refund form")


async def test_deny_form_is_refused_up_front_in_the_words_of_the_workflow(services, agent, manager):
    from bot.commands.forms import form_for
    from bot.commands.router import COMMANDS
    from bot.errors import UserError

    reply = await submit(Context(services, agent, CHANNEL), await refund_form(Context(services, agent, CHANNEL), "ch_jane_1"),
                         {"amount": "80", "reason_code": "duplicate", "reason_text": "charged twice"})  # fmt: skip
    approval_id = reply.approval.id
    own = Context(services, agent, CHANNEL)
    for ctx, code in ((own, "own_request"), (Context(services, manager, CHANNEL), None)):
        try:
            form = await form_for(ctx, COMMANDS["deny"], {"id": approval_id}, "Deny")
        except UserError as exc:
            assert exc.code == code
        else:
            assert code is None and form.command == "deny"
