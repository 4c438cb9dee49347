"""The regression guard on the embedded model with tiny adapters: a planted regression (a random
LoRA that garbles answers) is flagged in the run folder's report, with held-out loss; a no-op
adapter (LoRA's zero-initialised B: the base exactly) passes `studio eval --fail-on`."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.helpers.models import make_adapter

PROMPTS = [
    {"id": "capital", "category": "facts", "prompt": "What is the capital of France?", "keywords": ["Paris"]},
    {"id": "meow", "category": "animals", "prompt": "Which animal says meow?", "keywords": ["cat"]},
    {"id": "legs", "category": "animals", "prompt": "How many legs does a dog have?", "keywords": ["4|four"]},
]


def no_op_adapter(model_dir, out):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(out)
    return out


def write_prompts(folder):
    prompts = folder / "facts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return prompts


@pytest.mark.slow
def test_the_guard_flags_a_planted_regression_in_the_run_folder(embedded_dir, tmp_path, studio_home):
    from core.eval import guard
    from core.eval.report import forgetting_curve
    from core.train import run_dir
    from core.workspace import ASSETS

    prompts = write_prompts(tmp_path)
    run = studio_home / "runs" / "planted"
    make_adapter(embedded_dir, run / "best", alpha=256)  # random, strong: garbles every answer
    shutil.copytree(run / "best", run / "adapter")  # the final adapter is the best one: measured once
    shutil.copytree(run / "best", run / "checkpoints" / "checkpoint-20")
    recipe = {"name": "planted", "model": {"name": "embedded"},
              "data": {"path": str(ASSETS / "friction_sample.jsonl"), "format": "friction", "max_length": 256, "eval_split": 0.1,
                       "format_template": "<think>{thought_stream}</think>{final_answer}"},
              "training": {"learning_rate": 1e-3, "max_steps": 40},
              "eval": {"prompts": str(prompts), "after_training": True, "max_new_tokens": 16,
                       "benchmarks": ["studio_probe_facts"], "benchmark_limit": 30}}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run / "status.json").write_text(json.dumps({"state": "completed", "pid": None}))

    assert guard.guard_run(run) == 0
    report = json.loads((run / "eval" / "report.json").read_text())
    assert "keyword_coverage" in report["verdict"]["regressed"]
    coverage = next(line for line in report["metrics"] if line["metric"] == "keyword_coverage")
    assert coverage["n"] == 3 and coverage["base"] == 1.0 and coverage["beyond_uncertainty"]
    assert "training.learning_rate 0.001 → 0.0005" in " ".join(report["verdict"]["suggestions"])
    held = {row["weights"]: row for row in report["heldout"]["rows"]}
    assert set(held) == {"base", "best", "final", "checkpoint-20"} and held["best"]["loss"] > held["base"]["loss"]
    assert held["final"]["same_as"] == "best" and held["final"]["loss"] == held["best"]["loss"]
    # Did it forget? The bundled probe on base and every kept result: the garbled model forgot its facts.
    bench = report["benchmarks"]
    assert [row["weights"] for row in bench["rows"]] == ["best", "final", "checkpoint-20"]
    assert bench["rows"][1]["same_as"] == "best" and bench["base"]["studio_probe_facts"]["n"] == 30
    assert report["verdict"]["forgot"] == ["studio_probe_facts"] and report["verdict"]["headline"].startswith("Forgot: facts")
    assert [point["step"] for point in forgetting_curve(report)] == [0, 20]
    assert run_dir.read_status(run)["evaluation"]["forgot"][0]["name"] == "facts"
    assert run_dir.read_status(run)["evaluation"]["state"] == "done"
    assert (run / "eval" / "report.md").read_text().startswith("# Evaluation: base vs tuned")
    assert {"rows.csv", "rows.jsonl"} <= {p.name for p in (run / "eval").iterdir()}


@pytest.mark.slow
def test_studio_eval_passes_a_no_op_adapter_with_fail_on(embedded_dir, tmp_path, studio_home, capsys):
    from studio.cli import commands as cli

    prompts = write_prompts(tmp_path)
    quiet = no_op_adapter(embedded_dir, tmp_path / "no-op")
    code = cli.main(["eval", str(quiet), "--prompts", str(prompts), "--model", "embedded", "--out", str(tmp_path / "out"),
                     "--max-new-tokens", "16", "--fail-on", "keyword_coverage", "--fail-on", "substantive:0", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["ok"] and printed["failed"] == [] and printed["verdict"]["regressed"] == []
    assert all(line["delta"] == 0 for line in printed["metrics"] if line["metric"] != "latency_s")
    assert (tmp_path / "out" / "report.md").is_file()
