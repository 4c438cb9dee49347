"""The forecast before Start (core.train.estimate, forecast, calibrate; `studio plan`): exact
parameter counts from a known config, the memory arithmetic part by part, a run that cannot fit
gets the refusal and changes that would fit, Jobs flavors priced from the Hub or the bundled
snapshot, the calibration measured once and cached, and one set of numbers everywhere."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core import recipes
from core.train import calibrate, estimate, training
from core.train import forecast as forecasts
from core.workspace import ASSETS
from tests.helpers.hub_standin import HubStandIn
from tests.helpers.server import ROOT

GB = estimate.GB


def _recipe(model, **training_fields):
    return recipes.from_dict({
        "name": "forecast", "model": {"name": str(model)},
        "data": {"path": str(ASSETS / "friction_sample.jsonl"), "format": "friction",
                 "format_template": "<think>{thought_stream}</think>{final_answer}", "max_length": 256},
        "lora": {"r": 16, "alpha": 32, "target_modules": ["all-linear"]},
        "training": {"max_steps": 4, "batch_size": 2, **training_fields}})


def test_parameters_of_a_known_config(tiny_model_dir):
    """The tiny Llama: vocabulary 49,152, width 64, MLP 128, 2 layers, 4 heads of 16, 2 KV heads, tied head."""
    shape = estimate.model_shape(_recipe(tiny_model_dir))
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 64 * 128 * 3  # q, o; k, v; gate, up, down
    assert shape.linear == 2 * per_layer
    assert shape.total == 49152 * 64 + 2 * (per_layer + 2 * 64) + 64  # embeddings (tied with the head), layers, norms
    assert shape.trainable == 2 * 16 * ((64 + 64) * 2 + (64 + 32) * 2 + (64 + 128) * 3)  # LoRA r=16 on every projection
    assert (shape.layers, shape.hidden, shape.intermediate, shape.kv_dim, shape.vocab) == (2, 64, 128, 32, 49152)
    full = estimate.model_shape(_recipe(tiny_model_dir, tuning="full"))
    assert full.trainable == full.total


def test_memory_part_by_part(tiny_model_dir):
    recipe = _recipe(tiny_model_dir)
    shape = estimate.model_shape(recipe)
    tokens = estimate.Tokens(mean=100, longest=200, per_batch=2, steps=4, per_step=2)
    memory = estimate.memory(shape, tokens, recipe, device="cpu", element_bytes=4, runtime=GB)
    assert memory.weights == shape.total * 4 and memory.adapter == shape.trainable * 4
    assert memory.gradients == shape.trainable * 4 and memory.optimizer == shape.trainable * 8
    per_token = 2 * (10 * 64 + 4 * 32 + 5 * 128) * 4 + 49152 * (4 + 4 + 4)
    assert memory.activations == 2 * 200 * per_token
    assert memory.total == sum(vars(memory).values())
    recipe.training.gradient_checkpointing = True
    assert estimate.activation_bytes(shape, tokens, recipe, element_bytes=4) < memory.activations
    recipe.training.tuning = "qlora"
    four_bit = estimate.memory(shape, tokens, recipe, device="cuda", element_bytes=2, runtime=GB)
    assert four_bit.weights == int(shape.linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + (shape.total - shape.linear) * 2)


def test_a_run_that_cannot_fit_is_refused_with_changes_that_would_fit(tiny_model_dir, monkeypatch):
    recipe = _recipe(tiny_model_dir, batch_size=8)
    plan = training.plan(recipe)
    roomy = forecasts.forecast(recipe, plan, calibrate=False)
    assert roomy.fits and not roomy.warnings
    needed = roomy.peak_bytes
    monkeypatch.setattr(forecasts, "this_machine", lambda: {"device": "cpu", "name": "small", "total_bytes": 8 * GB,
                                                            "available_bytes": int((needed - roomy.memory["activations"] / 2) / 0.9)})
    tight = forecasts.forecast(recipe, plan, calibrate=False)
    assert not tight.fits and tight.peak_bytes == needed
    assert "it would stop with an out-of-memory error" in tight.warnings[0]
    assert tight.suggestions[0]["fits"] and tight.suggestions[0]["peak_bytes"] < needed
    assert {"training.gradient_checkpointing: true", "training.batch_size: 4 with training.grad_accum: 2 (the same examples a step)"} \
        <= {option["change"] for option in tight.suggestions}
    shown = "\n".join(forecasts.lines(tight))
    assert "Fits this machine: NO" in shown and "would fit: " in shown


def test_time_limit_and_jobs_flavors_from_the_snapshot(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no Hub here: the dated snapshot, said so
    recipe = _recipe(tiny_model_dir)
    result = forecasts.forecast(recipe, training.plan(recipe), calibrate=False, on_jobs=True, time_limit_s=1)
    assert "bundled snapshot of 2026-12-06" in result.flavors_note
    assert [row["flavor"] for row in result.flavors][0] == "cpu-basic"  # cheapest that fits first
    assert all(row["fits"] for row in result.flavors)
    assert result.flavors[0]["cost_high"] < result.flavors[-1]["cost_high"]
    assert any("longer than the 1 s it may run" in warning for warning in result.warnings)


def test_jobs_prices_from_the_hub(tiny_model_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests run offline; this Hub is a local stand-in
    token = "hf_" + "x" * 34
    with HubStandIn(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", token)
        recipe = _recipe(tiny_model_dir)
        result = forecasts.forecast(recipe, training.plan(recipe), calibrate=False, on_jobs=True)
    assert result.flavors_note.startswith("prices from the Hub")
    assert {row["flavor"]: row["per_hour"] for row in result.flavors} == {"cpu-basic": 0.01, "a10g-small": 1.0}


def test_calibration_measures_once_and_the_dry_run_shows_the_same_numbers(tiny_model_dir, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps({
        "name": "tiny", "model": {"name": str(tiny_model_dir)},
        "data": {"path": str(ASSETS / "friction_sample.jsonl"), "format": "friction",
                 "format_template": "<think>{thought_stream}</think>{final_answer}", "max_length": 256},
        "training": {"max_steps": 4, "batch_size": 2}}))  # JSON is YAML
    recipe = recipes.load(path)
    plan = training.plan(recipe)
    tokens = estimate.tokens_of(plan, recipe)
    assert calibrate.speed(recipe, tokens, measure=False) is None
    first = calibrate.speed(recipe, tokens)
    assert first.measured and first.tokens_per_s > 0 and first.how == "measured on this machine now"
    again = calibrate.speed(recipe, tokens, measure=False)
    assert again.tokens_per_s == first.tokens_per_s and again.how.startswith("measured on this machine 20")
    here = forecasts.forecast(recipe, plan, calibrate="cached")
    assert here.speed["measured"] and here.speed["tokens_per_s"] == round(first.tokens_per_s, 1)
    dry = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(path), "--dry-run", "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert dry.returncode == 0, dry.stderr
    shown = json.loads(dry.stdout)["forecast"]  # the same function, the same calibration: the same numbers
    assert (shown["parameters"], shown["peak_bytes"], shown["speed"], shown["seconds"]) == \
        (here.parameters, here.peak_bytes, here.speed, here.seconds)
    planned = subprocess.run([sys.executable, "-m", "studio.cli", "plan", str(path)], capture_output=True, text=True,
                             cwd=ROOT, check=False)
    assert planned.returncode == 0 and "Fits this machine: yes" in planned.stdout, planned.stderr
    assert f"{here.parameters['trainable']:,} trained" in planned.stdout


@pytest.mark.parametrize("bad", ["--on nowhere"])
def test_studio_plan_refuses_bad_arguments(bad):
    done = subprocess.run([sys.executable, "-m", "studio.cli", "plan", "configs/smoke-cpu.yaml", *bad.split()],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_the_train_tab_shows_the_forecast_with_the_plan(tiny_model_dir):
    from studio.ui.train import tab

    text = _recipe(tiny_model_dir).to_yaml()
    shown = tab.check_plan(text)
    assert "**Plan:**" in shown and "**Forecast**" in shown and "Peak memory:" in shown, shown
    assert "measured on this machine" in shown  # the Train tab measures once, then reuses it
