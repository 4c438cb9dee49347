"""Sweeps: one recipe and a small grid (e.g. learning rate x LoRA rank x epochs) become queued
runs grouped under one sweep id, compared in one table.

A grid is a mapping of dotted recipe fields to value lists (`training.learning_rate=1e-4,3e-4`).
Every combination is built and validated as a full recipe before anything is queued, so a bad
value fails the whole sweep with the field's name. `runs/.sweeps/<id>.json` records the grid and
its runs; each run's status.json carries the sweep id and its own values. The comparison puts
each run's losses beside its evaluation after training (when the recipe names a prompt set with
`eval.after_training`): the outcome in brief that core.eval.guard records in status.json, read
through core.train.run_dir (this room sits below core.eval and never imports it). This module
knows nothing about trainers or the UI; core.train.queue runs the runs.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
from pathlib import Path

import yaml

from core import recipes
from core.recipes import Recipe, RecipeError
from core.train import queue, run_dir, runs
from core.workspace import workspace, write_json_atomic

SWEEPS_DIR = ".sweeps"
MAX_RUNS = 32  # a sweep is a small grid; a bigger search wants a real tuner


def parse_grid(items: list[str]) -> dict[str, list]:
    """`field=v1,v2` items (values read as YAML scalars) into {field: [v1, v2]}."""
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"--grid {item}: expected field=value1,value2, e.g. training.learning_rate=1e-4,3e-4")
        key, raw = item.split("=", 1)
        values = [_scalar(part) for part in raw.split(",") if part.strip()]
        if not key.strip() or not values:
            raise RecipeError(f"--grid {item}: name a field and at least one value")
        grid[key.strip()] = values
    return grid


def _scalar(text: str):
    """A YAML scalar, except that 1e-4 is a number (YAML 1.1 reads it as text)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def expand(recipe: Recipe, grid: dict[str, list]) -> list[tuple[dict, Recipe]]:
    """Every combination as (its values, its validated recipe), in grid order."""
    if not grid:
        raise RecipeError("a sweep needs a grid: at least one field with values, e.g. training.learning_rate=1e-4,3e-4")
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys)))
    if len(combos) > MAX_RUNS:
        raise RecipeError(f"the grid makes {len(combos)} runs; a sweep holds at most {MAX_RUNS}")
    base = recipe.to_dict()
    base["data"]["path"] = str(recipe.dataset_path())
    out = []
    for values in combos:
        params = dict(zip(keys, values))
        overrides = [f"{k}={json.dumps(v)}" for k, v in params.items()]
        try:
            built = recipes.from_dict(recipes.apply_overrides(base, overrides))
        except RecipeError as error:
            raise RecipeError(f"sweep values {params}: {error}") from None
        out.append((params, built))
    return out


def new_sweep_id(recipe: Recipe) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe.name).strip("-") or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{safe}-sweep-{stamp}"


def submit(recipe: Recipe, grid: dict[str, list], *, accelerate_config: str | Path | None = None) -> dict:
    """Queue the grid's runs under one sweep id; the first starts at once when nothing trains."""
    combos = expand(recipe, grid)
    sweep_id = new_sweep_id(recipe)
    record = {"sweep_id": sweep_id, "recipe": recipe.name, "grid": grid, "created_at": runs.now_iso(), "runs": []}
    folder = workspace().runs / SWEEPS_DIR
    for index, (params, built) in enumerate(combos, start=1):
        run_dir, _ = queue.submit(built, workspace().runs / f"{sweep_id}-{index}", accelerate_config=accelerate_config,
                                  sweep=sweep_id, params=params)
        record["runs"].append({"run_id": run_dir.name, "params": params})
        write_json_atomic(folder / f"{sweep_id}.json", record)  # after each run: a failure midway keeps the record
    return record


