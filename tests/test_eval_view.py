"""The report in the browser's handlers (studio.ui.chat.eval_view), called directly: the A/B grows into
the report with its chart and downloads; a run's guard verdict shows up front; the worker's
guard switch is off in demo mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.chat.engine import PaneState
from core.eval import metrics, report
from core.eval.prompts import Prompt
from studio.ui.chat import eval_view
from tests.helpers.evals import SETTINGS
from tests.helpers.models import as_run


def _built(tuned_text: str, tokens: int) -> tuple[dict, list[dict]]:
    patterns = metrics.load_patterns()
    rows = []
    for i in range(5):
        prompt = Prompt(f"q{i}", [{"role": "user", "content": "q"}], "facts" if i < 3 else "science", ["Paris"], False,
                        question="q")
        rows.append(metrics.score(prompt, "base", PaneState("Paris it is.", [1, 2, 3], 0.0, 0.1, 1.0), patterns, 64))
        rows.append(metrics.score(prompt, "tuned", PaneState(tuned_text, list(range(tokens)), 0.0, 0.1, 2.0), patterns, 64))
    return report.build_report(rows, tuned="tuned", settings={"max_new_tokens": 64}), rows


def test_the_ab_grows_into_the_report(tiny_model_dir, adapter_source, tmp_path, studio_home, monkeypatch):  # noqa: F811
    monkeypatch.setenv("STUDIO_MODEL_DIRS", str(tiny_model_dir))  # a model folder the operator allows
    tuned = as_run(adapter_source, studio_home, "view-run")
    upload = tmp_path / "set.jsonl"
    upload.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Capital {i}?", "keywords": ["Paris"],
                                          "category": "capitals" if i else "other"}) + "\n" for i in range(3)))
    updates = list(eval_view.run_ab_report(None, str(upload), None, str(tiny_model_dir), str(tuned), [], *SETTINGS))
    _, _, _, files, verdict, table, topics, chart = updates[-1]
    assert verdict.startswith("**A/B verdict (set.jsonl, 3 prompts):**")
    assert {"metric", "n", "base", "tuned", "change [95% CI]"} <= set(table.columns)
    assert "keyword coverage" in list(table["metric"]) and set(topics["topic"]) == {"capitals", "other"}
    assert chart is not None and {trace.name for trace in chart.data} == {"base", "tuned"}
    assert {Path(f).name for f in files} >= {"report.md", "report.json", "rows.csv", "rows.jsonl"}
    # offered from the exports folder the server serves, not copied to a temporary folder no one removes
    assert all(Path(f).resolve().is_relative_to((studio_home / "exports").resolve()) for f in files), files

    # The same A/B with a pairwise judge: a local model (here the tiny one, a folder the operator allows), both orders.
    judged = list(eval_view.run_ab_report(None, str(upload), None, str(tiny_model_dir), str(tuned), [], *SETTINGS,
                                          f"hf:{tiny_model_dir}"))
    assert any(str(update[0]).startswith("Judging 3 pairs in both orders") for update in judged)
    verdict = judged[-1][4]
    assert f"Judge hf:{tiny_model_dir}: tuned better" in verdict
    refused = list(eval_view.run_ab_report(None, str(upload), None, str(tiny_model_dir), str(tuned), [], *SETTINGS, "hf:/etc"))
    assert str(refused[-1][0]).startswith("⚠️ **Not judged:**") and refused[-1][4].startswith("**A/B verdict")


def test_a_runs_guard_verdict_shows_up_front(studio_home):
    run = studio_home / "runs" / "guarded"
    (run / "best").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "completed", "evaluation": {"state": "running"}}))
    assert "Evaluating base vs the best checkpoint" in eval_view.run_verdict(str(run / "best"))
    built, rows = _built("<think>" + "so " * 40, 64)
    report.save_report(built, rows, run / "eval")
    (run / "status.json").write_text(json.dumps({"state": "completed", "evaluation": {"state": "done"}}))
    shown = eval_view.run_verdict(str(run))
    assert shown.startswith("**Evaluation after training") and "⚠️ Regressed beyond its uncertainty" in shown
    assert "Likely cause: 5 of 5 tuned answers ran out of tokens inside `<think>`" in shown
    assert eval_view.run_verdict("/etc") == "" and eval_view.run_verdict("") == ""
    (run / "status.json").write_text(json.dumps({"state": "completed", "evaluation": {"state": "failed", "error": "boom"}}))
    assert "failed: boom" in eval_view.run_verdict(str(run))
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (run / "status.json").write_text(json.dumps({"state": "completed", "pid": int(gone.stdout),
                                                 "evaluation": {"state": "running"}}))
    assert "ended without finishing" in eval_view.run_verdict(str(run))  # killed mid-evaluation: no endless wait


def test_the_guard_runs_after_training_only_when_asked_and_never_in_demo_mode(monkeypatch):
    from core import recipes
    from core.train.worker import wants_evaluation

    bundled = recipes.load(recipes.CONFIGS / "smoke-cpu.yaml")
    assert bundled.eval.prompts == "friction_pushback.jsonl" and wants_evaluation(bundled)
    monkeypatch.setenv("STUDIO_DEMO", "1")
    assert not wants_evaluation(bundled)
    monkeypatch.delenv("STUDIO_DEMO")
    bundled.eval.after_training = False
    assert not wants_evaluation(bundled)
    with pytest.raises(recipes.RecipeError, match="eval.after_training needs eval.prompts"):
        recipes.from_dict({"data": {"path": "x.jsonl"}, "eval": {"after_training": True}})
