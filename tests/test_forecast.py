"""The forecast before Start (core.train.estimate, forecast, calibrate; `studio plan`): exact
parameter counts from a known config, the memory arithmetic part by part, a run that cannot fit
gets the refusal and changes that would fit, Jobs flavors priced from the Hub or the bundled
snapshot, the calibration measured once and cached, and one set of numbers everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core import recipes
from core.errors import BadInput
from core.train import calibrate, estimate, hf_jobs, training
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
    recipe = _recipe(tiny_model_dir, max_steps=20000)
    plan = training.plan(recipe)
    result = forecasts.forecast(recipe, plan, calibrate=False, on_jobs=True)
    assert "bundled snapshot of 2026-12-06" in result.flavors_note
    costs = [row["cost_high"] for row in result.flavors]
    assert costs == sorted(costs)  # cheapest first (all fit): its own time x its own price
    assert all(row["fits"] for row in result.flavors) and result.fits and not result.warnings
    assert result.flavors[0]["cost_high"] < result.flavors[-1]["cost_high"]
    by_name = {row["flavor"]: row for row in result.flavors}
    # Each flavor's own time: 2 vCPUs are slower than 8, which are slower than an H100.
    assert by_name["cpu-basic"]["seconds"] > by_name["cpu-upgrade"]["seconds"] > by_name["h100"]["seconds"]
    # A limit between the fast flavors' time and the slow ones': those past it are marked and sorted after.
    limit = by_name["h100"]["seconds"]
    limited = forecasts.forecast(recipe, plan, calibrate=False, on_jobs=True, flavor="cpu-basic", time_limit_s=limit)
    rows = {row["flavor"]: row for row in limited.flavors}
    assert rows["cpu-basic"]["over_time_limit"] and not rows["h100"]["over_time_limit"]
    assert limited.flavors[-1]["over_time_limit"] and not limited.flavors[0]["over_time_limit"]
    assert any("it may run: it would be stopped before it ends" in warning and "--timeout" in warning
               for warning in limited.warnings)
    assert "(past the time limit)" in "\n".join(forecasts.lines(limited))
    fast = forecasts.forecast(recipe, plan, calibrate=False, on_jobs=True, flavor="h100", time_limit_s=limit)
    assert not fast.warnings and fast.seconds == rows["h100"]["seconds"]  # the chosen flavor's time is the forecast's


def test_a_flavor_too_small_is_named(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    recipe = _recipe(tiny_model_dir, batch_size=256)
    plan = training.plan(recipe)
    big = estimate.memory(estimate.model_shape(recipe), estimate.tokens_of(plan, recipe), recipe, device="cuda", element_bytes=2)
    assert 16 * GB < big.total < 70 * GB, "too big for a T4, not for an H100: else this test means nothing"
    result = forecasts.forecast(recipe, plan, calibrate=False, on_jobs=True, flavor="t4-small")
    assert not result.fits and result.suggestions
    assert any("more than the t4-small flavor holds" in warning for warning in result.warnings)
    cheapest = next(row for row in result.flavors if row["fits"])  # another flavor would hold it
    assert result.suggestions[0]["change"].startswith(f"--flavor {cheapest['flavor']} (") and result.suggestions[0]["fits"]
    assert "Try: --flavor" in result.warnings[0]


def test_a_job_time_limit_reads_as_seconds():
    assert [hf_jobs.timeout_seconds(text) for text in ("90m", "4h", "3600", "1.5h", "2d", "30s")] == \
        [5400, 14400, 3600, 5400, 172800, 30]
    with pytest.raises(BadInput):
        hf_jobs.timeout_seconds("soon")


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


@pytest.mark.parametrize("bad, said", [("--on nowhere", "invalid choice"), ("--flavor t4-small", "--flavor is for --on hf-jobs"),
                                        ("--on hf-jobs --timeout soon", "timeout 'soon': a duration such as 90m")])
def test_studio_plan_refuses_bad_arguments(bad, said):
    done = subprocess.run([sys.executable, "-m", "studio.cli", "plan", "configs/smoke-cpu.yaml", *bad.split()],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr


def test_studio_plan_on_a_flavor_warns_past_the_jobs_time_limit():
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "studio.cli", "plan", "configs/smoke-cpu.yaml", "--on", "hf-jobs",
                           "--flavor", "cpu-basic", "--timeout", "1m", "--no-calibrate"],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert done.returncode == 0, done.stderr  # it fits; it is only too long
    assert "Warning: This run should take" in done.stdout and "longer than the 60 s it may run" in done.stdout
    assert "(past the time limit)" in done.stdout and "cpu-basic" in done.stdout.split("Time:")[1].splitlines()[0]
    assert "Failed to load CPU gemm_4bit_forward" not in done.stderr and "FutureWarning" not in done.stderr


def test_the_train_tab_shows_the_forecast_with_the_plan(tiny_model_dir):
    from studio.ui.train import tab

    text = _recipe(tiny_model_dir).to_yaml()
    shown = tab.check_plan(text)
    assert "**Plan:**" in shown and "**Forecast**" in shown and "Peak memory:" in shown, shown
    assert "measured on this machine" in shown  # the Train tab measures once, then reuses it
