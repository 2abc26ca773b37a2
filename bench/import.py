"""`chargedesk import` of N charges against the json + sqlite3 floor, in one run.

Measures, each as the min and median of `--runs` runs in fresh subprocesses:

* floor: `json.load` of the file and one `executemany` of its charges into a bare
  SQLite table with the same columns, committed (what any importer must at least do);
* `chargedesk import FILE --no-documents` and `chargedesk import FILE` (documents on,
  the default), each into a data folder migrated beforehand, so start-up is counted
  but not the first migration;
* peak resident memory of each (the child's ru_maxrss);
* the longest wait of another writer: a second process opening `BEGIN IMMEDIATE`
  write transactions on the same database file every 20 ms while the import runs.

Targets (issue 19): import within 3x the floor, documents on within 2x of
`--no-documents`, peak memory flat in the file size (the run at N and at N/4 differ
by less than 1.5x in the memory above the empty-file import), no writer waits more
than 1 s. Exits 1 when one is missed.

    PYTHONPATH=. python bench/import.py [--charges 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CURRENCIES = ("EUR", "USD", "GBP", "JPY")

FLOOR = """
import json, sqlite3, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE charges (id TEXT PRIMARY KEY, customer_id TEXT, amount INTEGER, currency TEXT,"
           " amount_captured INTEGER, amount_refunded INTEGER, status TEXT, description TEXT, created TEXT)")
db.executemany("INSERT INTO charges VALUES (?,?,?,?,?,?,?,?,?)", [
    (c["id"], c.get("customer"), c["amount"], c["currency"], c["amount"], 0, c["status"],
     c.get("description"), c.get("created")) for c in data["charges"]])
db.commit()
"""


def write_file(path: Path, charges: int, customers: int) -> None:
    """A JSON export with `customers` customers and `charges` succeeded charges among them."""
    rng = random.Random(19)
    with path.open("w", encoding="utf-8") as out:
        out.write('{"customers": [\n')
        out.write(
            ",\n".join(
                json.dumps(
                    {"id": f"cus_{c}", "email": f"c{c}@example.com", "name": f"Customer {c}"}
                )
                for c in range(customers)
            )
        )
        out.write('\n], "charges": [\n')
        for n in range(charges):
            currency = CURRENCIES[n % len(CURRENCIES)]
            row = {
                "id": f"ch_{n}",
                "customer": f"cus_{rng.randrange(customers)}",
                "amount": rng.randrange(100, 100_000),
                "currency": currency,
                "status": "succeeded",
                "description": f"Order {n}",
                "created": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z",
            }
            out.write(("," if n else "") + json.dumps(row) + "\n")
        out.write("]}\n")


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{out.decode()}{err.decode()}"
        )
    return seconds, usage.ru_maxrss / 1024


class Prober(threading.Thread):
    """Another writer: a short BEGIN IMMEDIATE transaction every 20 ms; records the longest."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db, self.longest, self.done = db, 0.0, threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.db, timeout=60, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_probe (n INTEGER)")
        while not self.done.is_set():
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_probe VALUES (1)")
            conn.execute("COMMIT")
            self.longest = max(self.longest, time.perf_counter() - start)
            time.sleep(0.02)
        conn.close()


def import_once(file: Path, documents: bool, probe: bool) -> tuple[float, float, float]:
    """(seconds, peak MB, longest writer wait) of `chargedesk import` into a migrated folder."""
    data = Path(tempfile.mkdtemp(prefix="bench-import-"))
    env = {**os.environ, "CHARGEDESK_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    cli = [sys.executable, "-m", "bot", "import"]
    try:
        empty = data / "charges.csv"
        empty.write_text("id,currency,amount,status\n")
        run([*cli, str(empty)], env)  # migrates the folder
        prober = Prober(data / "chargedesk.db") if probe else None
        if prober:
            prober.start()
        seconds, peak = run([*cli, str(file), *([] if documents else ["--no-documents"])], env)
        if prober:
            prober.done.set()
            prober.join()
        return seconds, peak, prober.longest if prober else 0.0
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--charges", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--skip-documents", action="store_true", help="leave out the documents-on run"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-import-files-"))
    big, small = work / "export.json", work / "export_quarter.json"
    write_file(big, args.charges, args.customers)
    write_file(small, args.charges // 4, args.customers)
    figures: dict[str, list[tuple[float, float, float]]] = {}
    try:
        for _ in range(args.runs):
            floor_db = work / "floor.db"
            floor_db.unlink(missing_ok=True)
            s, mb = run([sys.executable, "-c", FLOOR, str(big), str(floor_db)])
            figures.setdefault("floor", []).append((s, mb, 0.0))
            figures.setdefault("no_docs", []).append(import_once(big, False, probe=True))
            if not args.skip_documents:
                figures.setdefault("docs", []).append(import_once(big, True, probe=True))
            figures.setdefault("quarter", []).append(import_once(small, False, probe=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def best(key: str, i: int) -> float:
        return min(f[i] for f in figures[key])

    def med(key: str, i: int) -> float:
        return statistics.median(f[i] for f in figures[key])

    floor = best("floor", 0)
    print(f"{args.charges:,} charges, {args.customers:,} customers, {args.runs} runs, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print("| what | min s | median s | x floor (min) | peak MB | longest writer wait s |")
    print("|---|---|---|---|---|---|")
    labels = {
        "floor": "json + sqlite3 (floor)",
        "no_docs": "chargedesk import --no-documents",
        "docs": "chargedesk import (documents on)",
        "quarter": f"chargedesk import --no-documents, {args.charges // 4:,} charges",
    }
    for key, label in labels.items():
        if key not in figures:
            continue
        wait = f"{max(f[2] for f in figures[key]):.3f}" if key in ("no_docs", "docs") else "-"
        print(f"| {label} | {best(key, 0):.2f} | {med(key, 0):.2f} | "
              f"{best(key, 0) / floor:.2f}x | {max(f[1] for f in figures[key]):.0f} | {wait} |")  # fmt: skip
    checks = {
        "import within 3x the floor": best("no_docs", 0) <= 3 * floor,
        "documents on within 2x of --no-documents": "docs" not in figures
        or best("docs", 0) <= 2 * best("no_docs", 0),
        "memory flat (N vs N/4 peak within 1.5x)": best("no_docs", 1) <= 1.5 * best("quarter", 1),
        "no writer waits more than 1 s": max(f[2] for k in ("no_docs", "docs") for f in figures.get(k, [])) <= 1.0,
    }  # fmt: skip
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'MISS'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
