"""Run folder: the one owner of the run directory's layout.

A run is `runs/<id>/`: recipe.yaml, status.json, metrics.jsonl, completions.jsonl (GRPO),
train.log, the stop file, checkpoints/checkpoint-<step>/, adapter/ or model/, best/, ab/ (A/B
results), eval/ (the after-training evaluation report, written by core.eval). This module names
those files, reads and writes them (status checked against the worker's pid, the evaluation's
entry in it likewise, metrics and A/B rows through one JSONL reader, the log's tail) and answers "is this
a run folder?", "which run holds this checkpoint?" and "which checkpoint is newest?". It knows nothing
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

from core import models
from core.errors import BadInput
from core.workspace import (
    PathOutsideWorkspace,
    append_jsonl,
    inside,
    read_json,
    read_jsonl,
    workspace,
    write_atomic,
    write_json_atomic,
)

LIVE_STATES = ("queued", "running", "stopping")  # a queued run with `waiting: true` waits in core.train.queue
STOP_FILE = "stop-requested"  # a file whose presence asks the worker to save and stop
STATUS_FILE = "status.json"
RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"  # GRPO: sampled completions with their rewards, per logging step
LOG_FILE = "train.log"
CHECKPOINTS = "checkpoints"
RESUME_SPLIT = "resume"  # a metrics record {"step": N, "split": "resume"}: a session resumed from checkpoint N
BEST = "best"  # best checkpoint by eval loss, with BEST_INFO saying which step
BEST_INFO = "best.json"
FINAL = ("adapter", "model")  # the final LoRA adapter, or the model of a full fine-tune
AB_DIR = "ab"  # A/B results over a prompt set, one JSONL file per run of the set
EVAL_DIR = "eval"  # the regression guard's report after training (core.eval.guard writes it)
EVAL_STATES = ("none", "running", "done", "failed")  # status.json's `evaluation.state`; none: no entry
_CHILDREN: dict[int, subprocess.Popen] = {}  # workers this process started, reaped on read


def is_run_dir(path: str | Path) -> bool:
    """A folder is a run folder when it holds status.json."""
    return (Path(path) / STATUS_FILE).is_file()


def run_holding(path: str | Path) -> Path | None:
    """The run folder that `path` is, or lies in (adapter/, best/, checkpoints/checkpoint-N); else None."""
    path = Path(path)
    return next((p for p in [path, *path.parents][:3] if is_run_dir(p)), None)


class UnknownRun(BadInput):
    """A run id that names no run folder of this workspace (or is not a plain folder name)."""


def run_path(run_id: str) -> Path:
    """The folder of the run `run_id`: a plain folder name directly under the workspace's runs/
    (no separators, no `..`, no symlink out) that holds a run. Browser-sent run ids come here,
    so this is the only way a client's choice of run becomes a path."""
    name = str(run_id or "").strip()
    root = workspace().runs
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0", "%")):
        raise UnknownRun(f"{name!r} is not a run id: use a run's folder name as `studio runs` lists it")
    try:
        folder = inside(root / name, root)
    except PathOutsideWorkspace:
        raise UnknownRun(f"{name!r} is not a run of this workspace ({root})") from None
    if folder.parent != root.resolve() or not is_run_dir(folder):
        raise UnknownRun(f"{name!r} is not a run of this workspace ({root})")
    return folder


def in_runs_folder(path: str | Path) -> bool:
    """Whether `path` is a folder directly under the workspace's runs/ (after resolving links)."""
    root = workspace().runs.resolve()
    return Path(path).resolve().parent == root


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
        job = status.get("hf_job") or {}  # a Hugging Face Jobs run: the pid is its follower's (core.train.hf_job_follow)
        why = (f"The process following Hugging Face job {job.get('job_id')} ended early (this machine restarted, or it "
               f"was killed); the job itself may still run: {job.get('url')}. " if job else
               "The training process ended without finishing (killed, out of memory, or crashed). ")
        status.update(state="failed", ended_at=now_iso(), error=why + "Last lines of train.log:\n" + tail_log(run_path, 15))
        write_json_atomic(run_path / STATUS_FILE, status)
    elif status.get("state") == "running" and (run_path / STOP_FILE).exists():
        status["state"] = "stopping"
    return status


def read_evaluation(run_path: str | Path) -> dict:
    """The run's `evaluation` entry in status.json (the after-training guard's progress and
    outcome), `{}` when it has none; a 'running' one whose worker is gone (killed mid-evaluation)
    reads as failed, so no screen waits for it forever."""
    import psutil

    status = read_status(run_path)
    evaluation = dict(status.get("evaluation") or {})
    pid = status.get("pid")
    if evaluation.get("state") == "running" and pid and not psutil.pid_exists(pid):
        evaluation = {"state": "failed", "error": "the evaluation process ended without finishing; see train.log"}
    return evaluation


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
    status = read_json(path)
    status.update(fields)
    write_json_atomic(path, status)
    return status


def read_metrics(run_path: str | Path) -> list[dict]:
    """metrics.jsonl, one record per (split, step); a half-written last line is skipped, not an error."""
    return read_metrics_file(Path(run_path) / METRICS_FILE)


def read_metrics_file(path: str | Path) -> list[dict]:
    """The records of a metrics file wherever it lies, one per split and step (see one_per_step)."""
    return one_per_step(read_jsonl(path))


