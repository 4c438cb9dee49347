"""The benches run end to end on the tiny model and write the keys their README lines quote (no
timing is asserted: timings live in bench/, read on a quiet machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_chat_speed_bench_runs_and_reports_its_ratios(tmp_path, tiny_model_dir):
    out = tmp_path / "chat.json"
    _run(["bench/chat_speed.py", "--model", str(tiny_model_dir), "--tokens", "4", "--prompts", "2", "--repeats", "1",
          "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    assert {"pair_ratio", "ab_speedup", "greedy_identical", "engine_threads"} <= set(result)
    assert result["greedy_identical"] is True


@pytest.mark.slow
def test_smoke_recipe_bench_runs_and_reports_the_outside_share(tmp_path, tiny_model_dir):
    out = tmp_path / "smoke.json"
    _run(["bench/smoke_recipe.py", "--set", f"model.name={tiny_model_dir}", "--set", "training.max_steps=3",
          "--set", "training.eval_steps=2", "--set", "training.save_steps=2", "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    assert result["steps"] == 3 and 0 <= result["outside_share"] <= 1


@pytest.mark.slow
def test_probe_time_bench_runs_base_and_tuned(tmp_path):
    out = tmp_path / "probe.json"
    _run(["bench/probe_time.py", "--limit", "2", "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    assert result["items"] == 8 and {"base_and_tuned_s", "plain_transformers_mc_s_one_side", "ratio_to_plain_both_sides"} <= set(result)
    assert all(line["base"] == line["tuned"] for line in result["scores"].values())  # a zero LoRA is the base exactly


@pytest.mark.slow
def test_train_throughput_bench_runs_and_compares_the_lora_layers_and_the_head_pass_by_pass(tmp_path, tiny_model_dir):
    out = tmp_path / "train.json"
    _run(["bench/train_throughput.py", "--set", f"model.name={tiny_model_dir}", "--steps", "2", "--repeats", "1",
          "--skip-defaults", "--layer-pairs", "2", "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    assert {"a_over_c", "a_over_tuned_trl", "mfu_a_shape", "shape_ceiling", "lora_layers"} <= set(result)
    layers = result["lora_layers"]
    assert layers["pairs"] == 2 and layers["peft_over_fused_median"] > 0
    assert layers["loss_relative_difference"] < 0.02  # the same model either way
    head = result["head_loss"]
    assert head["pairs"] == 2 and head["model_over_chunked_median"] > 0 and head["loss_relative_difference"] < 0.02
    passes = result["rms_norm"]
    assert passes["transformers_over_studio_median"] > 0 and passes["loss_relative_difference"] < 0.02
