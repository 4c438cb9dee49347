"""KTO in the browser: a reviewer turns a reply of the bundled KTO sample from good to bad with the
thumbs, then the bundled KTO recipe trains two steps on it; the run counts the reviewer's label
and the preference chart shows KTO's own metrics (reward margin, KL)."""

from __future__ import annotations

import pytest

from tests.helpers.browser import open_tab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_STEPS = 2


def test_thumbs_review_then_a_kto_run(studio, page, shot):
    page.goto(studio.url)
    page.get_by_label("Sample or workspace dataset").click()
    page.get_by_role("option", name="epistemic_kto.jsonl").first.click()
    page.get_by_role("button", name="Open and check").click()
    page.locator("#ds-status").get_by_text("format labelled").wait_for()
    page.locator("#ds-record").get_by_text("good reply").wait_for()  # the row's own label

    page.get_by_text("good or bad reply (thumbs up / down, for KTO)").click()
    page.locator("#ds-bad").wait_for()
    assert not page.locator("#ds-approve").is_visible()
    page.locator("#ds-bad").click()  # record 1 was a good reply: the reviewer says it is bad
    page.locator("#ds-progress").get_by_text("0 good and 1 bad replies").wait_for()
    page.locator("#ds-prev").click()
    page.locator("#ds-record").get_by_text("bad reply").wait_for()
    shot(page, "thumbs")

    open_tab(page, "Train")
    page.get_by_label("Recipe", exact=True).click()
    page.get_by_role("option", name="kto-cpu (bundled)").click()
    page.get_by_role("button", name="Load recipe").click()
    page.wait_for_function("() => document.querySelector('#train-training-method input').value === 'kto'")
    steps = page.locator("#train-training-max-steps input")
    steps.fill(str(MAX_STEPS))
    steps.press("Tab")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_function("() => document.querySelector('#train-progress').innerText.includes('completed')",
                           timeout=540_000)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(p => p.data"
                           " && p.data.some(t => t.name === 'kl') && p.data.some(t => t.name === 'rewards/margins'))",
                           timeout=60_000)
    shot(page, "kto-chart")
    run_dir = next(p for p in (studio.home / "runs").iterdir() if (p / "status.json").is_file())
    log = (run_dir / "train.log").read_text()
    assert "labels: 24 good and 26 bad replies" in log, log[-2000:]  # the reviewer's thumbs counted
