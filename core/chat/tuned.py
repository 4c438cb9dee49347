"""Which tuned weights a chat side shows: an adapter, a model folder, or a run's best of them,
and whether an adapter fits the base model loaded. Knows runs only through core.train.runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core import models
from core.errors import StudioError
from core.train import run_dir, runs


class AdapterMismatch(StudioError, ValueError):
    """An adapter trained on another base model than the one loaded."""


class TunedModelError(StudioError, ValueError):
    """A tuned-side path that is neither an adapter, a model folder nor a run with one."""


@dataclass(frozen=True)
class TunedSource:
    kind: str  # adapter | model
    path: Path
    label: str
    stamp: float = 0.0  # when its config was written: a rewritten best/ loads afresh


def tuned_source(path: str | Path, *, label: str | None = None) -> TunedSource:
    """What a tuned-side path holds: an adapter folder, a model folder, or a run folder (its best
    adapter/model, else its last checkpoint)."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise TunedModelError(f"{folder}: no such folder. Pick a run's adapter or checkpoint, or a model folder.")
    for kind, config in (("adapter", folder / "adapter_config.json"), ("model", folder / "config.json")):
        if config.is_file():
            return TunedSource(kind, folder, label or folder.name, config.stat().st_mtime)
    if run_dir.is_run_dir(folder) or (folder / run_dir.RECIPE_FILE).is_file():
        artifacts = run_dir.model_artifacts(folder)
        if artifacts:
            best_label, best_path = artifacts[0]
            return tuned_source(best_path, label=label or f"{folder.name}/{best_label}")
        raise TunedModelError(f"{folder} is a run without an adapter, model or checkpoint yet; wait for a checkpoint.")
    raise TunedModelError(f"{folder} holds neither adapter_config.json (a LoRA adapter) nor config.json (a model).")


def tuned_options() -> list[tuple[str, str]]:
    """(label, path) for every adapter, model and checkpoint of every run, newest run first."""
    return [(f"{run.run_id} · {label}", str(path))
            for run in runs.list_runs() for label, path in runs.model_artifacts(run.path)]


def _identities(name: str) -> set[str]:
    """Every spelling that names the same base model: the name, its folder, its Hub id."""
    name = (name or "").strip()
    found = {name.lower()} if name else set()
    if models.is_embedded(name) or name.lower() == models.EMBEDDED_HUB_ID.lower():
        found.add(models.EMBEDDED_HUB_ID.lower())
    folder = Path(name).expanduser()
    if name and folder.is_dir():
        found.add(str(folder.resolve()).lower())
        marker = folder / "studio_source.json"
        if marker.is_file():
            found.add(str(json.loads(marker.read_text()).get("hub_id", "")).lower())
    if folder.name == models.EMBEDDED_FOLDER:  # our converted copy, even from another workspace
        found.add(models.EMBEDDED_HUB_ID.lower())
    return found - {""}


def check_adapter_base(adapter_dir: str | Path, base_name: str) -> None:
    """Refuse an adapter recorded as trained on another base, naming both."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    trained_on = json.loads(config_file.read_text()).get("base_model_name_or_path") or ""
    if not trained_on:
        return  # not recorded: nothing to compare; loading fails loudly if the shapes differ
    resolved = models.resolve(base_name)
    ours = set().union(*(_identities(n) for n in (resolved.name, resolved.path, resolved.hub_id or "")))
    if _identities(trained_on) & ours:
        return
    shown = resolved.hub_id or resolved.path
    raise AdapterMismatch(
        f"The adapter {adapter_dir} was trained on base model '{trained_on}', but the base model loaded "
        f"here is '{base_name}' ({shown}). Pick '{trained_on}' as the base model, or an adapter trained on '{shown}'."
    )
