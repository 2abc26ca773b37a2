"""The terminal shell, as a person (or a script) uses it: `chargedesk shell --demo --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

WALKTHROUGH = """\
lookup jane.doe@example.com
refund ch_jane_1 80 reason: duplicate charged twice for one order
/as manager:maria
approvals
approve {id}
audit
"""


def shell(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"PYTHONPATH": str(REPO), "CHARGEDESK_CONFIG_DIR": str(REPO / "config")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "shell", "--demo", "--json", *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip


def test_walkthrough_request_switch_user_approve_audit():
    # The approval ID is only known after the refund, so feed the shell interactively line by line.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"PYTHONPATH": str(REPO), "CHARGEDESK_CONFIG_DIR": str(REPO / "config")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "shell", "--demo", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    lines = WALKTHROUGH.splitlines()

    def send(line: str) -> dict:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    try:
        card = send(lines[0])
        assert card["cards"][0]["title"] == "Jane Doe"
        request = send(lines[1])
        assert request["approval"]["state"] == "pending"
        approval_id = request["approval"]["id"]
        assert send(lines[2])["cards"][0]["title"] == "You are now maria"
        listing = send(lines[3])
        assert approval_id in json.dumps(listing)
        approved = send(lines[4].format(id=approval_id))
        assert approved["approval"] == {"id": approval_id, "state": "succeeded"}
        audit = send(lines[5])
        outcomes = [row[4] for row in audit["cards"][0]["sections"][0]["table"]["rows"]]
        assert outcomes[:4] == ["succeeded", "executing", "approved", "requested"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()


def test_json_lines_carry_errors_and_exit_status_for_scripts():
    result = shell(
        "refund ch_jane_1 500.5 reason: duplicate x\nrefund ch_yuki_1 500.5 reason: duplicate x\n"
    )
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert replies[0]["error"]["code"] == "amount_too_large"
    assert replies[1]["error"] == {
        "code": "invalid_amount",
        "message": "JPY has no minor unit: '500.5' cannot have decimals",
    }
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_as_flag_and_bad_identity():
    ok = shell("approvals\n", "--as", "manager:maria")
    assert (
        ok.returncode == 0 and json.loads(ok.stdout)["cards"][0]["title"] == "Waiting for approval"
    )
    bad = shell("/as boss:maria\n")
    assert "unknown role 'boss'" in json.loads(bad.stdout)["error"]["message"]


def test_terminal_cards_show_text_literally():
    """Usage strings such as `[amount]` are content, not rich markup."""
    import io

    from rich.console import Console

    from bot.cards.model import Card, Fact, Reply, Section, Table
    from bot.chat.shell.render import render

    out = io.StringIO()
    card = Card(
        title="[bold]x",
        sections=[
            Section(
                facts=[Fact(label="[a]", value="[b]")],
                table=Table(columns=["[c]"], rows=[["refund <charge> [amount]"]]),
            )
        ],
    )
    render(Reply(cards=[card]), Console(file=out, width=120))
    text = out.getvalue()
    for literal in ("[bold]x", "[a]", "[b]", "[c]", "refund <charge> [amount]"):
        assert literal in text


async def test_shell_looks_up_and_refunds_real_stripe_objects():
    """`chargedesk shell` with Stripe settings pointing at the emulator: same commands, Stripe objects."""
    import asyncio

    from tests.fakes.stripe_env import stripe_fake

    async with stripe_fake() as fake:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env |= {
            "PYTHONPATH": str(REPO),
            "CHARGEDESK_CONFIG_DIR": str(REPO / "config"),
            "CHARGEDESK_STRIPE__API_KEY": fake.emulator.api_key or "sk_test_shell",
            "CHARGEDESK_STRIPE__BASE_URL": fake.emulator.url,
        }
        script = f"lookup {fake.env.email}\nrefund stripe:{fake.env.charge_id} 20 reason: goodwill late parcel\n"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "shell", "--demo", "--json",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(script.encode()), 120)
        lookup, refund = (json.loads(line) for line in out.decode().splitlines())
        assert f"stripe:{fake.env.customer_id}" in json.dumps(lookup), err.decode()
        assert refund["approval"]["state"] == "succeeded"
        charge = await fake.gateway.get_charge(fake.env.charge_id)
        assert charge.amount_refunded == 2000


# --- files: the PDF of `receipt` / `invoice pdf` lands in a folder, shown by its path -------


def saved(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def pdf(path: Path) -> bool:
    return path.read_bytes().startswith(b"%PDF")


async def test_a_receipt_is_saved_as_a_file_and_json_names_its_path(services, agent, tmp_path):
    import io

    from bot.chat.shell.adapter import Shell

    out = io.StringIO()
    folder = tmp_path / "files"
    shell = Shell(services, agent, json_lines=True, out=out, files_dir=folder)
    for _ in range(2):  # asked twice: the same document, the same file
        reply = await shell.handle("receipt ch_jane_1")
        assert reply is not None and shell.show(reply)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    [file] = first["files"]
    path = Path(file["path"])
    assert path.parent == folder and path.name == file["name"]
    assert saved(folder) == {path.name: file["size"]} and pdf(path)
    assert second["files"] == first["files"]
    assert "%PDF" not in out.getvalue()  # the JSON carries the path, never the bytes


async def test_a_different_file_under_the_same_name_is_never_overwritten(services, agent, tmp_path):
    import io

    from bot.chat.shell.adapter import Shell

    folder = tmp_path / "files"
    out = io.StringIO()
    shell = Shell(services, agent, json_lines=False, out=out, files_dir=folder)
    reply = await shell.handle("receipt ch_jane_1")
    assert reply is not None
    theirs = folder / reply.files[0].name
    folder.mkdir()
    theirs.write_bytes(b"someone else's file")
    assert shell.show(reply)
    kept = folder / f"{theirs.stem}-1.pdf"
    assert theirs.read_bytes() == b"someone else's file"
    assert kept.read_bytes() == reply.files[0].content
    assert str(kept) in out.getvalue().replace("\n", "")  # the terminal shows where it went


def test_a_file_name_cannot_leave_the_folder(tmp_path):
    from bot.cards.model import Attachment
    from bot.chat.shell.adapter import save_file

    for name in ("../../escape.pdf", "/etc/passwd", "..", "sub/dir/x y.pdf"):
        path = save_file(tmp_path / "files", Attachment(name=name, content=b"x"))
        assert path.parent == tmp_path / "files", (name, path)


def test_the_shell_saves_pdfs_where_files_dir_says(tmp_path):
    result = shell("receipt ch_jane_1\n", "--files-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    [file] = json.loads(result.stdout)["files"]
    assert file["path"] == str(tmp_path / "out" / file["name"])
    assert (tmp_path / "out" / file["name"]).read_bytes()[:4] == b"%PDF"
