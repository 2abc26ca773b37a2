"""The starting configuration files `chargedesk init` writes, commented key by key.

They are valid as written, and issue no document until branding.toml names the
seller. The policy is the demo's (`bot/demo/config/policy.toml`): one file, so
the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

from bot.demo import CONFIG_DIR as DEMO_CONFIG_DIR
from bot.errors import UserError

HERE = Path(__file__).resolve().parent
# Written in this order; each name maps to the file it starts from.
FILES: dict[str, Path] = {
    "chargedesk.toml": HERE / "chargedesk.toml",
    "branding.toml": HERE / "branding.toml",
    "tax.toml": HERE / "tax.toml",
    "policy.toml": DEMO_CONFIG_DIR / "policy.toml",
}

NEXT_STEPS = (
    "branding.toml: uncomment and fill in legal_name and country (documents are refused "
    "until both are set), then the address, VAT ID and logo",
    "tax.toml: the rates of the countries where you charge tax (none yet: no tax is charged)",
    "policy.toml: what each role may refund alone (agents 50.00 EUR as written) and who approves",
    "chargedesk.toml: database, Redis, mail and billing-page settings; secrets go in the "
    "environment",
)


def write_starting_files(folder: Path) -> list[Path]:
    """Write the starting files into `folder`, creating it; nothing if any of them exists."""
    targets = [folder / name for name in FILES]
    existing = [path for path in targets if path.exists()]
    if existing:
        raise UserError(
            "file_exists",
            f"nothing written: {', '.join(str(p) for p in existing)} already "
            f"{'exists' if len(existing) == 1 else 'exist'}; edit, or: chargedesk init OTHER_DIR",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for target, source in zip(targets, FILES.values(), strict=True):
        with target.open("xb") as out:  # "x": never overwrite, even a file made meanwhile
            out.write(source.read_bytes())
    return targets
