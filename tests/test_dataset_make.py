"""The "Make a dataset" handlers: a background generation against the stand-in Ollama server
(start, progress, stop, resume, re-attach), names that can't leave the workspace, the mode build,
and the made files listed in the Dataset tab."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gradio as gr

from core.dataset import make_worker
from studio.ui.dataset import make as dataset_make
from studio.ui.dataset import tab as dataset_tab
from tests.helpers.ollama_standin import StandIn

SAMPLE = str(dataset_make.SAMPLE_DOCS)


def _form(name: str, host: str, count: int = 6) -> list:
    return [SAMPLE, None, name, count, 0.6, 0.2, 0.2, 1200, 200, 0, 3, "Ollama server", "m", host, 0.7, 512, "off"]


def _wait(out: str, states=("completed", "stopped", "failed", "interrupted"), seconds: float = 120) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        manifest = make_worker.status(out)
        if manifest and manifest.get("state") in states:
            return manifest
        time.sleep(0.2)
    raise AssertionError(f"no {states} within {seconds} s: {make_worker.status(out)}")


def test_background_generation_stop_resume_and_review(studio_home, monkeypatch):
    with StandIn(delay_s=0.15) as server:
        monkeypatch.setenv("STUDIO_OLLAMA_HOSTS", server.host)  # the operator allows it
        out, status, progress, _timer = dataset_make.start_qa(*_form("qa-ui", server.host, count=12))
        assert out == "datasets/made/qa-ui.jsonl" and "in the background" in status  # the page never holds server paths
        made = studio_home / out
        _wait(made, ("running",))
        assert dataset_make.current_output() == out  # a reloaded page watches the running generation
        assert dataset_make.reattach() == ("qa-ui", out)  # and shows its name
        time.sleep(0.6)
        assert "Stopping" in dataset_make.stop_qa(out)
        stopped = _wait(made)
        assert stopped["state"] == "stopped" and 0 < stopped["kept"] < 12
        kept = made.read_text().count("\n")
        assert kept == stopped["kept"]  # the stop lost nothing that was made
        _, again, _, _ = dataset_make.start_qa(*_form("qa-ui", server.host, count=12))
        assert "exists: press Resume" in again
        dataset_make.resume_qa(*_form("qa-ui", server.host, count=12))
        done = _wait(made, ("completed",))
    progress, status, _ = dataset_make.poll_qa(out)
    assert all(isinstance(u, type(gr.skip())) for u in dataset_make.reattach())  # nothing runs: the form is left as it is
    assert "12 / 12 pairs" in progress and "pairs/min" in progress and "is ready" in status
    slots = sorted(json.loads(line)["slot"] for line in made.read_text().splitlines())
    assert slots == list(range(12)) and done["sessions"] == 2
    labels = [label for label, _ in dataset_tab.dataset_choices()]
    assert "Workspace: made/qa-ui.jsonl" in labels and not any(".make/" in label for label in labels)


def test_failures_are_messages_not_tracebacks(studio_home, monkeypatch):
    monkeypatch.setenv("STUDIO_OLLAMA_HOSTS", "127.0.0.1:9")
    form = _form("../escape", "127.0.0.1:1")
    assert "Can't start" in dataset_make.start_qa(*form)[1]
    form = _form("refused", "127.0.0.1:9")
    out, _, _, _ = dataset_make.start_qa(*form)
    failed = _wait(studio_home / out)
    assert failed["state"] == "failed" and "no Ollama server answers" in failed["error"]
    assert "failed" in dataset_make.poll_qa(out)[1]
    outside = dataset_make.start_qa("/etc", *_form("x", "127.0.0.1:9")[1:])
    assert "outside the folders" in outside[1]


def test_mode_build_from_the_ui(studio_home):
    final, summary = dataset_make.build_modes_ui(str(dataset_make.SAMPLE_RECORDS), None, "modes-ui", "agent", 5,
                                                 "prefix/suffix file (Llama 2 layout)", "embedded")
    assert final.endswith("made/modes-ui/final.jsonl") and "**Clean**" in summary
    assert len((studio_home / final).read_text().splitlines()) == 5
    assert "Can't build" in dataset_make.build_modes_ui("/etc/passwd", None, "m", "all", None, "x", "embedded")[1]


def test_forged_outputs_hosts_and_models_are_refused(studio_home, tmp_path, monkeypatch):
    """Issue 24: Stop and the progress timer took the hidden output box as a path and created
    `<any path>.make/stop` wherever the server could write; the form's model and Ollama address
    skipped the visitor guard. Every one of them now goes through it."""
    monkeypatch.chdir(tmp_path)  # relative forged values would land in the server's working folder
    outside = tmp_path / "outside"
    outside.mkdir()
    forged = ["escape", "../../somewhere", str(outside / "x.jsonl"), "%2e%2e%2fsomewhere", "/etc/passwd",
              str(studio_home / "datasets" / "made" / "sub" / "x.jsonl"), str(studio_home / "runs" / "x.jsonl")]
    for value in forged:
        assert dataset_make.stop_qa(value) == "Nothing is being made."
        assert dataset_make.poll_qa(value)[0] is not None  # skips, reads nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"] and not any(outside.iterdir())
    assert not list(studio_home.rglob("stop"))
    form = _form("hostile", "http://10.1.2.3:11434")
    assert "operator allows" in dataset_make.start_qa(*form)[1]
    local = _form("hostile", "")
    local[11:13] = ["transformers (local model)", str(outside)]
    assert "outside the folders" in dataset_make.start_qa(*local)[1]
    built = dataset_make.build_modes_ui(str(dataset_make.SAMPLE_RECORDS), None, "m", "all", None,
                                        "chat template of the model", str(outside))
    assert "outside the folders" in built[1]
    assert not (studio_home / "datasets" / "made" / "hostile.make").exists()


def test_a_demo_generation_is_bounded(studio_home, monkeypatch):
    """Demo mode: the sample documents only, one generation on the whole server, and a worker that
    carries a time budget and stops when the server that started it is gone."""
    monkeypatch.setenv("STUDIO_DEMO", "1")
    started = []
    monkeypatch.setattr(make_worker, "start", lambda *a, **limits: started.append(limits) or 1)
    assert "bundled sample" in dataset_make.start_qa(str(studio_home), *_form("d", "")[1:])[1]
    out, status, _, _ = dataset_make.start_qa(*_form("demo-one", ""))
    assert "in the background" in status
    assert started == [{"resume": False, "owner_pid": os.getpid(), "budget_s": dataset_make.DEMO_BUDGET_S}]
    monkeypatch.setattr(dataset_make, "running_outputs", lambda: [Path(out)])
    assert "one dataset at a time" in dataset_make.start_qa(*_form("demo-two", ""))[1]


def test_a_worker_stops_when_its_owner_is_gone(studio_home, embedded_dir):
    """The real worker process, started for an owner that then exits: it stops by itself and says so."""
    import subprocess
    import sys

    from core.dataset.make_qa import QASettings

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    out = dataset_make.output_for("owned")
    make_worker.start(dataset_make.SAMPLE_DOCS, out, QASettings(count=50, retries=0),
                      {"backend": "transformers", "model": "embedded", "num_predict": 64, "seed": 0},
                      resume=False, owner_pid=owner.pid)
    owner.wait()
    manifest = _wait(str(out), ("stopped", "failed", "interrupted", "completed"), seconds=120)
    assert manifest["state"] == "stopped", manifest
    log = (out.parent / "owned.make" / "worker.log").read_text()
    assert "the server that started it is gone" in log
    assert not make_worker.is_running(out)
