"""Trackers: `training.report_to` passed through to transformers' own tracker callbacks
(tensorboard, wandb, mlflow, trackio), logging into the run folder.

Each tracker's run name is the studio's run id. Its files go under the run folder (tensorboard/,
wandb/, mlruns/, trackio/), and the ones with an offline mode use it unless the user's environment
already chose (WANDB_MODE, MLFLOW_TRACKING_URI, ...): nothing leaves the machine by surprise. The
completion webhook is core.train.webhook. This module knows nothing about run folders' contents,
trainers' internals or the UI.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from core.recipes import Recipe, RecipeError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}
PROJECT = "tuning-studio"


def trainer_kwargs(recipe: Recipe, output_dir: str) -> dict:
    """report_to and run_name for TrainingArguments: the run id names the tracker's run."""
    report_to = list(recipe.training.report_to)
    if not report_to:
        return {"report_to": "none"}
    kwargs = {"report_to": report_to, "run_name": Path(output_dir).parent.name}
    if "trackio" in report_to:
        kwargs["project"] = PROJECT
    return kwargs


def environment(recipe: Recipe, run_dir: Path) -> dict:
    """Environment the trackers read: files in the run folder, offline modes. Only keys the
    user's environment doesn't already set are returned."""
    run_dir = Path(run_dir)
    wanted: dict[str, str] = {}
    for name in recipe.training.report_to:
        if name == "tensorboard":
            wanted["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
        elif name == "wandb":
            wanted.update(WANDB_MODE="offline", WANDB_DIR=str(run_dir), WANDB_PROJECT=PROJECT)
        elif name == "mlflow":
            wanted.update(MLFLOW_TRACKING_URI=(run_dir / "mlruns").resolve().as_uri(), MLFLOW_EXPERIMENT_NAME=PROJECT)
        elif name == "trackio":
            wanted["TRACKIO_DIR"] = str(run_dir / "trackio")
    return {key: value for key, value in wanted.items() if key not in os.environ}


_OWN = "STUDIO_TRACKER_KEYS"  # the variables this process set for its own run, not the user's


def apply(recipe: Recipe, run_dir: Path) -> None:
    """Set this run's tracker variables in this (worker) process, remembering which are ours."""
    env = environment(recipe, run_dir)
    os.environ.update(env)
    os.environ[_OWN] = ",".join(sorted(set(env) | set(filter(None, os.environ.get(_OWN, "").split(",")))))


def clean_env(env: dict) -> dict:
    """A child's environment without the variables a worker set for its own run (a worker that
    starts the next queued run must not send that run's tensorboard files into its own folder)."""
    for key in filter(None, env.pop(_OWN, "").split(",")):
        env.pop(key, None)
    return env


def check_installed(recipe: Recipe) -> None:
    """A tracker named in the recipe must be importable; say which package to install."""
    missing = [name for name in recipe.training.report_to if importlib.util.find_spec(PACKAGES[name]) is None]
    if missing:
        raise RecipeError(f"training.report_to names {', '.join(missing)}, not installed here: "
                          f"pip install {' '.join(PACKAGES[m] for m in missing)} (or remove it from the recipe)")
