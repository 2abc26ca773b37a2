"""How long `chargedesk --help` takes, against the floor of starting Python with what any
command line tool of ours needs (argparse, asyncio, pydantic), measured in the same run.

Each is a fresh `python` process, so the time includes the interpreter's own start, with
bytecode caching on (as installed; a first untimed run writes the caches). Target: `--help`
within 3x of the floor; exits 1 when missed:
    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

CASES = {
    "python -c pass": ["-c", "pass"],
    "floor: import argparse, asyncio, pydantic": ["-c", "import argparse, asyncio, pydantic"],
    "chargedesk --help": ["-m", "bot", "--help"],
    "chargedesk shell --help": ["-m", "bot", "shell", "--help"],
    "chargedesk (a mistyped command)": ["-m", "bot", "shel"],
}
FLOOR = "floor: import argparse, asyncio, pydantic"
TARGET = 3.0  # `chargedesk --help` over the floor
# Without PYTHONDONTWRITEBYTECODE (set in some checkouts): an installed package has its .pyc.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _once(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], capture_output=True, check=False, env=ENV)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for arguments in CASES.values():  # warm-up, untimed: writes the bytecode caches
        _once(arguments)
    for _ in range(runs):  # interleaved, so a busy moment touches every case alike
        for name, arguments in CASES.items():
            times[name].append(_once(arguments))
    floor = statistics.median(times[FLOOR])
    rows = [
        [name, f"{min(t) * 1000:.0f} ms", f"{statistics.median(t) * 1000:.0f} ms",
         f"{statistics.median(t) / floor:.2f}x"]
        for name, t in times.items()
    ]  # fmt: skip
    print(f"{runs} runs each, interleaved; ratio of medians to the floor")
    print(table(["process", "min", "median", "vs floor"], rows))
    ratio = statistics.median(times["chargedesk --help"]) / floor
    if ratio > TARGET:
        print(f"MISSED: chargedesk --help is {ratio:.2f}x the floor (target {TARGET:g}x)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
