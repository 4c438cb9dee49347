"""Preflight: the checks every start makes before anything is written or loaded (QLoRA without
CUDA, a missing dataset, an unknown model). The dry run, the UI and the worker all call this one
function, so a recipe the dry run accepts is one the real run accepts. Knows nothing about
processes or trainers."""

from __future__ import annotations

from core.models import device_policy, four_bit_config, resolve
from core.recipes import Recipe, check_dataset_exists
from core.train import trackers


def preflight(recipe: Recipe) -> None:
    """Fail before anything loads: QLoRA without CUDA, a missing dataset, an unknown model."""
    if recipe.training.tuning == "qlora":
        four_bit_config(device_policy())  # raises QLoRANeedsCUDA with the way out
    check_dataset_exists(recipe)
    resolve(recipe.model.name)
    trackers.check_installed(recipe)
