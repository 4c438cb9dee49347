"""Scale benchmark for the Dataset workbench: a generated 1,000,000-row JSONL, checked in full
and opened in the Dataset tab.

Each phase runs in its own process so its peak memory (ru_maxrss) is its own:
  plain       the check without the hygiene checks (personal data and secrets, evaluation leaks,
              MinHash near duplicates): formats, modes, quality, exact duplicates
  check       core.dataset.checks.check over every row (what `studio check` does)
  first page  the Dataset tab's open_dataset + browse handlers: index the lines, read page 1
Targets: the whole check at most 2x the plain check, measured side by side in this run; the
first page under 1 s.

Run: python bench/check_scale.py [--rows 1000000] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = Path("/tmp/check-scale-home")
MODES = {"dual": ("thought", "world"), "emulation": ("user", "assistant"), "agent": ("instruction", "action")}
WORDS = ("model data river table light signal answer window garden number reason market station letter "
         "engine theory pattern system context memory value weather paper bridge doctor").split()


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Mode-tagged chats with realistic noise: ~0.1% contaminated, ~0.1% duplicates, ~0.01% broken lines."""
    rng = random.Random(seed)
    modes = list(MODES)
    with open(path, "w", encoding="utf-8") as handle:
        previous = ""
        for i in range(rows):
            if i % 10_000 == 9_999:
                handle.write('{"mode": "dual", "messages": [broken json\n')
                continue
            if i % 1_000 == 500 and previous:
                handle.write(previous)
                continue
            mode = modes[i % 3]
            a, b = MODES[mode]
            if i % 1_000 == 700:
                b = MODES[modes[(i + 1) % 3]][1]  # a tag from another mode
            first = " ".join(rng.choices(WORDS, k=rng.randint(6, 14)))
            second = " ".join(rng.choices(WORDS, k=rng.randint(12, 30)))
            row = {"id": f"r{i}", "mode": mode, "messages": [
                {"role": "user", "content": f"Question {i}: " + " ".join(rng.choices(WORDS, k=8))},
                {"role": "assistant", "content": f"<{a}>{first}</{a}>\n<{b}>{second}</{b}>"}]}
            previous = json.dumps(row) + "\n"
            handle.write(previous)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process and its finished workers (what the check costs, whatever the load)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def phase_check(path: str, hygiene: bool = True) -> dict:
    from core.dataset import checks

    started, cpu = time.perf_counter(), cpu_seconds()
    report = checks.check(path, hygiene=hygiene)
    elapsed = time.perf_counter() - started
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": elapsed, "cpu_s": cpu_seconds() - cpu, "rows": report.rows, "rows_per_s": report.rows / elapsed,
            "peak_mb": peak_mb(), "workers_peak_mb": workers_peak, "problems": report.problems, "counts": report.counts}


def phase_first_page(path: str) -> dict:
    from studio.ui.dataset import tab as dataset_tab

    started = time.perf_counter()
    current, status = dataset_tab.open_dataset(None, None, path, "auto", "")
    rows, caption, _ = dataset_tab.browse(current, "any", "any", False, "", "file order", 1)
    record = dataset_tab.show_record(current, 1)
    elapsed = time.perf_counter() - started
    assert rows and record[0] == 1, status
    started = time.perf_counter()
    dataset_tab.browse(current, "any", "any", False, "", "file order", 40_000)
    deep = time.perf_counter() - started
    started = time.perf_counter()
    hits, _, _ = dataset_tab.browse(current, "any", "any", False, "question 987654:", "file order", 1)
    search = time.perf_counter() - started
    return {"seconds": elapsed, "deep_page_s": deep, "search_s": search, "search_hits": len(hits),
            "peak_mb": peak_mb(), "caption": caption}


def run_phase(name: str, path: Path) -> dict:
    env = {**os.environ, "STUDIO_HOME": str(HOME)}
    out = subprocess.run([sys.executable, __file__, "--phase", name, str(path)], capture_output=True, text=True,
                         cwd=ROOT, check=False, env=env)
    if out.returncode:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as one JSON object")
    parser.add_argument("--phase", choices=["plain", "check", "first_page"], help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.phase:
        phases = {"plain": lambda path: phase_check(path, hygiene=False), "check": phase_check, "first_page": phase_first_page}
        print(json.dumps(phases[args.phase](args.path)))
        return
    # The tab only opens files inside the workspace, so the benchmark's workspace holds the file.
    path = HOME / "datasets" / f"rows-{args.rows}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.rows)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
    plain = run_phase("plain", path)
    check = run_phase("check", path)
    ratio = check["seconds"] / plain["seconds"]
    print(f"rows            {check['rows']:,}  ({path.stat().st_size / 1e6:.0f} MB)")
    cores = os.cpu_count() or 1
    print(f"load average    {os.getloadavg()[0]:.1f} on {cores} cores (other work on the machine slows every wall time)")
    print(f"plain check     {plain['seconds']:.1f} s wall   {plain['rows_per_s']:,.0f} rows/s   (no personal data, leaks, "
          f"near duplicates)   peak RSS {plain['peak_mb']:.0f} MB")
    print(f"full check      {check['seconds']:.1f} s wall   {check['rows_per_s']:,.0f} rows/s   "
          f"= {ratio:.2f}x the plain check   target <= 2x: {'PASS' if ratio <= 2 else 'MISS'}")
    print(f"  cpu           {check['cpu_s']:.1f} s of CPU in all processes = {check['cpu_s'] / cores:.1f} s on {cores} idle cores")
    print(f"  peak RSS      {check['peak_mb']:.0f} MB main process, {check['workers_peak_mb']:.0f} MB largest worker")
    print(f"  found         {check['counts']}", flush=True)
    page = run_phase("first_page", path)
    print(f"first page      {page['seconds']:.2f} s (open + index + page 1 + record 1)   peak RSS {page['peak_mb']:.0f} MB"
          f"   target < 1 s: {'PASS' if page['seconds'] < 1 else 'MISS'}")
    print(f"page 40,000     {page['deep_page_s']:.3f} s")
    print(f"text search     {page['search_s']:.2f} s ({page['search_hits']} hit(s) on the page)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": check["rows"], "plain": plain, "check": check, "ratio": round(ratio, 3),
                                               "target_ratio": 2.0, "first_page": page, "cores": cores}, indent=2))
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
