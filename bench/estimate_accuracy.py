"""Forecast accuracy: for the bundled CPU recipes, the forecast's peak memory and wall time
(`studio plan`, calibrated on this machine) against a real run of the same recipe, side by side.

Measured: the training worker's peak resident memory (the largest `peak_mem_mb` its metrics log,
its own ru_maxrss) and the run's wall time (status.json: from the worker's start to its end).
Recipes: smoke-cpu (LoRA SFT), grpo-format-cpu (GRPO), and epistemic-dpo on the embedded model
with fewer steps (a DPO smoke); the evaluation after training is left out (not part of a run's
forecast). Target: each prediction within 25% of the measurement.

Run: python bench/estimate_accuracy.py [--json FILE] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = Path("/tmp/estimate-accuracy-home")
COMMON = ["eval.after_training=false"]
RECIPES = {
    "smoke-cpu": ("configs/smoke-cpu.yaml", []),
    "grpo-format-cpu": ("configs/grpo-format-cpu.yaml", []),
    "dpo-smoke": ("configs/epistemic-dpo.yaml", ["model.name=embedded", "data.max_length=512", "training.epochs=1",
                                                 "training.max_steps=25", "training.save_every_epochs=null",
                                                 "training.warmup_steps=2"]),
}
TARGET = 0.25


def studio(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDIO_HOME": str(HOME)}
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=False)


def measure(name: str, path: str, sets: list[str]) -> dict:
    flags = [item for pair in (("--set", s) for s in COMMON + sets) for item in pair]
    planned = studio("plan", path, *flags, "--json")
    if planned.returncode not in (0, 1):
        raise SystemExit(f"{name}: studio plan failed:\n{planned.stderr[-2000:]}")
    forecast = json.loads(planned.stdout)
    run_dir = HOME / "runs" / f"bench-{name}-{int(time.time())}"
    trained = studio("train", path, *flags, "--run-dir", str(run_dir), "--json")
    status = json.loads((run_dir / "status.json").read_text())
    if status.get("state") != "completed":
        raise SystemExit(f"{name}: the run ended {status.get('state')}:\n{trained.stderr[-2000:]}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    peak = max(r.get("peak_mem_mb", 0) for r in records) * 2**20
    from core.train.run_dir import parse_time

    wall = parse_time(status["ended_at"]) - parse_time(status["started_at"])
    return {"recipe": name, "predicted_peak_bytes": forecast["peak_bytes"], "measured_peak_bytes": int(peak),
            "peak_error": round(forecast["peak_bytes"] / peak - 1, 3), "predicted_s": forecast["seconds"],
            "predicted_range_s": forecast["seconds_range"], "measured_s": round(wall, 1),
            "time_error": round(forecast["seconds"] / wall - 1, 3), "steps": status.get("step"),
            "memory_parts": forecast["memory"], "speed": forecast["speed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as one JSON object")
    parser.add_argument("--only", choices=list(RECIPES), default=None, help="one recipe only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    HOME.mkdir(parents=True, exist_ok=True)
    from core.workspace import workspace

    shared = workspace().models  # the converted models of this machine's workspace, not converted again
    if shared.is_dir() and not (HOME / "models").exists():
        (HOME / "models").symlink_to(shared, target_is_directory=True)
    results = []
    print(f"{'recipe':<16} {'peak predicted':>15} {'measured':>10} {'error':>7}   {'time predicted':>15} {'measured':>9} {'error':>7}")
    for name, (path, sets) in RECIPES.items():
        if args.only and name != args.only:
            continue
        row = measure(name, path, sets)
        results.append(row)
        ok = abs(row["peak_error"]) <= TARGET and abs(row["time_error"]) <= TARGET
        print(f"{name:<16} {row['predicted_peak_bytes'] / 2**30:>12.2f} GB {row['measured_peak_bytes'] / 2**30:>7.2f} GB "
              f"{row['peak_error']:>+7.0%}   {row['predicted_s']:>13.0f} s {row['measured_s']:>7.0f} s {row['time_error']:>+7.0%}"
              f"   {'PASS' if ok else 'MISS'} (target within {TARGET:.0%})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"target": TARGET, "results": results, "cores": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