def one_per_step(records: list[dict]) -> list[dict]:
    """One record per split and step, the last session's. A resumed run writes a `resume` record
    at its checkpoint's step N: what the killed session logged after N is dropped (the marker
    too). Without a marker (older runs), a record whose step is not past its split's last one
    supersedes that split's earlier records from its step on.

    >>> [r["loss"] for r in one_per_step([{"step": 1, "split": "train", "loss": 3}, {"step": 2, "split": "train", "loss": 2},
    ...                                   {"step": 1, "split": "resume"}, {"step": 2, "split": "train", "loss": 9}])]
    [3, 9]
    """
    kept: list[dict | None] = []
    last: dict[str, list[int]] = {}  # split -> positions in `kept`, steps increasing
    for record in records:
        step = record.get("step")
        if not isinstance(step, (int, float)):
            kept.append(record)
            continue
        if record.get("split") == RESUME_SPLIT:
            for positions in last.values():
                while positions and kept[positions[-1]]["step"] > step:
                    kept[positions.pop()] = None
            continue
        mine = last.setdefault(str(record.get("split")), [])
        while mine and kept[mine[-1]]["step"] >= step:
            kept[mine.pop()] = None
        mine.append(len(kept))
        kept.append(record)
    return [record for record in kept if record is not None]


def append_record(run_path: str | Path, name: str, record: dict) -> None:
    """One JSON line onto a run's JSONL file (metrics, completions)."""
    append_jsonl(Path(run_path) / name, record)


def trim_metrics(run_path: str | Path, last_step: int) -> int:
    """Drop the records past `last_step` (a resume starts again from that checkpoint, and will log
    those steps anew); returns how many were dropped. Atomic: a crash leaves the old file."""
    path = Path(run_path) / METRICS_FILE
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    kept = [line for line in lines if _step_of(line) is None or _step_of(line) <= last_step]
    if len(kept) != len(lines) or not text.endswith("\n"):  # a killed writer's half line must not glue onto the next
        write_atomic(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)


def _step_of(line: str) -> int | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None  # a half-written line is kept as it was; readers skip it
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """The optimizer step a checkpoint folder was saved at (checkpoint-<step>)."""
    match = re.fullmatch(r"checkpoint-(\d+)", Path(checkpoint).name)
    return int(match.group(1)) if match else None


def latest_ab_rows(run_path: str | Path | None) -> list[dict]:
    """Rows of the newest A/B file kept in the run folder (ab/*.jsonl, or ab*.jsonl beside it)."""
    if not run_path:
        return []
    run_path = Path(run_path)
    files = sorted([*run_path.glob("ab*.jsonl"), *(run_path / AB_DIR).glob("*.jsonl")], key=lambda p: p.stat().st_mtime)
    return read_jsonl(files[-1]) if files else []


def read_completions(run_path: str | Path, last_steps: int | None = None) -> list[dict]:
    """GRPO's sample table: {step, prompt, completion, rewards, total} rows, optionally only the
    last few logging steps; a half-written last line is skipped."""
    rows = read_jsonl(Path(run_path) / COMPLETIONS_FILE)
    if last_steps:
        keep = sorted({row.get("step") for row in rows if row.get("step") is not None})[-last_steps:]
        rows = [row for row in rows if row.get("step") in keep]
    return rows


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


def checkpoint_dir(run_path: str | Path, name: str = "") -> Path:
    """checkpoints/ of a run, or one checkpoint in it by folder name."""
    return Path(run_path) / CHECKPOINTS / name if name else Path(run_path) / CHECKPOINTS


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
    if (run_path / BEST).is_dir():
        found.append(("best", run_path / BEST))
    for name in FINAL:
        if (run_path / name).is_dir():
            found.append(("final", run_path / name))
    for checkpoint in reversed(_checkpoints(run_path)):
        found.append((checkpoint.name, checkpoint))
    return found


class UnknownBase(BadInput):
    """Tuned weights whose base model can't be found here."""


def base_model_for(artifact: str | Path) -> str:
    """Which base model tuned weights (an adapter, best/, a checkpoint, a full model) were trained
    from: the one answer chat, evaluation and export use. First the recipe saved with them (the
    artifact's own recipe.yaml, else its run's), which names the model as the person did
    ('embedded', a Hub id, a folder) and so travels between machines; then adapter_config.json's
    base_model_name_or_path (the path the trainer loaded). The first that resolves here wins."""
    artifact = Path(artifact)
    recipe = read_recipe(artifact) or read_recipe(run_holding(artifact) or artifact)
    candidates = [((recipe.get("model") or {}).get("name"))]
    config = artifact / "adapter_config.json"
    if config.is_file():
        candidates.append(json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path"))
    candidates = [str(c) for c in dict.fromkeys(candidates) if c]
    for candidate in candidates:
        try:
            models.resolve(candidate)
        except models.ModelNotFound:
            continue
        return candidate
    tried = " or ".join(repr(c) for c in candidates) or "nothing (no recipe.yaml, no base_model_name_or_path)"
    raise UnknownBase(f"{artifact}: its base model is missing: tried {tried}. Put the base model back at that path, "
                      "or set model.name in the run's recipe.yaml to 'embedded', a local folder or a Hub id.")
