"""GRPO in the browser: load the bundled CPU GRPO recipe, start it for two steps, and watch the
reward chart (mean and spread of each reward and the total) and the sample table fill in."""

from __future__ import annotations

import json

import pytest

from tests.helpers.browser import open_tab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_STEPS = 2


def _reward_points(page) -> int:
    return page.evaluate(
        "() => { const p = document.querySelector('#grpo-rewards-plot .js-plotly-plot');"
        " return p && p.data ? Math.max(0, ...p.data.filter(t => t.mode).map(t => (t.x || []).length)) : 0; }")


def test_grpo_run_shows_the_reward_chart(studio, page, shot):
    page.goto(studio.url)
    open_tab(page, "Train")
    page.get_by_label("Recipe", exact=True).click()
    page.get_by_role("option", name="grpo-format-cpu (bundled)").click()
    page.get_by_role("button", name="Load recipe").click()
    method = page.locator("#train-training-method input")
    page.wait_for_function("() => document.querySelector('#train-training-method input').value === 'grpo'")
    steps = page.locator("#train-training-max-steps input")
    steps.fill(str(MAX_STEPS))
    steps.press("Tab")
    page.wait_for_timeout(1000)
    assert method.input_value() == "grpo"
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_function("() => document.querySelector('#train-progress').innerText.includes('completed')",
                           timeout=540_000)
    page.wait_for_function("() => { const p = document.querySelector('#grpo-rewards-plot .js-plotly-plot');"
                           " return p && p.data && p.data.some(t => t.name === 'total (weighted)'); }", timeout=60_000)
    assert _reward_points(page) == MAX_STEPS
    names = page.evaluate("() => document.querySelector('#grpo-rewards-plot .js-plotly-plot').data.map(t => t.name)")
    assert {"format", "answer", "total (weighted)"} <= set(names)
    assert page.locator("#grpo-completions tbody tr").count() > 0, "the sample table is empty"
    shot(page, "grpo-rewards")
    run_dir = next(p for p in (studio.home / "runs").iterdir() if (p / "status.json").is_file())  # runs/ also holds the queue's files
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "completions.jsonl").is_file()
