"""The configuration folder is found the same way from anywhere, and `chargedesk init` starts one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.approvals.policy import load_policy
from bot.cli import main
from bot.documents.config import SellerMissing, load_branding, load_tax, require_seller
from bot.settings import ConfigError, config_folder, forget_config_folder, load_settings
from tests.conftest import REPO


@pytest.fixture
def no_named_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARGEDESK_CONFIG_DIR")
    forget_config_folder()  # folders these tests create after a first look are seen


def test_a_named_config_dir_that_does_not_exist_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGEDESK_CONFIG_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"CHARGEDESK_CONFIG_DIR=.*missing: no such folder"):
        load_settings()
    assert main(["shell"]) == 2  # the bot does not start on built-in defaults instead


def test_the_data_dirs_config_folder_is_found_from_any_working_directory(
    tmp_path, monkeypatch, no_named_folder
):
    folder = tmp_path / "data" / "config"
    folder.mkdir(parents=True)
    (folder / "chargedesk.toml").write_text('locale = "de_DE"\n')
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(tmp_path / "data"))
    for cwd in (tmp_path, REPO, Path("/")):
        monkeypatch.chdir(cwd)
        assert config_folder().path == folder
        assert load_settings().locale == "de_DE"


def test_the_default_data_dir_is_looked_for_in_the_working_directory(
    tmp_path, monkeypatch, no_named_folder
):
    monkeypatch.delenv("CHARGEDESK_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".chargedesk" / "config").mkdir(parents=True)
    assert config_folder().path == tmp_path / ".chargedesk" / "config"


def test_a_source_checkout_without_a_data_dir_folder_reads_the_repository_config(
    tmp_path, monkeypatch, no_named_folder
):
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(tmp_path / "fresh"))
    found = config_folder()
    assert (found.path, found.origin) == (REPO / "config", "source checkout")
    # The repository's config is the demo's: one copy of each file, linked.
    assert (REPO / "config" / "policy.toml").resolve() == REPO / "bot/demo/config/policy.toml"
    assert load_policy().refund.limits["agent"]["EUR"].minor == 5000


def test_the_folder_follows_the_environment_within_one_process(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, locale in ((first, "fr_FR"), (second, "ja_JP")):
        folder.mkdir()
        (folder / "chargedesk.toml").write_text(f'locale = "{locale}"\n')
    monkeypatch.setenv("CHARGEDESK_CONFIG_DIR", str(first))
    assert load_settings().locale == "fr_FR"
    monkeypatch.setenv("CHARGEDESK_CONFIG_DIR", str(second))
    assert load_settings().locale == "ja_JP"


# --- chargedesk init ------------------------------------------------------------------------

FILES = ["chargedesk.toml", "branding.toml", "tax.toml", "policy.toml"]


def test_init_writes_starting_files_the_real_loaders_accept(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    assert main(["init", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    out = capsys.readouterr().out
    assert "branding.toml: uncomment and fill in legal_name and country" in out
    assert f"set CHARGEDESK_CONFIG_DIR={folder}" in out  # the bot would not find it on its own

    monkeypatch.setenv("CHARGEDESK_CONFIG_DIR", str(folder))
    load_settings()
    assert load_tax().rates == {}  # no tax until the user lists where they charge it
    assert load_policy().refund.limits["agent"]["EUR"].minor == 5000
    # As written, no document can be issued as a placeholder company.
    with pytest.raises(SellerMissing, match=r"set legal_name and country under \[entities"):
        require_seller(load_branding(), "ledger")


def test_init_branding_issues_documents_once_the_seller_is_uncommented(tmp_path):
    folder = tmp_path / "mine"
    assert main(["init", str(folder)]) == 0
    path = folder / "branding.toml"
    text = path.read_text()
    for key in ("legal_name", "country", "address"):
        text = text.replace(f"# {key} = ", f"{key} = ", 1)
    path.write_text(text)
    branding = load_branding(folder)
    require_seller(branding, "ledger")
    assert branding.entities["default"].legal_name == "Example Trading Ltd"


def test_init_refuses_to_overwrite_and_names_the_existing_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "policy.toml").write_text("# mine\n")
    assert main(["init", str(folder)]) == 1
    assert f"{folder / 'policy.toml'} already exists" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["policy.toml"]  # nothing else written
    assert (folder / "policy.toml").read_text() == "# mine\n"


def test_init_writes_by_default_where_the_bot_looks(tmp_path, monkeypatch, capsys, no_named_folder):
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(tmp_path / "data"))
    assert main(["init"]) == 0
    assert f"to {tmp_path / 'data' / 'config'}" in capsys.readouterr().out
    assert config_folder().path == tmp_path / "data" / "config"
