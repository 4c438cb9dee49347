"""Train tab, queue and sweeps panel: handlers called directly over a real workspace queue."""

from __future__ import annotations

import gradio as gr
import pytest
import yaml

from core import recipes
from core.train import queue, runs, webhook
from studio.ui.train import queue as train_queue
from tests.helpers.data import tiny_recipe, write_chats


def test_panel_builds_and_wires_its_handlers():
    with gr.Blocks() as app:
        train_queue.build_queue_panel(gr.Code(), gr.State(""))
    wired = {fn.fn for fn in app.fns.values()}
    assert {train_queue.move_up, train_queue.move_down, train_queue.cancel_queued, train_queue.queue_sweep,
            train_queue.compare_sweep, train_queue.poll_queue} <= wired


def test_queue_sweep_then_reorder_and_cancel_from_the_panel(tmp_path, tiny_model_dir, busy_slot):  # noqa: F811
    recipe = tiny_recipe(tiny_model_dir, write_chats(runs.workspace().datasets / "d.jsonl"))
    picker, message = train_queue.queue_sweep(recipe.to_yaml(), "1e-3, 1e-4", "4", "")
    assert "2 runs queued" in message, message
    rows, run_pick, sweep_pick, _, seen = train_queue.poll_queue({})
    assert [row[0] for row in rows] == [1, 2] and "learning_rate=0.001" in rows[0][3]
    assert run_pick["choices"] == [(row[1], row[1]) for row in rows] or run_pick["choices"] == [row[1] for row in rows]
    second = rows[1][1]
    rows, note = train_queue.move_up(second)
    assert rows[0][1] == second and "Moved" in note
    rows, note = train_queue.cancel_queued(second)
    assert [row[1] for row in rows] != [] and second not in [row[1] for row in rows]
    _, note = train_queue.cancel_queued("../../etc")
    assert note.startswith("⚠️") and "not waiting" in note
    table, figure, note = train_queue.compare_sweep(sweep_pick["value"] if "value" in sweep_pick else seen["sweeps"][0], 0.6)
    assert len(table["value"]) == 2 and "cancelled" in [row[table["headers"].index("state")] for row in table["value"]]


def test_sweep_refusals_are_messages(tmp_path, tiny_model_dir):
    outside = tmp_path / "elsewhere.jsonl"
    write_chats(outside)
    recipe = tiny_recipe(tiny_model_dir, outside)
    _, message = train_queue.queue_sweep(recipe.to_yaml(), "1e-3", "", "")
    assert message.startswith("⚠️") and "outside the folders" in message
    inside_recipe = tiny_recipe(tiny_model_dir, write_chats(runs.workspace().datasets / "d.jsonl"))
    _, message = train_queue.queue_sweep(inside_recipe.to_yaml(), "", "0", "")
    assert "lora.r must be at least 1" in message and queue.waiting_runs() == []
    _, _, note = train_queue.compare_sweep("../x", 0.6)
    assert "not a sweep id" in note


def test_webhook_setting_and_accelerate_view(tmp_path, monkeypatch):
    assert "Webhook saved" in train_queue.save_webhook("https://hooks.example.com/abc")
    assert webhook.read_settings()["webhook_url"] == "https://hooks.example.com/abc"
    assert train_queue.save_webhook("ftp://x").startswith("⚠️")
    monkeypatch.setenv("STUDIO_DEMO", "1")
    assert "does not call webhooks" in train_queue.save_webhook("https://hooks.example.com/abc")
    monkeypatch.delenv("STUDIO_DEMO")
    run = runs.create_run(recipes.from_dict({"data": {"path": "x"}, "training": {"num_processes": 2}}))
    shown = train_queue.accelerate_view(run.name)  # the browser names runs by id
    assert shown["visible"] is True and yaml.safe_load(shown["value"])["num_processes"] == 2
    assert train_queue.accelerate_view("")["visible"] is False


@pytest.mark.slow
def test_start_button_starts_then_queues(tmp_path, tiny_model_dir):
    from studio.ui.train import tab as train_tab

    recipe = tiny_recipe(tiny_model_dir, write_chats(runs.workspace().datasets / "d.jsonl", 40), max_steps=100000,
                         save_steps=100000, eval_steps=100000)
    current, message = train_tab.start_run(recipe.to_yaml())
    current = runs.workspace().runs / current  # the Train tab names the open run by its id
    try:
        assert message.startswith("Started") and runs.read_status(current)["state"] in runs.LIVE_STATES, message
        kept, message = train_tab.start_run(recipe.to_yaml())
        assert message.startswith("Queued") and isinstance(kept, dict)  # the open run stays the live one
        waiting = queue.waiting_runs()[0]
        assert "waiting in the queue" in train_tab.stop_run(waiting.run_id)
    finally:  # a 100000-step run must never outlive the test, whatever failed above
        for info in queue.waiting_runs():
            queue.cancel(info.run_id)
        runs.stop(current)
    assert runs.wait(current, timeout=300)["state"] == "stopped", runs.tail_log(current)
