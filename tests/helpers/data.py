"""Small training data files and recipes on them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core import recipes


def write_chats(path: Path, n: int = 12) -> Path:
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"messages": [
                {"role": "system", "content": "You add numbers."},
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}) + "\n")
    return path


def write_pairs(path: Path, n: int = 8) -> Path:
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(json.dumps({
                "prompt": [{"role": "user", "content": f"Is {i} even?"}],
                "chosen": [{"role": "assistant", "content": "Yes, it is." if i % 2 == 0 else "No, it is odd."}],
                "rejected": [{"role": "assistant", "content": "As an AI I cannot know that."}]}) + "\n")
    return path


def make_recipe(model: Path | str, data: Path, **training_fields) -> recipes.Recipe:
    fields = {"max_steps": 3, "batch_size": 2, "learning_rate": 1e-3, "save_steps": 100}
    fields.update(training_fields)
    return recipes.from_dict({"name": "test", "model": {"name": str(model)},
                              "data": {"path": str(data), "max_length": 128},
                              "training": fields})


def tiny_recipe(tiny_model_dir: Path, data: Path, **training_fields) -> recipes.Recipe:
    fields = {"max_steps": 4, "batch_size": 2, "learning_rate": 1e-3, "save_steps": 2, "eval_steps": 2}
    fields.update(training_fields)
    return recipes.from_dict({"name": "tiny", "model": {"name": str(tiny_model_dir)},
                              "data": {"path": str(data), "max_length": 128, "eval_split": 0.2},
                              "training": fields})


def wait_for(predicate, timeout: float = 120, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def completed_run(name: str) -> str:
    """A finished run folder in the current workspace (core.workspace.workspace()); returns its id."""
    from core.workspace import workspace

    folder = workspace().runs / name
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "completed", "started_at": "2026-12-06T08:00:00"}))
    (folder / "recipe.yaml").write_text(f"name: {name}\n")
    return name


def visitors_runs(server_home: Path, runs_by_identity: dict[str, str]) -> None:
    """One finished run in each visitor's workspace of the server at `server_home` (its secret
    names their folders), e.g. {"user:ana": "ana-run"}."""
    import os

    from core.workspace import as_visitor, visitor_key

    before = os.environ.get("STUDIO_HOME")
    os.environ["STUDIO_HOME"] = str(server_home)
    try:
        for identity, name in runs_by_identity.items():
            with as_visitor(visitor_key(identity)):
                completed_run(name)
    finally:
        os.environ["STUDIO_HOME"] = before or ""
