"""An email address with a line break (or a second address) in it is refused in one line.

It would start new headers (`Bcc: someone@else`) in the email; whether it comes
from a gateway's customer record or is typed by a customer, the answer names
the problem and nothing is queued, never "failed on our side".
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from bot.actors import Actor
from bot.cards.model import Reply
from bot.services import Services
from bot.store.tables import EmailRow, LedgerCustomer, PortalGrant
from tests.conftest import say

pytestmark = pytest.mark.storage

INJECTED = [
    "john.smith@example.com\r\nBcc: thief@evil.example",
    "john.smith@example.com\nBcc: thief@evil.example",
    "john.smith@example.com\rX-Injected: 1",
    "john.smith@example.com\u2028Bcc: thief@evil.example",
    "john.smith@example.com, thief@evil.example",
    "John <john.smith@example.com>\r\n",
]


def one_line_refusal(reply: Reply, code: str) -> None:
    assert reply.error is not None
    assert reply.error.code == code, reply.error.message
    assert "\n" not in reply.error.message and "\r" not in reply.error.message
    assert "on our side" not in reply.error.message


async def count(services: Services, table: type) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize("email", INJECTED)
@pytest.mark.parametrize("line", ["invoice send in_john_paid", "receipt ch_john_2 send"])
async def test_a_customer_email_with_a_line_break_is_refused_in_one_line(
    services, agent: Actor, email, line
):
    async with services.db.write() as s:
        await s.execute(
            update(LedgerCustomer).where(LedgerCustomer.id == "cus_john").values(email=email)
        )

    reply = await say(services, agent, line)

    one_line_refusal(reply, "bad_email")
    assert "not a usable address" in reply.error.message
    assert await count(services, EmailRow) == 0 and await count(services, PortalGrant) == 0


@pytest.mark.parametrize(
    "typed", ["jane.doe@example.com\r\nBcc: thief@evil.example", "jane.doe@example.com\u2028x"]
)
async def test_a_typed_email_with_a_line_break_is_refused_in_one_line(services, customer, typed):
    reply = await say(services, customer, f"verify {typed}")
    assert reply.error is not None
    assert "\n" not in reply.error.message and "on our side" not in reply.error.message
    assert await count(services, EmailRow) == 0
