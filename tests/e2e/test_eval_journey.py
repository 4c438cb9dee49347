"""Evaluation in the browser: a run's guard verdict up front in the Train and Chat tabs, and the
Chat tab's A/B grown into the report (verdict, n and intervals, per topic, chart, downloads)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.browser import open_tab, set_slider

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def guarded_run(studio_home_e2e, adapter_in_workspace):  # noqa: F811 - the imported fixture
    """A completed run whose guard found tuned answers cut off inside <think> (report built by
    core.eval.report from answers with known outcomes)."""
    from core.chat.engine import PaneState
    from core.eval import metrics, report
    from core.eval.prompts import Prompt

    run = studio_home_e2e / "runs" / "guarded-run"
    shutil.copytree(adapter_in_workspace, run / "best")
    (run / "status.json").write_text(json.dumps({"state": "completed", "pid": None, "step": 40, "total_steps": 40,
                                                 "evaluation": {"state": "done"}}))
    (run / "recipe.yaml").write_text("name: guarded-run\nmodel: {name: embedded}\ndata: {path: x.jsonl}\n")
    patterns = metrics.load_patterns()
    rows = []
    for i in range(8):
        prompt = Prompt(f"q{i}", [{"role": "user", "content": f"question {i}"}], "facts", ["Paris"], False, question="q")
        rows.append(metrics.score(prompt, "base", PaneState("Paris is the capital.", list(range(6)), 0.0, 0.1, 1.0), patterns, 64))
        cut = "<think>" + "hmm " * 40 if i < 5 else "Paris, of course."
        rows.append(metrics.score(prompt, "tuned", PaneState(cut, list(range(64 if i < 5 else 5)), 0.0, 0.1, 3.0), patterns, 64))
    built = report.build_report(rows, tuned="tuned", prompt_set="facts.jsonl", settings={"max_new_tokens": 64})
    report.save_report(built, rows, run / "eval")
    return run


def test_guard_verdict_up_front_and_the_ab_report(studio, guarded_run, page, shot, tmp_path):
    page.goto(studio.url)
    open_tab(page, "Train")
    verdict = page.locator("#train-verdict")
    verdict.get_by_text("Regressed beyond its uncertainty", exact=False).wait_for(timeout=60_000)
    assert "ran out of tokens inside <think>" in verdict.inner_text()
    assert "max new tokens 64 → 128" in verdict.inner_text()
    shot(page, "train-verdict")

    open_tab(page, "Chat")
    tuned = page.get_by_label("Tuned side")
    tuned.fill(str(guarded_run / "best"))
    tuned.press("Enter")
    page.locator("#chat-run-verdict").get_by_text("Evaluation after training", exact=False).wait_for(timeout=60_000)
    shot(page, "chat-verdict")

    page.get_by_text("Settings (shared by both panes)").click()
    set_slider(page, "Max new tokens", 16)
    prompts = tmp_path / "two.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in [
        {"id": "capital", "prompt": "What is the capital of France?", "keywords": ["Paris"], "category": "capitals"},
        {"id": "meow", "prompt": "Which animal says meow?", "keywords": ["cat"], "category": "animals"},
    ]) + "\n")
    page.locator("#ab-upload input[type=file]").set_input_files(str(prompts))
    page.get_by_role("button", name="Run A/B").click()
    page.locator("#ab-verdict").get_by_text("A/B verdict", exact=False).wait_for(timeout=480_000)
    table = page.locator("#ab-report").inner_text()
    assert "keyword coverage" in table and "substantive rate" in table and "change [95% CI]" in table
    assert "capitals" in page.locator("#ab-topics").inner_text()
    page.locator("#ab-chart .js-plotly-plot").first.wait_for(timeout=60_000)
    page.locator("#ab-chart").scroll_into_view_if_needed()
    shot(page, "ab-report")
    link = page.locator("a[href*='report.md']").first  # the download the page offers, fetched as the browser would
    answer = page.request.get(link.get_attribute("href"))
    assert answer.ok and "verdict" in answer.text().lower(), (answer.status, answer.text()[:300])
    assert list((studio.home / "exports").glob("ab-*-report/report.md")), "the report is kept in the workspace's exports"
