"""Preflight: the checks every start makes before anything is written or loaded (QLoRA without
CUDA, a dataset that is missing or can't be read, an unknown model, GRPO rewards that can't run
here). The dry run, the UI and the worker all call this one function, so a recipe the dry run
accepts is one the real run accepts; the dry run only turns "QLoRA needs CUDA" into a note,
because validating a GPU recipe on a laptop is what it is for. Knows nothing about processes or
trainers."""

from __future__ import annotations

from core.models import (
    ModelNotFound,
    QLoRANeedsCUDA,
    device_policy,
    four_bit_config,
    resolve,
)
from core.recipes import Recipe, RecipeError, check_dataset_exists
from core.train import trackers

QLORA_NOTE = "QLoRA needs a CUDA GPU: this machine can validate the recipe but not run it (use tuning: lora here)."


def preflight(recipe: Recipe, *, dry_run: bool = False) -> list[str]:
    """Fail before anything loads: QLoRA without CUDA (a note in a dry run), a dataset that is
    missing, unreadable, empty or of no known format, a model name that resolves to nothing.
    Returns the notes a dry run shows."""
    notes = []
    if recipe.training.tuning == "qlora":
        try:
            four_bit_config(device_policy())  # raises QLoRANeedsCUDA with the way out
        except QLoRANeedsCUDA:
            if not dry_run:
                raise
            notes.append(QLORA_NOTE)
    check_dataset_readable(recipe)
    try:
        resolve(recipe.model.name)
    except ModelNotFound as error:
        where = f"{recipe.source}: " if recipe.source else ""
        raise RecipeError(f"{where}model.name: {error}") from None
    trackers.check_installed(recipe)
    if recipe.training.method == "grpo":
        from core.train.rewards import check_rewards

        check_rewards(recipe)
    return notes


def check_dataset_readable(recipe: Recipe) -> None:
    """Open the dataset the way training will and read its first rows: an unsupported file, an
    empty folder, a truncated Parquet file or rows of no known format fail here, naming data.path."""
    from core.dataset import formats, reader

    where = f"{recipe.source}: " if recipe.source else ""
    data = recipe.data
    if data.format not in ("auto",) + formats.FORMATS:
        raise RecipeError(f"{where}data.format: expected auto or one of {', '.join(formats.FORMATS)}, got {data.format!r}")
    path = check_dataset_exists(recipe)
    try:
        opened = reader.stream(path, data.format, format_template=data.format_template, system_prompt=data.system_prompt)
    except reader.DatasetError as error:
        raise RecipeError(f"{where}data.path: {error}") from None
    except ValueError as error:  # a friction template that can't be filled
        raise RecipeError(f"{where}data.format_template: {error}") from None
    if opened.format == "unknown":
        raise RecipeError(f"{where}data.path: {path}: {opened.evidence}")
