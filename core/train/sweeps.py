"""Sweeps: one recipe and a small grid (e.g. learning rate x LoRA rank x epochs) become queued
runs grouped under one sweep id, compared in one table.

A grid is a mapping of dotted recipe fields to value lists (`training.learning_rate=1e-4,3e-4`).
Every combination is built and validated as a full recipe before anything is queued, so a bad
value fails the whole sweep with the field's name. `runs/.sweeps/<id>.json` records the grid and
its runs; each run's status.json carries the sweep id and its own values. This module knows
nothing about trainers or the UI; core.train.queue runs the runs.
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
from core.train import queue, runs
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
    """One row per run: its grid values, state, steps, final train loss and best eval loss;
    rows sorted by best eval loss (runs without one last)."""
    record = read_sweep(sweep_id)
    rows = []
    for entry in record["runs"]:
        path = workspace().runs / entry["run_id"]
        info = runs.run_info(path) if runs.is_run_dir(path) else None
        rows.append({"run_id": entry["run_id"], **{k: v for k, v in entry["params"].items()},
                     "state": info.state if info else "deleted", "step": info.step if info else None,
                     "final_loss": info.final_loss if info else None,
                     "best_eval_loss": info.best_eval_loss if info else None})
    return sorted(rows, key=lambda r: (r["best_eval_loss"] is None, r["best_eval_loss"] or 0.0))
