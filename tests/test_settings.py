"""Bad configuration stops the bot at start with a message naming the key."""

from __future__ import annotations

import pytest

from bot.approvals.policy import load_policy
from bot.settings import ConfigError, load_settings


def test_env_and_toml_with_env_winning(tmp_path, monkeypatch):
    (tmp_path / "config" / "chargedesk.toml").write_text(
        'locale = "de_DE"\n[lookup]\ntimeout = 2.5\n'
    )
    monkeypatch.setenv("CHARGEDESK_LOOKUP__TIMEOUT", "1.5")
    settings = load_settings()
    assert settings.locale == "de_DE" and settings.lookup.timeout == 1.5


def test_bad_toml_value_names_the_key(tmp_path):
    (tmp_path / "config" / "chargedesk.toml").write_text("[lookup]\ntimeout = -3\n")
    with pytest.raises(ConfigError, match=r"lookup\.timeout"):
        load_settings()


def test_unknown_key_is_refused(tmp_path):
    (tmp_path / "config" / "chargedesk.toml").write_text("[ledger]\nforward_ulr = 'x'\n")
    with pytest.raises(ConfigError, match=r"ledger\.forward_ulr"):
        load_settings()


def test_bad_database_url_names_the_key(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError, match="database_url"):
        load_settings()


def test_broken_toml_syntax(tmp_path):
    (tmp_path / "config" / "chargedesk.toml").write_text("locale = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


@pytest.mark.parametrize(
    ("policy", "key"),
    [
        ('[refund.limits.agent]\nJPY = "500.5"\n', "JPY has no minor unit"),
        ('[refund.limits.agnet]\nEUR = "5"\n', "refund.limits"),
        ('[refund]\nexpires = "soon"\n', "refund.expires"),
        ('[refund]\napprover_role = "agent"\n', "approver_role"),
        ("[refnud]\n", "refnud"),
    ],
)
def test_bad_policy_names_the_key(tmp_path, policy, key):
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    with pytest.raises(ConfigError, match=key):
        load_policy(path)


def test_shipped_config_is_valid(monkeypatch):
    from tests.conftest import REPO

    monkeypatch.setenv("CHARGEDESK_CONFIG_DIR", str(REPO / "config"))
    load_settings()
    policy = load_policy(REPO / "config" / "policy.toml")
    assert policy.refund.limits["agent"]["JPY"].minor == 5000
