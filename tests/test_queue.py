"""Queue, sweeps, trackers and the webhook: runs wait on disk for the one training slot, start
when it frees, a sweep's runs compare in one table, tensorboard files read back, the webhook
gets the outcome and nothing secret."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from core import recipes
from core.train import queue, runs, sweeps, trackers, webhook
from tests.helpers.data import tiny_recipe, write_chats


def test_a_start_while_busy_waits_in_order_and_survives_a_reload(tmp_path, tiny_model_dir, busy_slot, monkeypatch):
    data = write_chats(tmp_path / "d.jsonl")
    a, started_a = queue.submit(tiny_recipe(tiny_model_dir, data))
    b, started_b = queue.submit(tiny_recipe(tiny_model_dir, data))
    assert not started_a and not started_b
    assert runs.read_status(a)["state"] == "queued" and runs.read_status(a)["waiting"] is True
    assert [i.run_id for i in queue.waiting_runs()] == [a.name, b.name]  # read back from disk
    assert runs.active_run().run_id == busy_slot.name  # waiting runs don't hold the slot
    assert queue.move(b.name, "up") == [b.name, a.name]
    assert queue.start_next() is None  # the slot is taken
    runs.stop(a)
    assert not (a / runs.STOP_FILE).exists()  # no worker to stop: Stop leaves a waiting run alone
    queue.cancel(b.name)
    assert runs.read_status(b)["state"] == "cancelled" and [i.run_id for i in queue.waiting_runs()] == [a.name]
    with pytest.raises(queue.QueueError, match="not waiting"):
        queue.cancel(b.name)
    with pytest.raises(queue.QueueError, match="expected up, down"):
        queue.move(a.name, "sideways")


def test_waiting_run_is_never_read_as_a_dead_worker(tmp_path, busy_slot):
    run = runs.create_run(recipes.from_dict({"name": "w", "data": {"path": "x"}}))
    runs.update_status(run, waiting=True, created_at="2000-01-01T00:00:00+00:00")
    assert runs.read_status(run)["state"] == "queued"  # not 'failed', however long it waits


def test_grid_expands_and_names_bad_values():
    base = recipes.from_dict({"name": "g", "data": {"path": "x"}})
    grid = sweeps.parse_grid(["training.learning_rate=1e-4,3e-4", "lora.r=8,16", "training.epochs=1"])
    combos = sweeps.expand(base, grid)
    assert len(combos) == 4 and combos[1][0] == {"training.learning_rate": 1e-4, "lora.r": 16, "training.epochs": 1}
    assert combos[1][1].lora.r == 16 and combos[3][1].training.learning_rate == 3e-4
    with pytest.raises(recipes.RecipeError, match="lora.r must be at least 1"):
        sweeps.expand(base, {"lora.r": [8, 0]})
    with pytest.raises(recipes.RecipeError, match="unknown key 'training.lr'"):
        sweeps.expand(base, {"training.lr": [1e-4]})
    with pytest.raises(recipes.RecipeError, match="at most 32"):
        sweeps.expand(base, {"training.seed": list(range(33))})
    with pytest.raises(recipes.RecipeError, match="expected field=value1,value2"):
        sweeps.parse_grid(["training.learning_rate"])


def test_report_to_reaches_the_trainer_with_the_run_id_and_offline_files(tmp_path, monkeypatch):
    from core.train import trainer_configs

    recipe = recipes.from_dict({"data": {"path": "x"}, "training": {"report_to": ["tensorboard", "wandb", "mlflow"]}})
    kwargs = trainer_configs.common_kwargs(recipe, str(tmp_path / "run-7" / "checkpoints"), steps_per_epoch=1, has_eval=False)
    assert kwargs["report_to"] == ["tensorboard", "wandb", "mlflow"] and kwargs["run_name"] == "run-7"
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mine:5000")  # the user's own choice wins
    env = trackers.environment(recipe, tmp_path / "run-7")
    assert env["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "run-7" / "tensorboard") and env["WANDB_MODE"] == "offline"
    assert "MLFLOW_TRACKING_URI" not in env
    none = recipes.from_dict({"data": {"path": "x"}})
    assert trainer_configs.common_kwargs(none, "/x/checkpoints", steps_per_epoch=1, has_eval=False)["report_to"] == "none"
    with pytest.raises(recipes.RecipeError, match="training.report_to must name trackers among"):
        recipes.from_dict({"data": {"path": "x"}, "training": {"report_to": ["neptune"]}})


def test_missing_tracker_package_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    recipe = recipes.from_dict({"data": {"path": "x"}, "training": {"report_to": ["wandb"]}})
    with pytest.raises(recipes.RecipeError, match="pip install wandb"):
        trackers.check_installed(recipe)


def test_webhook_url_is_checked_and_never_printed_whole(capsys):
    with pytest.raises(recipes.RecipeError, match="http:// or https://"):
        webhook.save_webhook_url("file:///etc/passwd")
    webhook.save_webhook_url("http://127.0.0.1:9/hooks/SECRET-TOKEN")
    run = runs.create_run(recipes.from_dict({"name": "w", "data": {"path": "x"}}))
    assert webhook.notify_webhook(run, timeout=2) is False  # nothing listens on port 9
    printed = capsys.readouterr().out
    assert "not reached" in printed and "SECRET-TOKEN" not in printed


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_sweep_of_two_runs_queues_compares_and_reports(tmp_path, tiny_model_dir, monkeypatch):
    """Two tiny runs (lr grid) with tensorboard and a webhook: the second starts when the first's
    worker ends, the table compares them, event files read back, the webhook hears both."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    webhook.save_webhook_url(f"http://127.0.0.1:{server.server_port}/done")
    monkeypatch.setenv("HF_TOKEN", "hf_never_in_a_body")
    recipe = tiny_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"), max_steps=3, save_steps=3, eval_steps=3,
                         report_to=["tensorboard"])
    record = sweeps.submit(recipe, {"training.learning_rate": [1e-3, 1e-4]})
    first, second = (runs.workspace().runs / r["run_id"] for r in record["runs"])
    assert runs.read_status(second).get("waiting") is True
    assert runs.wait(first, timeout=300)["state"] == "completed", runs.tail_log(first)
    assert runs.wait(second, timeout=300)["state"] == "completed", runs.tail_log(second)  # nobody but the worker started it
    table = sweeps.compare(record["sweep_id"])
    assert {row["training.learning_rate"] for row in table} == {1e-3, 1e-4}
    assert all(row["state"] == "completed" and row["best_eval_loss"] is not None for row in table)
    events = EventAccumulator(str(first / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]  # this run's only
    deadline = __import__("time").monotonic() + 20
    while len(_Hook.received) < 2 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.2)
    server.shutdown()
    assert [body["run_id"] for body in _Hook.received] == [first.name, second.name]
    assert _Hook.received[0]["state"] == "completed" and _Hook.received[0]["best_eval_loss"] is not None
    assert "hf_never" not in json.dumps(_Hook.received)


