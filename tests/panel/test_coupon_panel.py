"""Coupons in the agent panel: the card's Coupon button opens the core form, and a coupon's
name from the gateway reaches the page escaped."""

from __future__ import annotations

import pytest

from bot.actors import Role
from bot.store.tables import LedgerCoupon
from tests.conftest import person, say
from tests.panel.conftest import AGENT, Panel, buttons, text

pytestmark = [pytest.mark.storage, pytest.mark.approvals]


async def test_the_coupon_button_applies_a_coupon_within_the_agents_cap(panel: Panel):
    alex = await panel.enter(AGENT)
    card = (await alex.get("card")).text
    assert "Coupon sub_jane_pro" in buttons(card)
    assert "Coupon sub_jane_starter" not in buttons(card)  # canceled: nothing to discount
    form = await alex.click(card, "Coupon sub_jane_pro")
    assert form.status_code == 200, text(form.text)
    assert "Coupon or promotion code" in text(form.text)
    sent = await alex.fill(
        form.text, {"code": "WELCOME10", "reason_text": "goodwill for the late parcel"}
    )
    assert sent.status_code == 200, text(sent.text)
    assert "done" in text(sent.text).lower()
    shown = text((await alex.get("card")).text)
    assert "WELCOME10 (Welcome offer): 10% off for 3 months, on sub_jane_pro" in shown


async def test_a_hostile_coupon_name_is_escaped_on_the_panel_card(panel: Panel):
    async with panel.services.db.write() as s:
        s.add(LedgerCoupon(id="EVIL", name="*bold* <@U123> <script>alert(1)</script>",
                           percent_off_bp=500, duration="once", active=True))  # fmt: skip
    manager = person("maria", Role.manager)
    done = await say(panel.services, manager, "coupon sub_jane_pro EVIL reason: goodwill test")
    assert done.approval.state == "succeeded"
    page = (await (await panel.enter(AGENT)).get("card")).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
