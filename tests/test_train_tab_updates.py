"""The Train tab's handlers speak in named updates, and its 2-second tick reads only the open run."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from core.train import runs
from core.workspace import CONFIGS, workspace
from studio.ui.train import form as train_form
from studio.ui.train import tab as train_tab
from studio.ui.train.form import FIELDS, FormFill


def _run(name: str, state: str = "completed") -> str:
    run = workspace().runs / name
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: fake\nmodel: {name: embedded}\n")
    (run / "status.json").write_text(json.dumps({"state": state, "step": 1, "total_steps": 2,
                                                 "started_at": runs.now_iso(), "created_at": runs.now_iso()}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "loss": 2.0}) + "\n")
    return name  # the browser names runs by id


def test_a_form_fill_is_named_and_ordered_for_its_outputs():
    fill = FormFill({"training.max_steps": 7}, yaml="name: x\n", status="ok", note="")
    assert len(fill) == len(FIELDS) + 3
    assert fill[FIELDS.index("training.max_steps")] == 7 and fill[FIELDS.index("model.name")] == gr.update()
    assert list(fill[len(FIELDS):]) == ["name: x\n", "ok", ""]
    assert len(FormFill(status="ok")) == len(FIELDS) + 2  # no YAML view for handlers that don't write it
    form = [object() for _ in FIELDS]
    yaml_view, status, note = object(), object(), object()
    assert FormFill.outputs(form, yaml=yaml_view, status=status, note=note)[len(FIELDS):] == [yaml_view, status, note]
    with pytest.raises(KeyError, match="training.nope"):
        FormFill({"training.nope": 1})


def test_load_recipe_names_its_fields():
    fill = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))
    assert isinstance(fill, FormFill)
    assert dict(zip(FIELDS, fill))["model.name"] == train_form.form_dict(train_form.default_recipe())["model.name"]


def test_the_tick_reads_only_the_open_run(monkeypatch):
    for n in range(3):
        _run(f"other-{n}")
    open_run = _run("open-run", "completed")
    first = train_tab.refresh(open_run, False, 0.6, [], None)
    assert {row[0] for row in first.history} == {"other-0", "other-1", "other-2", "open-run"}
    read = []
    real = runs.read_metrics
    monkeypatch.setattr(runs, "read_metrics", lambda path: read.append(str(path)) or real(path))
    tick = train_tab.refresh(open_run, False, 0.6, [], first.seen)
    assert read == [str(workspace().runs / open_run)] and tick.history == gr.update()  # nothing came or went: the table is left alone
    _run("new-run")
    tick = train_tab.refresh(open_run, False, 0.6, [], tick.seen)
    assert "new-run" in {row[0] for row in tick.history} and "new-run" in tick.overlays["choices"]
