"""The Train tab's GRPO panel, handlers called directly: the charts and sample table drawn from a
GRPO run folder, hidden for other runs; the reward preview button."""

from __future__ import annotations

import json

import gradio as gr
import yaml

from core.train import runs
from core.workspace import CONFIGS, workspace
from studio.ui.train import charts as train_charts
from studio.ui.train import grpo as train_grpo
from studio.ui.train import tab as train_tab


def _grpo_run(name: str = "grpo-run"):
    run = workspace().runs / name
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: g\ntraining: {method: grpo, tuning: lora}\nmodel: {name: embedded}\n")
    (run / "status.json").write_text(json.dumps({"state": "completed", "step": 3, "total_steps": 3,
                                                 "started_at": runs.now_iso(), "created_at": runs.now_iso()}))
    with open(run / "metrics.jsonl", "w") as handle:
        handle.writelines(json.dumps({
                "step": step, "split": "train", "loss": 0.0, "lr": 1e-4, "reward": 0.2 * step, "reward_std": 0.1,
                "rewards/format/mean": 0.25 * step, "rewards/format/std": 0.4, "rewards/answer/mean": 0.1,
                "rewards/answer/std": 0.0, "kl": 0.01 * step, "completions/mean_length": 12 - step,
                "clip_ratio/region_mean": 0.0}) + "\n" for step in (1, 2, 3))
    with open(run / "completions.jsonl", "w") as handle:
        handle.writelines(json.dumps({"step": step, "prompt": "2+2?", "completion": f"Answer: {step}",
                                     "rewards": {"format": 1.0, "answer": None}, "total": 1.0}) + "\n" for step in (1, 2, 3))
    return run


def test_grpo_run_shows_reward_bands_side_charts_and_sample_table():
    run = _grpo_run()
    outputs = train_tab.refresh(str(run), False, 0.0, [], None)
    panel, rewards, kl, length, clip, table = outputs[6:12]
    assert panel["visible"] is True
    names = [trace.name for trace in rewards.data]
    assert {"format", "answer", "total (weighted)", "format spread", "total (weighted) spread"} <= set(names)
    total = next(trace for trace in rewards.data if trace.name == "total (weighted)")
    assert list(total.y) == [0.2, 0.4, 0.6000000000000001] or [round(v, 6) for v in total.y] == [0.2, 0.4, 0.6]
    assert [round(v, 3) for v in kl.data[0].y] == [0.01, 0.02, 0.03]
    assert list(length.data[0].y) == [11, 10, 9] and clip.data
    assert [row[0] for row in table] == [3, 2, 1]  # newest logging step first
    assert table[0][2] == "Answer: 3" and table[0][4] == "format 1.00, answer -"


def test_sft_run_hides_the_grpo_panel():
    run = workspace().runs / "sft"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "completed", "step": 1}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "loss": 2.0}) + "\n")
    assert train_tab.refresh(str(run), False, 0.0, [], None)[6]["visible"] is False


def test_kl_chart_explains_when_it_is_empty():
    figure = train_charts.grpo_side_figure([{"step": 1, "split": "train", "reward": 1.0}], "kl", "KL", "#000")
    assert "kl_beta" in figure.layout.annotations[0].text


def test_reward_preview_button(tiny_model_dir, tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "2+2?"}], "answer": "4"}) + "\n")
    recipe = {"model": {"name": str(tiny_model_dir)}, "data": {"path": str(workspace().datasets / "p.jsonl")},
              "training": {"method": "grpo", "batch_size": 4},
              "grpo": {"max_completion_length": 4, "rewards": {"format": {"pattern": "^Answer"}, "length": {"max": 10}}}}
    (workspace().datasets / "p.jsonl").write_text(data.read_text())
    summary, rows = train_grpo.preview_rewards(yaml.safe_dump(recipe), 1, 2)
    assert "| format | 1 | 0.00 | 0.00 | 2 |" in summary and "| total |" in summary
    assert len(rows) == 2 and rows[0][:2] == [1, 1] and rows[1][:2] == [1, 2]


def test_reward_preview_refuses_a_path_outside_the_workspace(tmp_path):
    recipe = {"data": {"path": str(tmp_path / "secret.jsonl")}, "training": {"method": "grpo", "batch_size": 4},
              "grpo": {"rewards": {"format": {}}}}
    (tmp_path / "secret.jsonl").write_text("{}\n")
    summary, rows = train_grpo.preview_rewards(yaml.safe_dump(recipe), 1, 2)
    assert summary.startswith("⚠️") and "outside the folders this studio may read" in summary and rows == []


def test_bundled_grpo_recipe_loads_into_the_form():
    outputs = train_tab.load_recipe(str(CONFIGS / "grpo-format-cpu.yaml"))
    text = next(o for o in outputs if isinstance(o, str) and "grpo:" in o)
    assert yaml.safe_load(text)["grpo"]["rewards"]["format"]["pattern"] == "^\\s*The answer is\\b"
    with gr.Blocks():
        train_tab.build_train_tab()