def read_sweep(sweep_id: str) -> dict:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", sweep_id or ""):
        raise RecipeError(f"'{sweep_id}' is not a sweep id")
    try:
        return json.loads((workspace().runs / SWEEPS_DIR / f"{sweep_id}.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        raise RecipeError(f"no sweep '{sweep_id}' in this workspace (studio sweeps lists them)") from None


def list_sweeps() -> list[dict]:
    """Every sweep record, newest first."""
    folder = workspace().runs / SWEEPS_DIR
    records = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError:
            continue
    return sorted(records, key=lambda r: r.get("created_at", ""), reverse=True)


def compare(sweep_id: str) -> list[dict]:
    """One row per run: its grid values, state, steps, final train loss, best eval loss and its
    `evaluation` (see `evaluation_of`); rows sorted by best eval loss (runs without one last)."""
    record = read_sweep(sweep_id)
    rows = []
    for entry in record["runs"]:
        path = workspace().runs / entry["run_id"]
        info = runs.run_info(path) if runs.is_run_dir(path) else None
        rows.append({"run_id": entry["run_id"], **{k: v for k, v in entry["params"].items()},
                     "state": info.state if info else "deleted", "step": info.step if info else None,
                     "final_loss": info.final_loss if info else None,
                     "best_eval_loss": info.best_eval_loss if info else None,
                     "evaluation": evaluation_of(path) if info else {"state": "none"}})
    return sorted(rows, key=lambda r: (r["best_eval_loss"] is None, r["best_eval_loss"] or 0.0))


def evaluation_of(path: Path) -> dict:
    """A run's evaluation after training: `state` none (no evaluation asked for, or not yet),
    running, done or failed; when done, the verdict's `headline`, the `regressed` metric names
    with their `regressions` lines, the headline `metrics` (label, unit, base, tuned, delta,
    interval, beyond_uncertainty) and the report's `folder`; when failed, the `error`."""
    entry = run_dir.read_evaluation(path)
    state = entry.get("state") if entry.get("state") in run_dir.EVAL_STATES else "none"
    found: dict = {"state": state}
    if state == "done":
        found.update(headline=entry.get("headline"), regressed=list(entry.get("regressed") or []),
                     regressions=list(entry.get("regressions") or []), metrics=dict(entry.get("metrics") or {}),
                     prompt_set=entry.get("prompt_set"), forgot=entry.get("forgot"),
                     folder=str(Path(path) / run_dir.EVAL_DIR))
    elif state == "failed":
        found["error"] = entry.get("error")
    return found


def best_runs(rows: list[dict]) -> dict:
    """The run to pick by each measure: lowest eval loss, and on the prompt set the best tuned
    value of the first headline metric among the evaluated runs where nothing regressed."""
    by_loss = next((row["run_id"] for row in rows if row["best_eval_loss"] is not None), None)
    clean = [row for row in rows if row["evaluation"]["state"] == "done" and not row["evaluation"]["regressed"]
             and not row["evaluation"].get("forgot")]
    metric = next((name for row in clean for name, line in row["evaluation"]["metrics"].items()
                   if line.get("tuned") is not None), None)
    scored = [row for row in clean if (row["evaluation"]["metrics"].get(metric) or {}).get("tuned") is not None]
    if not scored:
        return {"eval_loss": by_loss, "prompt_set": None, "metric": None}
    line = scored[0]["evaluation"]["metrics"][metric]
    sign = -1 if line.get("prefer") == "fewer" else 1
    best = max(scored, key=lambda row: sign * row["evaluation"]["metrics"][metric]["tuned"])  # ties: the lower eval loss
    return {"eval_loss": by_loss, "prompt_set": best["run_id"], "metric": line.get("label") or metric}


NA = "n/a"


def table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """The comparison as display columns: run, grid values, state, step, losses (floats or None),
    then the evaluation in a few text cells (n/a where a run has none): its state, what
    regressed, each headline metric's tuned value and change vs base (⚑: beyond its interval),
    and the verdict's headline."""
    if not rows:
        return ["run"], []
    grid = [key for key in rows[0] if key not in _FIXED]
    metrics: dict[str, str] = {}
    for row in rows:
        for name, line in row["evaluation"].get("metrics", {}).items():
            metrics.setdefault(name, line.get("label") or name)
    headers = (["run", *(_short(key) for key in grid), "state", "step", "final loss", "best eval loss", "evaluation", "regressed",
                "forgot", *metrics.values(), "verdict"])
    cells = []
    for row in rows:
        evaluation = row["evaluation"]
        done = evaluation["state"] == "done"
        cells.append([row["run_id"], *(row[key] for key in grid), row["state"], row["step"],
                      _round(row["final_loss"]), _round(row["best_eval_loss"]), evaluation["state"],
                      _regressed(evaluation, shown=metrics) if done else NA, _forgot(evaluation) if done else NA,
                      *(_metric(evaluation["metrics"].get(name)) if done else NA for name in metrics),
                      _verdict(evaluation)])
    return headers, cells


_FIXED = ("run_id", "state", "step", "final_loss", "best_eval_loss", "evaluation")


def _short(field: str) -> str:
    return field.replace("training.", "").replace("lora.", "lora ")


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def _change(line: dict) -> str:
    if line.get("tuned") is None:
        return NA
    percent = line.get("unit") == "%"
    value = f"{line['tuned'] * 100:.0f}%" if percent else f"{line['tuned']:.2f}"
    if line.get("delta") is None:
        return value
    delta = f"{line['delta'] * 100:+.1f} pts" if percent else f"{line['delta']:+.2f}"
    return f"{value} ({delta}{' ⚑' if line.get('beyond_uncertainty') else ''})"


def _metric(line: dict | None) -> str:
    return _change(line) if line else NA


def _forgot(evaluation: dict) -> str:
    """"no", or the benchmark tasks the run forgot with their change in points ("n/a": none were run)."""
    forgot = evaluation.get("forgot")
    if forgot is None:
        return NA
    return ", ".join(f"{item.get('name', item['task'])} {item['delta'] * 100:+.1f}" for item in forgot) or "no"


def _regressed(evaluation: dict, shown) -> str:
    """"no", or what regressed: a metric with its own column by name, any other with its change."""
    lines = evaluation.get("regressions") or [{"metric": name} for name in evaluation["regressed"]]
    return "; ".join(line.get("label") or line["metric"] if line["metric"] in shown or "tuned" not in line
                     else f"{line.get('label') or line['metric']} {_change(line)}" for line in lines) or "no"


def _verdict(evaluation: dict) -> str:
    state = evaluation["state"]
    if state == "done":
        return evaluation.get("headline") or NA
    if state == "failed":
        return f"evaluation failed: {evaluation.get('error') or 'see train.log'}"
    return "evaluating base vs best…" if state == "running" else NA
