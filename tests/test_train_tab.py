"""Train tab handlers, called directly: form <-> YAML sync, save, start refusals, and the
live view drawn from a run folder."""

from __future__ import annotations

import json
import os

import gradio as gr
import plotly.graph_objects as go
import yaml

from core.train import runs
from core.workspace import CONFIGS, workspace
from studio.ui.train import charts as train_charts
from studio.ui.train import form as train_form
from studio.ui.train import tab as train_tab

FIELDS = train_form.COMMON + train_form.ADVANCED


def _values(outputs):
    return dict(zip(FIELDS, outputs[: len(FIELDS)]))


def test_the_dataset_tab_offers_its_file_and_never_swaps_it_in():
    """Issue 22: opening a file in the Dataset tab silently replaced the loaded recipe's dataset.
    Now its change only offers a button; the form changes when the person presses it."""
    with gr.Blocks() as app:
        source = gr.Textbox()
        train_tab.build_train_tab(dataset_path=source)
    on_change = [fn.fn for fn in app.fns.values() if (source._id, "change") in fn.targets]
    assert on_change == [train_tab.offer_dataset]
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(FIELDS)]
    offered = train_tab.offer_dataset(str(workspace().datasets / "mine.jsonl"), text)
    assert offered["visible"] is True and "mine.jsonl" in offered["value"]
    own = train_form.recipe_from_yaml(text).dataset_path()
    assert own.name == "friction_sample.jsonl" and train_tab.offer_dataset(str(own), text)["visible"] is False


def test_the_run_says_which_dataset_and_warns_on_tiny_or_broken_data():
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(FIELDS)]
    line = train_tab.dataset_from_recipe(text)
    assert "`friction_sample.jsonl` (the recipe's data.path)" in line and "⚠️" not in line
    broken = workspace().datasets / "uploads" / "broken.jsonl"
    broken.parent.mkdir(parents=True)
    good = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})
    broken.write_text(good + "\n{not json\n" + good + "\n")
    _, text, _, _ = train_tab.use_dataset(str(broken), text)
    line = train_tab.dataset_from_dataset_tab(text)
    assert "`broken.jsonl` (picked from the Dataset tab) · 2 examples, 1 row(s) that can't be used" in line
    assert "Only 2 usable example(s)" in line and "1 of 3 rows" in line and "(first: line 2: not valid JSON" in line
    assert train_tab.dataset_from_form(text.replace(str(broken), "/etc/passwd")).startswith("**Dataset for this run:** ⚠️")


def test_stale_lines_go_away():
    assert train_tab.clear_line() == ""
    run = _fake_run("stopped-run", "stopped", [1.0])
    assert train_tab.settle_run_line(run.name, "Stopping: the run saves a checkpoint") == "`stopped-run` stopped."
    live = _fake_run("live-run", "running", [1.0])
    assert train_tab.settle_run_line(live.name, "Stopping: the run saves a checkpoint") is not None
    assert isinstance(train_tab.settle_run_line(run.name, "Started `x`."), type(gr.skip()))


def test_load_recipe_fills_form_and_yaml():
    outputs = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))
    values = _values(outputs)
    assert values["model.name"] == "embedded" and values["training.learning_rate"] == 1e-3
    assert values["lora.target_modules"] == "all-linear"
    text = outputs[len(FIELDS)]
    assert yaml.safe_load(text)["data"]["path"] == "assets/friction_sample.jsonl"  # still resolves outside configs/


def test_form_edit_rewrites_yaml_and_yaml_edit_refills_form():
    outputs = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))
    values, text = list(outputs[: len(FIELDS)]), outputs[len(FIELDS)]
    values[FIELDS.index("training.learning_rate")] = 5e-4
    values[FIELDS.index("training.eval_steps")] = None  # blank optional number
    new_text, status, _, _ = train_tab.form_changed(text, *values)
    data = yaml.safe_load(new_text)
    assert data["training"]["learning_rate"] == 5e-4 and data["training"]["eval_steps"] is None
    assert "valid" in status
    data["training"]["batch_size"] = 8
    refilled = train_tab.yaml_changed(yaml.safe_dump(data))
    assert _values(refilled)["training.batch_size"] == 8


def test_bad_values_are_named_not_raised():
    outputs = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))
    values, text = list(outputs[: len(FIELDS)]), outputs[len(FIELDS)]
    values[FIELDS.index("training.learning_rate")] = -1
    _, status, _, _ = train_tab.form_changed(text, *values)
    assert "training.learning_rate" in status
    *_, status, _ = train_tab.yaml_changed("training: [unclosed")
    assert "not valid" in status


def test_save_recipe_lands_in_workspace_and_picker():
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(FIELDS)]
    status, update = train_tab.save_recipe(text, "my-smoke")
    saved = workspace().root / "recipes" / "my-smoke.yaml"
    assert saved.is_file() and "Saved" in status
    assert str(saved) in [value for _, value in train_tab.recipe_choices()]


def test_dataset_from_dataset_tab_fills_the_form():
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(FIELDS)]
    path = workspace().datasets / "mine.jsonl"
    path_value, new_text, status, fmt = train_tab.use_dataset(str(path), text)
    data = yaml.safe_load(new_text)
    assert path_value == str(path) and data["data"]["path"] == str(path)
    assert data["data"]["format"] == "auto" and fmt == "auto" and "detected again" in status  # was friction


