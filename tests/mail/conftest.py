"""Email fixtures: a real SMTP server on 127.0.0.1 (chargedesk_emulators.smtp)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chargedesk_emulators.smtp import FakeSmtp, smtp_server


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as server:
        yield server
