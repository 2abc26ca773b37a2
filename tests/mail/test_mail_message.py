"""Building messages and reading SMTP URLs: no store, no network."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.mail.message import build_message
from bot.mail.outbox import retry_delay
from bot.mail.transport import describe, parse_smtp_url
from bot.settings import MailSettings, Settings


def make_settings(tmp_path, **mail) -> Settings:
    return Settings(
        data_dir=tmp_path, mail=MailSettings(from_address="billing@shop.example", **mail)
    )


def message(settings: Settings, **changes):
    values = {
        "settings": settings,
        "sender_name": "Shop Ltd",
        "to": "Jane Doe <jane@example.com>",
        "subject": "Your receipt R-1",
        "text": "Thanks.",
        "customer": "ledger:cus_jane",
        "document": "R-1",
        "kind": "receipt",
    }
    return build_message(**{**values, **changes})


def test_headers_name_the_sender_helpdesk_and_billing_context(tmp_path):
    settings = make_settings(tmp_path, reply_to="help@shop.example")
    built = message(settings, html="<p>Thanks.</p>", headers={"X-Ticket": "T-9"})
    assert built["From"] == "Shop Ltd <billing@shop.example>"
    assert built["Reply-To"] == "help@shop.example"
    assert built["X-ChargeDesk-Customer"] == "ledger:cus_jane"
    assert built["X-ChargeDesk-Document"] == "R-1"
    assert built["X-ChargeDesk-Kind"] == "receipt"
    assert built["X-Ticket"] == "T-9"
    assert built["Message-ID"].endswith("@shop.example>")
    assert built["Date"]
    assert built.get_body(("html",)).get_content().strip() == "<p>Thanks.</p>"
    # Built once: the bytes (and so the Message-ID) do not change between reads.
    assert built.as_bytes() == built.as_bytes()


def test_from_name_wins_and_reply_to_is_optional(tmp_path):
    settings = make_settings(tmp_path, from_name="Shop Billing")
    built = message(settings)
    assert built["From"] == "Shop Billing <billing@shop.example>"
    assert built["Reply-To"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Receipt\r\nBcc: everyone@example.com"},
        {"to": "jane@example.com\nBcc: everyone@example.com"},
        {"sender_name": "Shop\rLtd"},
        {"document": "R-1\nX-Evil: 1"},
        {"headers": {"X-Ticket": "T-9\r\n\r\nbody"}},
        {"headers": {"X-Ticket\n": "T-9"}},
        {"attachments": [("a\r\n.pdf", b"%PDF", "application/pdf")]},
    ],
)
def test_line_breaks_in_headers_are_refused(tmp_path, changes):
    with pytest.raises(ValueError, match="line breaks are not allowed"):
        message(make_settings(tmp_path), **changes)


def test_smtp_urls(tmp_path):
    scheme, target = parse_smtp_url("smtp://mail.example.com")
    assert (scheme, target.port, target.start_tls, target.use_tls) == ("smtp", 25, None, False)
    _, target = parse_smtp_url("smtp+starttls://u%40x:p%3Aw@mail.example.com")
    assert (target.port, target.start_tls, target.username, target.password) == (
        587,
        True,
        "u@x",
        "p:w",
    )
    _, target = parse_smtp_url("smtps://mail.example.com:2465")
    assert (target.port, target.use_tls, target.start_tls) == (2465, True, False)
    with pytest.raises(ValueError, match="scheme must be"):
        parse_smtp_url("http://mail.example.com")
    with pytest.raises(ValueError, match="port") as bad_port:
        parse_smtp_url("smtp://u:hunter2@mail.example.com:99999")
    assert "hunter2" not in str(bad_port.value)

    settings = make_settings(tmp_path).model_copy(
        update={"smtp_url": SecretStr("smtps://bob:hunter2@mail.example.com")}
    )
    assert describe(settings) == "via smtps://bob:***@mail.example.com:465"
    assert "hunter2" not in repr(parse_smtp_url("smtps://bob:hunter2@mail.example.com"))


def test_retry_delay_doubles_up_to_an_hour(tmp_path):
    settings = make_settings(tmp_path, retry_seconds=30)
    assert [retry_delay(settings, n) for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay(settings, 20) == 3600
