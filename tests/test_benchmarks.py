"""Did it forget? The bundled general-skills probe through lm-evaluation-harness's own task
loader and scoring, on the embedded model: an adapter that scrambles it (large random weights) is
flagged as forgetting in the verdict, a no-op adapter (zero update) is not; the CLI's
--benchmarks, --list-benchmarks and --fail-on forgot; clear errors for unknown and Hub tasks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.eval import benchmarks as bench
from core.eval.report import build_report, to_markdown
from core.eval.verdict import outcome
from tests.helpers.server import ROOT

TASKS = ["studio_probe_facts", "studio_probe_reading"]  # multiple choice: quick, and the embedded model scores well above chance
LIMIT = 30


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, embedded_dir):
    """A planted forgetting (LoRA B matrices with large random weights) and a no-op (B = 0)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from core import models

    folder = tmp_path_factory.mktemp("adapters")
    for name, noisy in (("planted", True), ("zero", False)):
        torch.manual_seed(0)
        peft = get_peft_model(models.load_model("embedded"),
                              LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=not noisy))
        if noisy:
            with torch.no_grad():
                for key, weight in peft.named_parameters():
                    if "lora_B" in key:
                        weight.normal_(0, 0.5)
        peft.save_pretrained(folder / name)
    return folder


@pytest.fixture(scope="module")
def scored(adapters):
    return bench.evaluate("embedded", [("planted", adapters / "planted"), ("zero", adapters / "zero")], TASKS, limit=LIMIT,
                          say=lambda _: None)


def test_the_probe_runs_through_lm_evals_task_loader():
    tasks = bench.load_tasks(["studio_probe"])  # lm-eval's TaskManager over the bundled YAML, its data loaded offline
    assert set(bench.bundled()) == {f"studio_probe_{p}" for p in ("arithmetic", "facts", "reading", "format")}
    assert sum(bench.bundled().values()) >= 200 and tasks
    listed = bench.list_benchmarks()
    assert listed["bundled"]["studio_probe"] == sum(bench.bundled().values()) and listed["known"] > 1000


def test_a_scrambled_model_is_said_to_forget_and_a_no_op_is_not(scored):
    planted, zero = scored["rows"]
    for task in TASKS:
        assert scored["base"][task]["score"] > 0.45 and scored["base"][task]["n"] == LIMIT
        assert planted["changes"][task]["forgot"], planted["changes"][task]
        assert zero["changes"][task]["delta"] == 0 and not zero["changes"][task]["forgot"]
    report = build_report([], benchmarks=scored, recipe={"training": {"learning_rate": 1e-3, "epochs": 3}, "lora": {"r": 16}})
    headline = report["verdict"]["headline"]
    assert headline.startswith("Forgot: facts -") and "reading" in headline, headline
    assert any("training.learning_rate 0.001 → 0.0005" in s and "lora.r 16 → 8" in s for s in report["verdict"]["suggestions"])
    assert outcome(report)["forgot"][0]["task"] == "studio_probe_facts"
    markdown = "\n".join(to_markdown(report))
    assert "General skills" in markdown and "⚑ forgot" in markdown
    assert "forgetting curve" in markdown and "| zero |" in markdown  # two results: each one's score per task
    no_op = build_report([], benchmarks={**scored, "rows": [zero], "forgot": bench.forgotten({**scored, "rows": [zero]})})
    assert no_op["verdict"]["headline"].startswith("Nothing forgotten") and not no_op["verdict"]["forgot"]


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "studio.cli", "eval", *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=600)


def test_the_cli_fails_on_forgetting(adapters, tmp_path):
    done = _cli(str(adapters / "planted"), "--model", "embedded", "--benchmarks", "studio_probe_facts", "--limit", str(LIMIT),
                "--out", str(tmp_path / "out"), "--fail-on", "forgot", "--json")
    assert done.returncode == 1, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["verdict"]["headline"].startswith("Forgot: facts") and result["failed"][0].startswith("forgot studio_probe_facts")
    assert (tmp_path / "out" / "report.md").is_file()


def test_clear_errors_for_unknown_and_unreachable_benchmarks(adapters, tmp_path):
    listed = _cli("--list-benchmarks")
    assert listed.returncode == 0 and "studio_probe_arithmetic" in listed.stdout
    with pytest.raises(bench.BenchmarkError, match="unknown benchmark.*studio_prob\\b"):
        bench.check_names(["studio_prob"])
    with pytest.raises(bench.BenchmarkError, match="arc_easy load their data from the Hugging Face Hub"):
        bench.load_tasks(["arc_easy"])
    missing = _cli(str(adapters / "zero"), "--model", "embedded", "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "--prompts" in missing.stderr and "--benchmarks" in missing.stderr


def test_each_checkpoint_score_is_drawn_beside_the_loss_and_in_the_sweep_table(scored):
    from core.eval.report import forgetting_curve
    from core.train import sweeps
    from studio.ui.train import charts

    planted, zero = scored["rows"]
    report = build_report([], benchmarks={**scored, "rows": [{**planted, "weights": "checkpoint-20"},
                                                             {**zero, "weights": "checkpoint-10"}]})
    curve = forgetting_curve(report)
    assert [point["step"] for point in curve] == [0, 10, 20]
    assert curve[2]["studio_probe_facts"] < curve[1]["studio_probe_facts"] == curve[0]["studio_probe_facts"]
    figure = charts.loss_figure([{"step": s, "split": "train", "loss": 3.0 - s / 10} for s in range(1, 21)], forgetting=curve)
    scores = [trace for trace in figure.data if trace.name.endswith("(score)")]
    assert [trace.name for trace in scores] == ["facts (score)", "reading (score)"] and list(scores[0].x) == [0, 10, 20]
    assert figure.layout.yaxis2.range == (0, 100)
    forgot = outcome(report)["forgot"]
    assert sweeps._forgot({"forgot": forgot}).startswith("facts -") and sweeps._forgot({"forgot": []}) == "no"
    assert sweeps._forgot({"forgot": None}) == sweeps.NA  # no benchmarks were run
