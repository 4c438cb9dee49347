"""Training in the browser: start the smoke recipe, watch the chart gain points, reload the
page mid-run (the UI re-attaches, the run goes on), stop, resume to the end."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers.browser import open_tab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_STEPS = 8


def _step(page) -> int:
    match = re.search(r"step (\d+)/", page.locator("#train-progress").inner_text())
    return int(match.group(1)) if match else 0


def _wait_step(page, at_least: int, timeout_ms: int = 300_000) -> None:
    page.wait_for_function(
        "n => { const m = document.querySelector('#train-progress').innerText.match(/step (\\d+)\\//); return m && +m[1] >= n; }",
        arg=at_least, timeout=timeout_ms)


def _loss_points(page) -> int:
    return page.evaluate(
        "() => { const p = document.querySelector('#train-loss-plot .js-plotly-plot');"
        " return p && p.data ? Math.max(0, ...p.data.map(t => (t.x || []).length)) : 0; }")


def _state(page) -> str:
    return page.locator("#train-progress").inner_text()


def test_train_stop_reload_resume(studio, page, shot):
    page.goto(studio.url)
    open_tab(page, "Train")
    steps = page.locator("#train-training-max-steps input")
    steps.fill(str(MAX_STEPS))
    steps.press("Tab")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Start", exact=True).click()
    _wait_step(page, 2)
    first_points = _loss_points(page)
    assert first_points >= 2, "the loss chart has no points while the run goes"
    shot(page, "running")

    # A reload re-attaches to the live run, and the run has gone on meanwhile.
    page.reload()
    open_tab(page, "Train")
    _wait_step(page, 4)
    assert "running" in _state(page)
    assert steps.input_value() == str(MAX_STEPS), "after a reload the form should show the live run's recipe"
    assert _loss_points(page) > first_points, "the chart did not gain points after the reload"
    shot(page, "reattached")

    page.get_by_role("button", name="Stop (save a checkpoint)").click()
    page.get_by_text("stopped", exact=False).first.wait_for(timeout=180_000)
    page.wait_for_function("() => document.querySelector('#train-progress').innerText.includes('stopped')", timeout=180_000)
    stopped_at = _step(page)
    run_dir = next(p for p in (studio.home / "runs").iterdir() if (p / "status.json").is_file())  # runs/ also holds the queue's files
    assert json.loads((run_dir / "status.json").read_text())["state"] == "stopped"
    assert list((run_dir / "checkpoints").glob("checkpoint-*")), "stop left no checkpoint"
    shot(page, "stopped")

    page.get_by_role("button", name="Resume").click()
    page.wait_for_function("() => document.querySelector('#train-progress').innerText.includes('completed')", timeout=400_000)
    assert _step(page) == MAX_STEPS > stopped_at
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed"
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    steps_logged = [m["step"] for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if m.get("split") == "train"]
    assert max(steps_logged) == MAX_STEPS and min(steps_logged) == 1
    shot(page, "completed")
