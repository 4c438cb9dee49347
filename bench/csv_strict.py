"""What strict CSV reading costs: core.dataset.csv_rows (strict quoting, field counts, per-line
UTF-8, a record's first line) against csv.DictReader (the forgiving reader it replaced), side by
side in one process over the same generated file, best of a few rounds each, interleaved.

Run: python bench/csv_strict.py [--rows 100000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.dataset import csv_rows


def generate(path: Path, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "completion"])
        for i in range(rows):
            writer.writerow([f"Question {i}, with a comma and \"quotes\"", f"Answer {i} " * 20])


def forgiving(path: Path) -> int:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def strict(path: Path) -> int:
    return sum(1 for _, row in csv_rows.records(path) if isinstance(row, dict))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.csv"
        generate(path, args.rows)
        times: dict[str, list[float]] = {"csv.DictReader": [], "csv_rows (strict)": []}
        for _ in range(args.rounds):
            for name, read in (("csv.DictReader", forgiving), ("csv_rows (strict)", strict)):
                started = time.perf_counter()
                assert read(path) == args.rows
                times[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in times.items()}
    result = {"rows": args.rows, "best_s": {k: round(v, 3) for k, v in best.items()},
              "strict_over_forgiving": round(best["csv_rows (strict)"] / best["csv.DictReader"], 2),
              "load_average": round(os.getloadavg()[0], 1)}
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in best.items():
            print(f"{name:20} {value:.3f} s for {args.rows:,} rows")
        print(f"strict / forgiving: {result['strict_over_forgiving']}x (load average {result['load_average']})")


if __name__ == "__main__":
    main()
