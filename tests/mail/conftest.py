"""Email fixtures: a real SMTP server on 127.0.0.1 (tests/fakes/smtp_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.smtp_server import FakeSmtp, smtp_server


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as server:
        yield server
