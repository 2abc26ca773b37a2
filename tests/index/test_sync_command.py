"""`chargedesk sync`: fills the billing index from the command line, and says why not."""

from __future__ import annotations

import pytest

from bot.cli import main


@pytest.fixture
def data_dir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return tmp_path / "data"


def test_sync_mirrors_the_demo_ledger_then_finds_nothing_new(data_dir, capsys):
    assert main(["demo"]) == 0
    capsys.readouterr()
    assert main(["sync"]) == 0
    first = capsys.readouterr().out
    assert "ledger: 5 customers, 13 charges, 2 refunds" in first
    assert main(["sync", "ledger"]) == 0
    assert capsys.readouterr().out.strip().endswith("ledger: nothing new")
    assert main(["sync", "--status"]) == 0
    assert "ledger charge: 13 written, complete" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["sync", "--since", "2026-13-01"], "'2026-13-01' is not a day: write YYYY-MM-DD"),
        (["sync", "--since", "yesterday"], "'yesterday' is not a day: write YYYY-MM-DD"),
    ],
)
def test_a_bad_since_is_one_line_and_syncs_nothing(data_dir, capsys, argv, said):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert said in err and not (data_dir / "chargedesk.db").exists()


def test_an_unknown_gateway_is_one_line_naming_the_configured_ones(data_dir, capsys):
    assert main(["sync", "brainstree"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no gateway named 'brainstree' (configured: ledger")
    assert "\n" not in err
