"""A hostile visitor, through the real queue API: the studio app (studio/ui/app.py) is launched on
127.0.0.1 and every registered event is posted to /gradio_api/queue/join with hostile values in
every input it takes and in its event data (`..` segments, absolute paths, a symlink in the
workspace that leads out, URL-encoded forms), the answers read from the SSE stream. Nothing
outside the workspace may be read (the sentinel's secret never comes back), listed (its inner
names never come back) or deleted (the sentinel folder, a finished-looking run, survives)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.helpers.server import queue_call, served_app

SECRET = "SENTINEL-9c1e-never-leaves"
LISTED = "checkpoint-424242"  # a name inside the sentinel: listing it would show it


@pytest.fixture
def hostile_setup(tmp_path, monkeypatch):
    """workspace at a/ws, sentinel run folder at a/somewhere = a/ws/runs/../../somewhere; the
    server's working folder is cwd/ (relative values that escape the guard would land there)."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    home = tmp_path / "a" / "ws"
    (home / "runs").mkdir(parents=True)
    (home / "datasets").mkdir()
    monkeypatch.setenv("STUDIO_HOME", str(home))
    monkeypatch.setenv("STUDIO_DEMO", "0")
    monkeypatch.delenv("STUDIO_AUTH", raising=False)
    sentinel = tmp_path / "a" / "somewhere"
    (sentinel / "checkpoints" / LISTED).mkdir(parents=True)
    (sentinel / "checkpoints" / LISTED / "adapter_config.json").write_text("{}")
    (sentinel / "status.json").write_text(json.dumps({"state": "completed", "step": 1, "total_steps": 1,
                                                     "error": SECRET}))
    (sentinel / "train.log").write_text(f"{SECRET}\n")
    (sentinel / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "loss": 4.24242}) + "\n")
    (sentinel / "recipe.yaml").write_text(f"name: {SECRET}\nmodel: {{name: embedded}}\n")
    (sentinel / "data.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": SECRET},
                                                                  {"role": "assistant", "content": SECRET}]}) + "\n")
    (home / "runs" / "escape").symlink_to(sentinel, target_is_directory=True)
    (home / "datasets" / "escape.jsonl").symlink_to(sentinel / "data.jsonl")
    real = home / "runs" / "real-run"  # one honest run, so run pickers have something
    real.mkdir()
    (real / "status.json").write_text(json.dumps({"state": "completed", "step": 1, "total_steps": 1}))
    values = ["../../somewhere", "../somewhere/data.jsonl", str(sentinel), str(sentinel / "data.jsonl"), "/etc/passwd",
              "escape", "datasets/escape.jsonl", "%2e%2e%2f%2e%2e%2fsomewhere"]
    return home, sentinel, values


@pytest.fixture
def server(hostile_setup):
    with served_app() as served:
        yield served


def _props(app) -> dict:
    if not hasattr(app, "_walk_props"):  # the config is rebuilt on each read: read it once
        app._walk_props = {c["id"]: c.get("props", {}) for c in app.config["components"]}
    return app._walk_props


def _inputs(app, fn, value: str | None, sentinel: Path) -> list:
    """What the page would send for `fn`, with `value` in every place a visitor can type or pick
    (None: the widgets' own values, as an honest page sends them)."""
    props = _props(app)
    recipe = (f"name: walk\nmodel: {{name: '{value}', trust_remote_code: true}}\n"
              f"data: {{path: '{value}'}}\ntraining: {{max_steps: 1}}\n")
    data = []
    for block in fn.inputs:
        kind = type(block).__name__
        if block.stateful:
            data.append(None)
        elif value is None:
            data.append(props[block._id].get("value"))
        elif kind == "Code":
            data.append(recipe)
        elif kind in ("Textbox", "Radio"):
            data.append(value)
        elif kind == "Dropdown":
            data.append([value] if props[block._id].get("multiselect") else value)
        elif kind == "File":
            data.append({"path": value, "orig_name": "x.jsonl", "meta": {"_type": "gradio.FileData"}})
        else:
            data.append(props[block._id].get("value"))
    return data


def _event_data(value: str) -> dict:
    return {"index": [0, 0], "value": value, "row_value": [value], "col_value": [value], "selected": True}


