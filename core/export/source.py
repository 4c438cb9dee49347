"""What an export starts from: a run folder (and which of its checkpoints) or an adapter or model
folder, with the recipe it was trained from and the base model it must be merged onto."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from core import models
from core.errors import StudioError
from core.train.run_dir import CHECKPOINTS, FINAL, RECIPE_FILE, UnknownBase, base_model_for, run_holding
from core.train.runs import model_artifacts
from core.workspace import workspace


class ExportError(StudioError, RuntimeError):
    """An export that cannot go on; the message says what was wrong, where, and what to do."""


@dataclass
class Source:
    name: str  # the export folder's name: the run's, or the adapter folder's
    artifact: Path  # the adapter or full-model folder being exported
    label: str  # best, adapter, checkpoint-20, ...
    kind: str  # adapter | model
    run_dir: Path | None = None
    recipe: dict | None = None
    base_name: str | None = None  # what core.models loads as the base for merging
    base_hub_id: str | None = None  # the real Hub id, for model cards


def run_artifacts(run_dir: Path) -> list[tuple[str, Path]]:
    return list(model_artifacts(run_dir))


def pick(artifacts: list[tuple[str, Path]], checkpoint: str, run_dir: Path) -> tuple[str, Path]:
    """`best` (the default) is the first artifact in preference order (best/, the final adapter
    or model, the newest checkpoint); `last` the final one or the newest checkpoint; else a label
    or folder name."""
    if not artifacts:
        raise ExportError(f"{run_dir}: this run has no checkpoint, adapter or model folder yet, so there is nothing to export. "
                          "Wait for its first checkpoint (training.save_steps) or pick another run.")
    wanted = (checkpoint or "best").strip()
    for label, path in artifacts:
        if wanted in (label, path.name):
            return label, path
    if wanted == "best":
        return artifacts[0]
    if wanted == "last":
        final = [(label, path) for label, path in artifacts if path.name in FINAL]
        checkpoints = [(label, path) for label, path in artifacts if path.parent.name == CHECKPOINTS]
        return (final or checkpoints or artifacts)[0]
    names = ", ".join(label for label, _ in artifacts)
    raise ExportError(f"{run_dir}: no checkpoint named '{checkpoint}'. This run has: {names}.")


def resolve_source(path: str | Path, checkpoint: str = "best") -> Source:
    """A run folder (pick a checkpoint, best by default) or an adapter/model folder."""
    folder = Path(path).expanduser()
    if not folder.is_absolute() and not folder.exists() and (workspace().runs / folder).is_dir():
        folder = workspace().runs / folder
    if not folder.is_dir():
        raise ExportError(f"{path}: no such run or adapter folder. Runs live in {workspace().runs}.")
    folder = folder.resolve()
    is_artifact = (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()
    if is_artifact:
        run_dir = run_holding(folder.parent)
        if run_dir is None and folder.parent.name == CHECKPOINTS:
            run_dir = folder.parent.parent
        label, artifact = folder.name, folder
    else:
        run_dir = folder
        label, artifact = pick(run_artifacts(folder), checkpoint, folder)
    recipe = _read_recipe(artifact, run_dir)
    kind = "adapter" if (artifact / "adapter_config.json").is_file() else "model"
    source = Source(name=(run_dir or folder).name, artifact=artifact, label=label, kind=kind, run_dir=run_dir, recipe=recipe)
    _find_base(source)
    return source


def _read_recipe(artifact: Path, run_dir: Path | None) -> dict | None:
    for place in (artifact, run_dir):
        if place and (place / RECIPE_FILE).is_file():
            return yaml.safe_load((place / RECIPE_FILE).read_text(encoding="utf-8")) or {}
    return None


def _find_base(source: Source) -> None:
    """The base model to merge onto (core.train.run_dir.base_model_for) and its real Hub id; a full
    model is its own base. A base that resolves nowhere is an error, not a guess."""
    recipe_model = ((source.recipe or {}).get("model") or {}).get("name")
    if source.kind == "model":
        source.base_name = str(source.artifact)
        marker = models.hub_id_recorded_in(source.artifact)
        source.base_hub_id = marker or (models.EMBEDDED_HUB_ID if recipe_model and models.is_embedded(recipe_model) else None)
        if not source.base_hub_id and recipe_model and models.HUB_ID.match(recipe_model):
            source.base_hub_id = recipe_model
        return
    try:
        source.base_name = base_model_for(source.artifact)  # the one answer, shared with chat and evaluation
    except UnknownBase as error:
        raise ExportError(str(error)) from None
    source.base_hub_id = models.resolve(source.base_name).hub_id