def test_a_worker_does_not_pass_its_tracker_folders_to_the_next_run(tmp_path, monkeypatch):
    recipe = recipes.from_dict({"data": {"path": "x"}, "training": {"report_to": ["tensorboard"]}})
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.delenv("STUDIO_TRACKER_KEYS", raising=False)
    trackers.apply(recipe, tmp_path / "first")
    import os

    child = trackers.clean_env(dict(os.environ))
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR")
    monkeypatch.delenv("STUDIO_TRACKER_KEYS")
    assert "TENSORBOARD_LOGGING_DIR" not in child and "STUDIO_TRACKER_KEYS" not in child


def test_a_run_whose_worker_died_is_notified_once_by_the_poll(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    webhook.save_webhook_url(f"http://127.0.0.1:{server.server_port}/done")
    run = runs.create_run(recipes.from_dict({"name": "killed", "data": {"path": "x"}}))
    old = runs.create_run(recipes.from_dict({"name": "old", "data": {"path": "x"}}))
    runs.update_status(old, state="completed")  # from before any webhook promise: left alone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.update_status(run, state="running", pid=dead.pid, notify_pending=True)  # killed mid-run
    assert webhook.notify_orphans() == 1
    assert webhook.notify_orphans() == 0 and webhook.notify_webhook(run) is False  # once, whoever asks
    server.shutdown()
    assert [(b["run_id"], b["state"]) for b in _Hook.received] == [(run.name, "failed")]
