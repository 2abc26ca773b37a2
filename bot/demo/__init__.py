"""The demo: its dataset (`dataset.py`) and its configuration (`config/`).

`chargedesk shell --demo` reads `CONFIG_DIR` whatever the working directory and
environment, so the demo shows the same seller, tax and policy from a wheel as
from the repository.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "config"
