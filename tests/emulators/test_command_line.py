"""Every emulator runs as a command: `python -m chargedesk_emulators.<name> --port 0` serves until stopped."""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest


@contextmanager
def running(name: str, *args: str) -> Iterator[tuple[str, str]]:
    """Start the emulator; yields the address it printed last and the banner before it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"chargedesk_emulators.{name}", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        while not (found := re.search(r"listening on (\S+)", line := proc.stdout.readline())):
            assert line, banner  # it exited before it listened
            banner += line
        yield found.group(1), banner
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_stripe_emulator_serves_the_seeded_demo_customer() -> None:
    with running("stripe", "--seed") as (url, _):
        answer = httpx.get(
            f"{url}/v1/customers",
            params={"email": "jane.doe@example.com"},
            headers={"Authorization": "Bearer sk_test_x"},
        )
    assert answer.status_code == 200
    assert [c["email"] for c in answer.json()["data"]] == ["jane.doe@example.com"]


def test_paypal_emulator_issues_tokens_for_the_credentials_it_prints() -> None:
    with running("paypal") as (url, banner):
        client_id, secret = re.search(r"client id (\S+), secret (\S+),", banner).groups()
        good = httpx.post(
            f"{url}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        bad = httpx.post(
            f"{url}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, "wrong"),
        )
    assert good.status_code == 200 and good.json()["token_type"] == "Bearer"
    assert bad.status_code == 401


def test_slack_emulator_answers_auth_test_for_the_token_it_prints() -> None:
    with running("slack") as (url, banner):
        token = re.search(r"bot token (\S+)", banner).group(1)
        good = httpx.post(f"{url}/api/auth.test", headers={"Authorization": f"Bearer {token}"})
        bad = httpx.post(f"{url}/api/auth.test", headers={"Authorization": "Bearer xoxb-forged"})
    assert good.json()["ok"] is True
    assert bad.json() == {"ok": False, "error": "invalid_auth"}


def test_discord_emulator_answers_the_bot_login() -> None:
    with running("discord") as (url, banner):
        token = re.search(r"bot token (\S+)", banner).group(1)
        me = httpx.get(f"{url}/api/v10/users/@me", headers={"Authorization": f"Bot {token}"})
        forged = httpx.get(f"{url}/api/v10/users/@me", headers={"Authorization": "Bot forged"})
    assert me.status_code == 200 and forged.status_code == 401
    assert me.json()["bot"] is True


def test_smtp_server_accepts_a_message() -> None:
    with running("smtp") as (url, _):
        host, port = url.rsplit(":", 1)
        with smtplib.SMTP(host, int(port), timeout=10) as client:
            refused = client.sendmail(
                "bot@example.com", ["jane@example.com"], b"Subject: hi\r\n\r\nhello"
            )
    assert refused == {}


@pytest.mark.parametrize(
    "name",
    [
        *("stripe", "paypal", "braintree", "recurly", "woocommerce", "slack", "discord", "smtp"),
        *("helpscout", "intercom", "front", "zendesk", "freshdesk"),
    ],
)
def test_every_emulator_explains_its_options(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"chargedesk_emulators.{name}", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "--port" in done.stdout


def test_helpscout_emulator_issues_tokens_for_the_credentials_it_prints() -> None:
    with running("helpscout") as (url, banner):
        app_id, secret = re.search(r"app id (\S+), app secret (\S+),", banner).groups()
        good = httpx.post(
            f"{url}/v2/oauth2/token",
            json={"grant_type": "client_credentials", "client_id": app_id, "client_secret": secret},
        )
        bad = httpx.post(
            f"{url}/v2/oauth2/token",
            json={"grant_type": "client_credentials", "client_id": app_id, "client_secret": "x"},
        )
    assert good.status_code == 200 and good.json()["token_type"] == "bearer"
    assert bad.status_code == 401


def test_intercom_emulator_answers_me_for_the_token_it_prints() -> None:
    with running("intercom") as (url, banner):
        token = re.search(r"access token (\S+),", banner).group(1)
        me = httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"})
        forged = httpx.get(f"{url}/me", headers={"Authorization": "Bearer forged"})
    assert me.status_code == 200 and me.json()["type"] == "admin"
    assert forged.status_code == 401 and forged.json()["type"] == "error.list"


def test_front_emulator_checks_the_token_it_prints() -> None:
    with running("front") as (url, banner):
        token = re.search(r"api token (\S+),", banner).group(1)
        missing = httpx.get(
            f"{url}/conversations/cnv_1/comments", headers={"Authorization": f"Bearer {token}"}
        )
        forged = httpx.get(
            f"{url}/conversations/cnv_1/comments", headers={"Authorization": "Bearer forged"}
        )
    assert missing.status_code == 404 and forged.status_code == 401


def test_zendesk_emulator_checks_the_api_token_it_prints() -> None:
    with running("zendesk") as (url, banner):
        email, token = re.search(r"agent (\S+), API token (\S+),", banner).groups()
        known = httpx.get(f"{url}/api/v2/tickets/1/comments", auth=(f"{email}/token", token))
        forged = httpx.get(f"{url}/api/v2/tickets/1/comments", auth=(f"{email}/token", "x"))
    assert known.status_code == 404 and known.json()["error"] == "RecordNotFound"
    assert forged.status_code == 401


def test_freshdesk_emulator_checks_the_api_key_it_prints() -> None:
    with running("freshdesk") as (url, banner):
        key = re.search(r"API key (\S+),", banner).group(1)
        known = httpx.get(f"{url}/api/v2/tickets/1/conversations", auth=(key, "X"))
        forged = httpx.get(f"{url}/api/v2/tickets/1/conversations", auth=("guessed", "X"))
    assert known.status_code == 404
    assert forged.status_code == 401 and forged.json()["code"] == "invalid_credentials"
