"""How long `chargedesk --help` takes, against the floor of starting Python with what any
command line tool of ours needs (argparse, asyncio, pydantic), measured in the same run.

Each is a fresh `python` process, so the time includes the interpreter's own start:
    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
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


def _once(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in CASES}
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


if __name__ == "__main__":
    main()
