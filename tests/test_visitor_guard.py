"""Everything a browser sends stays inside the workspace: run ids, not paths; forged select events,
dropdown values and typed paths go through the one guard; demo mode opens only bundled data and
the embedded model; a run folder outside the workspace's runs/ is refused. Handlers are called
directly here; tests/test_event_walk.py posts the same through the real queue API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
import yaml

from core import recipes
from core.train import run_dir, runs
from core.workspace import ASSETS, CONFIGS, workspace
from studio.ui import visitor
from studio.ui.chat import tab as chat_tab
from studio.ui.dataset import summary as dataset_summary
from studio.ui.dataset import tab as dataset_tab
from studio.ui.export import tab as export_tab
from studio.ui.train import tab as train_tab

SECRET = "SENTINEL-7f3a-do-not-leak"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """A folder outside the workspace that looks like a finished run, with a secret in its log."""
    folder = tmp_path / "outside" / "somewhere"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "completed", "step": 3, "total_steps": 3}))
    (folder / "train.log").write_text(f"{SECRET}\n")
    (folder / "recipe.yaml").write_text("name: outside\nmodel: {name: embedded}\n")
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    (folder / "data.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": SECRET},
                                                                {"role": "assistant", "content": SECRET}]}) + "\n")
    return folder


def _hostile(sentinel: Path) -> list[str]:
    runs_folder = workspace().runs
    relative = Path("..") / ".." / ".." / sentinel.relative_to(sentinel.anchor)
    (runs_folder / "escape").symlink_to(sentinel, target_is_directory=True)
    return ["../../somewhere", str(relative), str(sentinel), "/etc", "escape", "%2e%2e%2fsomewhere",
            f"runs/../../{sentinel.name}", ".."]


def _select(value) -> gr.SelectData:
    return gr.SelectData(None, {"index": [0, 0], "value": value, "row_value": [value], "col_value": [value],
                                "selected": True})


def test_run_ids_are_plain_names_of_runs_in_the_workspace(sentinel):
    (workspace().runs / "real").mkdir(parents=True)
    (workspace().runs / "real" / "status.json").write_text('{"state": "completed"}')
    (workspace().runs / "not-a-run").mkdir()
    assert run_dir.run_path("real") == (workspace().runs / "real").resolve()
    for bad in [*_hostile(sentinel), "", "not-a-run", "missing", "real/../real", "a\\b"]:
        with pytest.raises(runs.UnknownRun):
            run_dir.run_path(bad)
    assert [info.run_id for info in runs.list_runs()] == ["real"]  # the link out of runs/ is no run


def test_a_forged_history_select_can_neither_read_nor_delete_outside(sentinel):
    """The regression of issue 12: select row `../../somewhere`, refresh, delete the open run."""
    for value in _hostile(sentinel):
        current = train_tab.open_run(_select(value))
        assert current == gr.update(), value  # the open run does not change
        opened = train_tab.refresh(value, False, 0.6, [value], None)  # even were the state forged
        assert SECRET not in repr(opened) and opened[0] == "", value
        _, message = train_tab.delete_run(value)
        assert "not a run" in message, value
        assert "not a run" in train_tab.stop_run(value) and "Not resumed" in train_tab.resume_run(value, "last")[1]
    assert (sentinel / "status.json").is_file() and (sentinel / "train.log").read_text() == f"{SECRET}\n"


def test_core_refuses_to_delete_a_folder_outside_the_runs_folder(sentinel):
    with pytest.raises(runs.RunError, match="not a run folder of this workspace"):
        runs.delete_run(sentinel)
    assert sentinel.is_dir()


def test_export_tab_addresses_runs_by_id(sentinel):
    for value in _hostile(sentinel):
        assert export_tab.checkpoint_choices(value) == [("best (default)", "best")], value
        status, *_ = next(export_tab.run_export_stream(value, "best", True, False, False, False, False, "q8_0", "", "",
                                                       "", True, "", "auto"))
        assert "not a run of this workspace" in status and SECRET not in status


def test_chat_compare_never_walks_above_the_workspace(tmp_path, monkeypatch):
    above = tmp_path / "above"
    (above / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (above / "status.json").write_text('{"state": "completed"}')
    monkeypatch.setenv("STUDIO_HOME", str(above / "ws"))
    assert chat_tab.compare_choices("runs")["choices"] == []
    assert chat_tab.compare_choices(str(above))["choices"] == []


def test_dataset_tab_refuses_paths_and_links_out(sentinel):
    link = workspace().datasets / "escape.jsonl"
    link.symlink_to(sentinel / "data.jsonl")
    assert all("escape" not in label for label, _ in dataset_tab.dataset_choices())
    for typed in ["../../outside/somewhere/data.jsonl", str(sentinel / "data.jsonl"), "datasets/escape.jsonl",
                  "%2e%2e%2fdata.jsonl"]:
        path, status = dataset_tab.open_dataset(None, None, typed, "auto", "")
        assert path == "" and SECRET not in status, typed
    path, status = dataset_tab.open_dataset(str(link), None, None, "auto", "")
    assert path == "" and "outside" in status


def test_typed_model_folders_go_through_the_guard(sentinel, monkeypatch):
    monkeypatch.delenv("STUDIO_MODEL_DIRS", raising=False)
    assert visitor.model("embedded") == "embedded" and visitor.model("Qwen/Qwen3-4B") == "Qwen/Qwen3-4B"
    for name in (str(sentinel), "../../outside/somewhere", "~/"):
        with pytest.raises(visitor.Refused):
            visitor.model(name)
    monkeypatch.setenv("STUDIO_MODEL_DIRS", str(sentinel.parent))
    assert visitor.model(str(sentinel)) == str(sentinel.resolve())  # the operator allowed that folder


def test_the_dry_run_refuses_a_model_folder_outside_the_workspace(sentinel, monkeypatch):
    monkeypatch.setenv("STUDIO_DEMO", "0")
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(train_tab.train_form.COMMON + train_tab.train_form.ADVANCED)]
    data = yaml.safe_load(text)
    data["model"] = {"name": str(sentinel), "trust_remote_code": True}
    message = train_tab.check_plan(yaml.safe_dump(data))
    assert "outside the folders" in message


# ---------------------------------------------------------------- demo mode


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setenv("STUDIO_DEMO", "1")


def test_demo_opens_only_bundled_datasets(demo, tmp_path):
    mine = workspace().datasets / "mine.jsonl"
    mine.write_text((ASSETS / "friction_sample.jsonl").read_text())
    assert all(label.startswith("Sample: ") for label, _ in dataset_tab.dataset_choices())
    for choice, typed in ((str(mine), None), (None, str(mine)), (None, "HuggingFaceH4/no_robots")):
        path, status = dataset_tab.open_dataset(choice, None, typed, "auto", "")
        assert path == "" and "bundled sample datasets" in status, (choice, typed)
    upload = tmp_path / "up.jsonl"
    upload.write_text(mine.read_text())
    path, status = dataset_tab.open_dataset(None, str(upload), None, "auto", "")
    assert path == "" and "bundled sample datasets" in status
    assert not (workspace().datasets / "uploads").exists()
    path, _ = dataset_tab.open_dataset(str(ASSETS / "friction_sample.jsonl"), None, None, "auto", "")
    assert path == str(ASSETS / "friction_sample.jsonl")
    dataset_summary.check_dataset(path)
    assert "embedded model" in dataset_summary.count_tokens(path, "/some/model", 2048)[0]


def test_demo_dry_run_refuses_other_models_without_looking_at_them(demo, sentinel):
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(train_tab.train_form.COMMON + train_tab.train_form.ADVANCED)]
    data = yaml.safe_load(text)
    messages = []
    for name in (str(sentinel), str(sentinel / "missing"), "Qwen/Qwen3-4B"):
        data["model"] = {"name": name, "trust_remote_code": True}
        messages.append(train_tab.check_plan(yaml.safe_dump(data)).replace(name, "NAME"))
    assert len(set(messages)) == 1 and "trains only the embedded model" in messages[0]  # existence is not told
    data["model"] = {"name": "embedded"}
    data["data"]["path"] = str(workspace().datasets / "mine.jsonl")
    assert "bundled sample datasets" in train_tab.check_plan(yaml.safe_dump(data))
    with pytest.raises(recipes.RecipeError, match="data.path"):
        from core.train import training

        training.plan(recipes.from_dict({"data": {"path": str(sentinel / "data.jsonl")}}))


def test_demo_chat_uses_only_the_embedded_model(demo):
    *_, last = chat_tab.send_message("Hi", None, "/srv/models/big", "", "", 0.0, 1.0, 8, 0)
    assert "embedded model" in last[5]


# ---------------------------------------------------------------- run folders outside runs/


def test_a_run_dir_outside_the_runs_folder_is_refused(tmp_path):
    recipe = recipes.from_dict({"data": {"path": "assets/friction_sample.jsonl"}, "training": {"max_steps": 1}})
    with pytest.raises(runs.RunError, match="directly inside the workspace's runs folder"):
        runs.start(recipe, run_dir=tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(runs.RunError, match="directly inside the workspace's runs folder"):
        runs.start(recipe, run_dir=workspace().runs / "a" / "nested")
    out = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(CONFIGS / "smoke-cpu.yaml"), "--run-dir",
                          str(tmp_path / "elsewhere")], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "runs folder" in out.stderr
    assert not (tmp_path / "elsewhere").exists()
