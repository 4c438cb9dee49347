"""The "Make a dataset" handlers: a background generation against the stand-in Ollama server
(start, progress, stop, resume, re-attach), names that can't leave the workspace, the mode build,
and the made files listed in the Dataset tab."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.dataset import make_worker
from studio import dataset_make, dataset_tab
from tests.ollama_standin import StandIn

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


def test_background_generation_stop_resume_and_review(studio_home):
    with StandIn(delay_s=0.15) as server:
        out, status, progress, _timer = dataset_make.start_qa(*_form("qa-ui", server.host, count=12))
        assert out.endswith("datasets/made/qa-ui.jsonl") and "in the background" in status
        _wait(out, ("running",))
        assert dataset_make.current_output() == out  # a reloaded page watches the running generation
        time.sleep(0.6)
        assert "Stopping" in dataset_make.stop_qa(out)
        stopped = _wait(out)
        assert stopped["state"] == "stopped" and 0 < stopped["kept"] < 12
        kept = Path(out).read_text().count("\n")
        assert kept == stopped["kept"]  # the stop lost nothing that was made
        _, again, _, _ = dataset_make.start_qa(*_form("qa-ui", server.host, count=12))
        assert "exists: press Resume" in again
        dataset_make.resume_qa(*_form("qa-ui", server.host, count=12))
        done = _wait(out, ("completed",))
    progress, status, _ = dataset_make.poll_qa(out)
    assert "12 / 12 pairs" in progress and "pairs/min" in progress and "is ready" in status
    slots = sorted(json.loads(line)["slot"] for line in Path(out).read_text().splitlines())
    assert slots == list(range(12)) and done["sessions"] == 2
    labels = [label for label, _ in dataset_tab.dataset_choices()]
    assert "Workspace: made/qa-ui.jsonl" in labels and not any(".make/" in label for label in labels)


def test_failures_are_messages_not_tracebacks(studio_home):
    form = _form("../escape", "127.0.0.1:1")
    assert "Can't start" in dataset_make.start_qa(*form)[1]
    form = _form("refused", "127.0.0.1:9")
    out, _, _, _ = dataset_make.start_qa(*form)
    failed = _wait(out)
    assert failed["state"] == "failed" and "no Ollama server answers" in failed["error"]
    assert "failed" in dataset_make.poll_qa(out)[1]
    outside = dataset_make.start_qa("/etc", *_form("x", "h")[1:])
    assert "outside the folders" in outside[1]


def test_mode_build_from_the_ui(studio_home):
    final, summary = dataset_make.build_modes_ui(str(dataset_make.SAMPLE_RECORDS), None, "modes-ui", "agent", 5,
                                                 "prefix/suffix file (Llama 2 layout)", "embedded")
    assert final.endswith("made/modes-ui/final.jsonl") and "**Clean**" in summary
    assert len(Path(final).read_text().splitlines()) == 5
    assert "Can't build" in dataset_make.build_modes_ui("/etc/passwd", None, "m", "all", None, "x", "embedded")[1]