def test_start_refusals_are_messages(tmp_path):
    text = train_tab.load_recipe(str(CONFIGS / "friction-qlora.yaml"))[len(FIELDS)]
    current, message = train_tab.start_run(text)
    assert "QLoRA" in message and "LoRA instead" in message
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("{}\n")
    data = yaml.safe_load(text)
    data["data"]["path"], data["training"]["tuning"] = str(outside), "lora"
    _, message = train_tab.start_run(yaml.safe_dump(data))
    assert "outside the folders" in message
    assert runs.list_runs() == []


def test_accelerate_command_shown_for_multi_gpu():
    text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(FIELDS)]
    data = yaml.safe_load(text)
    data["training"].update(distributed="ddp", num_processes=2)
    *_, note = train_tab.yaml_changed(yaml.safe_dump(data))
    assert "accelerate launch --config_file <run-dir>/accelerate_config.yaml --log_dir <run-dir>/launcher -m core.train.worker" in note
    assert "distributed_type: MULTI_GPU" in note and "num_processes: 2" in note  # the config it will write


def _fake_run(name: str, state: str, losses: list[float], dpo: bool = False):
    run = workspace().runs / name
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: fake\ntraining: {method: %s, tuning: lora}\nmodel: {name: embedded}\n"
                                     % ("dpo" if dpo else "sft"))
    (run / "status.json").write_text(json.dumps({"state": state, "pid": os.getpid() if state == "running" else None,
                                                 "step": len(losses), "total_steps": 10, "epoch": 0.5,
                                                 "started_at": runs.now_iso(), "created_at": runs.now_iso()}))
    with open(run / "metrics.jsonl", "w") as handle:
        for step, loss in enumerate(losses, 1):
            record = {"step": step, "split": "train", "loss": loss, "lr": 1e-3, "grad_norm": 1.0, "eta": 30,
                      "tokens_per_s": 500.0, "peak_mem_mb": 2048}
            if dpo:
                record.update({"rewards/accuracies": 0.5, "rewards/margins": 0.1 * step})
            handle.write(json.dumps(record) + "\n")
        handle.write(json.dumps({"step": len(losses), "split": "eval", "loss": losses[-1] + 0.1}) + "\n")
    (run / "train.log").write_text("hello from the worker\n")
    return run


def test_refresh_reattaches_to_the_live_run_and_draws_it():
    _fake_run("old-run", "completed", [3.0, 2.5])
    live = _fake_run("live-run", "running", [4.0, 3.0, 2.0, 1.5])
    current, progress, loss, lr, grad, rewards, *grpo, log, history, overlays, checkpoints, seen = train_tab.refresh(
        "", False, 0.6, ["old-run"], None)
    assert current == live.name  # a reload picks the live run (by id)
    assert "step 4/10" in progress and "500 tokens/s" in progress and "ETA" in progress
    assert isinstance(loss, go.Figure)
    names = [trace.name for trace in loss.data]
    assert {"train loss", "train loss (smoothed)", "eval loss", "old-run (train)"} <= set(names)
    assert "hello from the worker" in log
    assert {row[0] for row in history} == {"old-run", "live-run"}
    assert {row[train_tab.HISTORY_HEADERS.index("where")] for row in history} == {"here"}
    assert rewards["visible"] is False and grpo[0]["visible"] is False  # neither DPO nor GRPO
    again = train_tab.refresh(current, False, 0.6, ["old-run"], seen)
    assert again[2] == gr.update()  # nothing new: the charts are not redrawn


def test_a_reload_mid_run_shows_the_live_runs_recipe():
    assert all(update == gr.update() for update in train_tab.show_live_recipe())  # no run: the form is left alone
    _fake_run("done-run", "completed", [3.0])
    assert all(update == gr.update() for update in train_tab.show_live_recipe())
    live = _fake_run("live-run", "running", [4.0])
    (live / "recipe.yaml").write_text(yaml.safe_dump(
        {"name": "live", "model": {"name": "embedded"}, "data": {"path": str(CONFIGS.parent / "assets" / "friction_sample.jsonl")},
         "training": {"method": "sft", "tuning": "lora", "max_steps": 7}}))
    outputs = train_tab.show_live_recipe()
    values = _values(outputs)
    assert values["training.max_steps"] == 7 and values["data.path"] == "assets/friction_sample.jsonl"
    assert "max_steps: 7" in outputs[len(FIELDS)] and "live-run" in outputs[len(FIELDS) + 1]


def test_dpo_run_shows_rewards_chart():
    run = _fake_run("dpo-run", "completed", [0.69, 0.6], dpo=True)
    outputs = train_tab.refresh(run.name, True, 0.0, [], None)
    rewards = outputs[5]
    assert rewards["visible"] is True and {t.name for t in rewards["value"].data} >= {"rewards/accuracies", "rewards/margins"}
    assert outputs[2].layout.yaxis.type == "log"


def test_smoothing_is_debiased():
    assert train_charts.smooth([2.0, 2.0, 2.0], 0.9) == [2.0, 2.0, 2.0]  # no pull towards zero
    assert train_charts.smooth([1.0, 3.0], 0.0) == [1.0, 3.0]


def test_stop_and_delete_messages():
    run = _fake_run("done-run", "completed", [1.0])
    assert "nothing to stop" in train_tab.stop_run(run.name)
    current, message = train_tab.delete_run(run.name)
    assert current == "" and not run.exists()
