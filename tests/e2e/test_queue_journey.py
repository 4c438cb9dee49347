"""The queue in the browser: while a run trains, a sweep of two runs is queued from the Train
tab; the UI process is restarted and the queue is still there; a queued run is moved and
cancelled from the page."""

from __future__ import annotations

import pytest

from tests.helpers.browser import open_tab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _queue_text(page) -> str:
    return page.locator("#train-queue-table").inner_text()


def _busy_run(home, tiny_model_dir, monkeypatch):
    """A real worker on the tiny model with far more steps than the test lasts: the slot is taken."""
    from core.train import runs
    from tests.helpers.data import tiny_recipe, write_chats

    monkeypatch.setenv("STUDIO_HOME", str(home))  # this test's core calls act on the UI's workspace
    (home / "datasets").mkdir(exist_ok=True)
    data = write_chats(home / "datasets" / "busy.jsonl", 40)
    run = runs.start(tiny_recipe(tiny_model_dir, data, max_steps=100000, save_steps=100000, eval_steps=100000))
    return run


def _restart(studio, tries: int = 3) -> None:
    """Start the UI again. gradio gives up when its own 3-second HEAD check of localhost times out,
    which a loaded 2-core machine (this test trains meanwhile) sometimes makes it do."""
    for attempt in range(tries):
        try:
            studio.start()
            return
        except RuntimeError:
            if attempt == tries - 1:
                raise


def test_queue_survives_a_ui_restart(studio, page, shot, tiny_model_dir, monkeypatch):
    from core.train import queue, runs

    busy = _busy_run(studio.home, tiny_model_dir, monkeypatch)
    try:
        page.goto(studio.url)
        open_tab(page, "Train")
        page.locator("#train-sweep-learning_rate textarea, #train-sweep-learning_rate input").first.fill("1e-3, 1e-4")
        page.get_by_role("button", name="Queue sweep").click()
        page.wait_for_function("() => document.querySelector('#train-queue-table').innerText.includes('sweep-')",
                               timeout=60_000)
        names = [info.run_id for info in queue.waiting_runs()]
        assert len(names) == 2 and all(name in _queue_text(page) for name in names)
        shot(page, "queued")

        page.goto("about:blank")  # else gradio's page reconnects by itself and races our navigation
        studio.stop()  # the UI goes away; the training run and the queue live on disk
        _restart(studio)
        page.goto(studio.url)
        open_tab(page, "Train")
        page.wait_for_function("n => document.querySelector('#train-queue-table').innerText.includes(n)",
                               arg=names[1], timeout=60_000)
        assert runs.read_status(busy)["state"] == "running"
        shot(page, "after-restart")

        page.locator("#train-queue-pick input").fill(names[1])
        page.get_by_role("option", name=names[1]).click()
        page.get_by_role("button", name="Move up").click()
        page.wait_for_function("() => document.querySelector('#train-queue-note').innerText.includes('Moved')")
        assert [info.run_id for info in queue.waiting_runs()] == [names[1], names[0]]
        page.get_by_role("button", name="Cancel", exact=True).click()
        page.wait_for_function("() => document.querySelector('#train-queue-note').innerText.includes('Cancelled')")
        assert [info.run_id for info in queue.waiting_runs()] == [names[0]]
        assert names[1] not in _queue_text(page)
        shot(page, "cancelled")
    finally:
        for info in queue.waiting_runs():
            queue.cancel(info.run_id)
        runs.stop(busy)
        runs.wait(busy, timeout=120)