def _outside_files(sentinel: Path) -> set[str]:
    """Everything outside the workspace a hostile value could reach by writing: the server's
    working folder, the sentinel's parent (the workspace's own parent) less the workspace, and
    the top of the temporary folder (gradio's own upload cache excepted)."""
    import os
    import tempfile

    parent = sentinel.parent
    found = {str(p) for p in Path.cwd().rglob("*")}
    for top in parent.iterdir():  # the workspace itself (ws/) is where writes belong: not walked
        if top.name != "ws":
            found |= {str(top)} | {str(p) for p in top.rglob("*")}
    gradio_cache = os.environ.get("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "gradio"))
    found |= {str(p) for p in Path(tempfile.gettempdir()).iterdir()
              if str(p) != gradio_cache and any(mark in p.name for mark in ("somewhere", "escape", "passwd", "%2e", ".make"))}
    return found


def _assert_untouched(sentinel: Path) -> None:
    assert (sentinel / "train.log").read_text() == f"{SECRET}\n", "the sentinel's log was changed or deleted"
    assert (sentinel / "status.json").is_file() and (sentinel / "checkpoints" / LISTED).is_dir()


def test_a_forged_select_then_refresh_then_delete_stays_inside(server, hostile_setup):
    """Issue 12's exploit: select row `../../somewhere`, the timer's refresh, 'Delete the open run'."""
    app, base = server
    _, sentinel, _ = hostile_setup
    named = {fn.name: (index, fn) for index, fn in app.fns.items()}
    before = _outside_files(sentinel)
    session = uuid.uuid4().hex
    answers = []
    for name, event in (("open_run", _event_data("../../somewhere")), ("refresh", None), ("delete_run", None)):
        index, fn = named[name]
        answers.append(queue_call(base, session, index, _inputs(app, fn, None, sentinel), event, fn.targets[0][0]))
    assert all('"success":true' in answer.replace(" ", "") for answer in answers), answers
    assert SECRET not in "\n".join(answers)
    _assert_untouched(sentinel)
    assert _outside_files(sentinel) == before


@pytest.mark.slow  # about 700 events through the queue: 2 minutes on an idle 2-core machine
def test_every_event_with_hostile_values_reads_lists_and_deletes_nothing_outside(server, hostile_setup):
    """Each distinct handler gets every hostile value; the copies of one handler on other widgets
    (the form's 43 `input` events) get one value each, so every registered event is posted."""
    import time

    import httpx

    app, base = server
    home, sentinel, values = hostile_setup
    callable_fns = [(index, fn) for index, fn in app.fns.items() if fn.fn is not None]
    assert len(callable_fns) > 60, "the walk must reach every tab's events"
    seen, plan = set(), []
    for index, fn in callable_fns:
        key = (fn.fn, tuple(block._id for block in fn.inputs))
        plan.append((index, fn, values if key not in seen else [values[len(plan) % len(values)]]))
        seen.add(key)
    answered = completed = 0
    before = _outside_files(sentinel)
    started = time.monotonic()
    for value in values:
        session = uuid.uuid4().hex  # state set by one event (an opened run or dataset) meets the next
        with httpx.Client(timeout=120) as client:  # one browser per session: a new client per event costs ~50 ms
            first = [(index, fn) for index, fn, chosen in plan if value in chosen]
            # Then once more for the handlers that read state, so a value one handler stored reaches them all.
            again = [(index, fn) for index, fn in first if any(block.stateful for block in fn.inputs)]
            for index, fn in first + again:
                trigger = fn.targets[0][0] if fn.targets else None
                answer = queue_call(base, session, index, _inputs(app, fn, value, sentinel), _event_data(value), trigger, client=client)
                answered += 1
                completed += "process_completed" in answer
                assert SECRET not in answer, f"{fn.name} with {value!r} read outside the workspace:\n{answer[:2000]}"
                assert LISTED not in answer, f"{fn.name} with {value!r} listed a folder outside the workspace"
                _assert_untouched(sentinel)
                written = _outside_files(sentinel) - before
                assert not written, f"{fn.name} with {value!r} wrote outside the workspace: {sorted(written)}"
    print(f"{answered} events posted in {time.monotonic() - started:.0f} s")
    assert completed > answered * 0.9, "most events must run their handler, not be turned away before it"
    assert (home / "runs" / "real-run" / "status.json").is_file()
