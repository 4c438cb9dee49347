"""Run folder: the one owner of the run directory's layout.

A run is `runs/<id>/`: recipe.yaml, status.json, metrics.jsonl, train.log, the stop file,
checkpoints/checkpoint-<step>/, adapter/ or model/, best/. This module names those files, reads
and writes them (status checked against the worker's pid, metrics one value per step, the log's
tail) and answers "is this a run folder?" and "which checkpoint is newest?". It knows nothing
about starting processes, trainers or the UI, and imports nothing heavy (torch stays unloaded).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from core.workspace import write_json_atomic

LIVE_STATES = ("queued", "running", "stopping")  # a queued run with `waiting: true` waits in core.train.queue
STOP_FILE = "stop-requested"  # a file whose presence asks the worker to save and stop
STATUS_FILE = "status.json"
RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINTS = "checkpoints"
_CHILDREN: dict[int, subprocess.Popen] = {}  # workers this process started, reaped on read


def is_run_dir(path: str | Path) -> bool:
    """A folder is a run folder when it holds status.json."""
    return (Path(path) / STATUS_FILE).is_file()


def register_child(process: subprocess.Popen) -> None:
    """Remember a worker this process started, so its exit is seen (and reaped) on the next read."""
    _CHILDREN[process.pid] = process


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def read_status(run_path: str | Path) -> dict:
    """status.json, corrected: a live state whose worker is gone becomes `failed` (persisted)."""
    run_path = Path(run_path)
    try:
        status = json.loads((run_path / STATUS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"state": "unknown", "error": f"{run_path} has no status.json: not a run folder"}
    except json.JSONDecodeError:
        return {"state": "unknown", "error": f"{run_path / STATUS_FILE} is unreadable"}
    if status.get("state") in LIVE_STATES and not status.get("waiting") and not _worker_alive(status):
        if status.get("pid") is None and time.time() - parse_time(status.get("created_at", now_iso())) < 30:
            return status  # just created; the worker's pid is being written
        status.update(state="failed", ended_at=now_iso(),
                      error="The training process ended without finishing (killed, out of memory, or crashed). "
                            "Last lines of train.log:\n" + tail_log(run_path, 15))
        write_json_atomic(run_path / STATUS_FILE, status)
    elif status.get("state") == "running" and (run_path / STOP_FILE).exists():
        status["state"] = "stopping"
    return status


def _worker_alive(status: dict) -> bool:
    import psutil

    pid = status.get("pid")
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:  # our own child: reap it, it's gone
        _CHILDREN.pop(pid, None)
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = status.get("pid_started")
        # A recycled pid belongs to another process: its start time differs.
        return started is None or abs(process.create_time() - started) < 2
    except psutil.Error:
        return False


def update_status(run_path: Path, **fields) -> dict:
    """Merge fields into status.json (the worker is the only writer while it lives)."""
    path = Path(run_path) / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        status = {}
    status.update(fields)
    write_json_atomic(path, status)
    return status


def read_metrics(run_path: str | Path) -> list[dict]:
    """Every record of metrics.jsonl; a half-written last line is skipped, not an error."""
    path = Path(run_path) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def tail_log(run_path: str | Path, lines: int = 40) -> str:
    path = Path(run_path) / LOG_FILE
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64_000))
        text = handle.read().decode("utf-8", errors="replace")
    # Progress-bar carriage returns would make one line of a thousand updates.
    rows = [row.split("\r")[-1] for row in text.splitlines()]
    return "\n".join(rows[-lines:])


def read_recipe(run_path: str | Path) -> dict:
    import yaml

    try:
        return yaml.safe_load((Path(run_path) / RECIPE_FILE).read_text(encoding="utf-8")) or {}
    except (FileNotFoundError, yaml.YAMLError):
        return {}


def latest_checkpoint(run_path: str | Path) -> Path | None:
    checkpoints = _checkpoints(Path(run_path))
    return checkpoints[-1] if checkpoints else None


def _checkpoints(run_path: Path) -> list[Path]:
    folder = run_path / CHECKPOINTS
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def model_artifacts(run_path: str | Path) -> list[tuple[str, Path]]:
    """Loadable results in preference order: best/, then adapter/ or model/, then checkpoints
    newest first. Each folder holds the weights (or adapter), the tokenizer and recipe.yaml."""
    run_path = Path(run_path)
    found = []
    if (run_path / "best").is_dir():
        found.append(("best", run_path / "best"))
    for name in ("adapter", "model"):
        if (run_path / name).is_dir():
            found.append(("final", run_path / name))
    for checkpoint in reversed(_checkpoints(run_path)):
        found.append((checkpoint.name, checkpoint))
    return found
