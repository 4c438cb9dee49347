"""Runs: the run directory contract, and the worker process behind each run.

A run is `runs/<id>/` (recipe.yaml, status.json, metrics.jsonl, train.log, checkpoints/,
adapter/ or model/, best/) written by a separate OS process (`python -m core.worker RUN_DIR`,
or `accelerate launch` for several GPUs), started with a list of arguments and no shell, in
its own session so a closed browser or a restarted UI never stops it. Everything here reads
or writes files; the status a reader sees is checked against the worker's pid, so a worker
that died (killed, out of memory) shows as `failed` with the last lines of its log. One
training run at a time per workspace. This module knows nothing about trainers or the UI.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core.recipes import Recipe
from core.workspace import PROJECT_ROOT, workspace, write_atomic, write_json_atomic

LIVE_STATES = ("queued", "running", "stopping")
STOP_FILE = "stop-requested"  # same name as core.callbacks.STOP_FILE (kept import-free: no torch here)
_CHILDREN: dict[int, subprocess.Popen] = {}  # workers this process started, reaped on read


class RunBusy(RuntimeError):
    """A second start while a run is going."""


class RunError(RuntimeError):
    """A run folder that can't do what was asked (no checkpoint, still running, not a run)."""


@dataclass
class RunInfo:
    run_id: str
    path: Path
    state: str
    recipe: dict = field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    step: int = 0
    total_steps: int | None = None
    final_loss: float | None = None
    best_eval_loss: float | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        end = _parse_time(self.ended_at) if self.ended_at else time.time()
        return max(0.0, end - _parse_time(self.started_at))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# ---------------------------------------------------------------- reading


def read_status(run_path: str | Path) -> dict:
    """status.json, corrected: a live state whose worker is gone becomes `failed` (persisted)."""
    run_path = Path(run_path)
    try:
        status = json.loads((run_path / "status.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"state": "unknown", "error": f"{run_path} has no status.json: not a run folder"}
    except json.JSONDecodeError:
        return {"state": "unknown", "error": f"{run_path / 'status.json'} is unreadable"}
    if status.get("state") in LIVE_STATES and not _worker_alive(status):
        if status.get("pid") is None and time.time() - _parse_time(status.get("created_at", now_iso())) < 30:
            return status  # just created; the worker's pid is being written
        status.update(state="failed", ended_at=now_iso(),
                      error="The training process ended without finishing (killed, out of memory, or crashed). "
                            "Last lines of train.log:\n" + tail_log(run_path, 15))
        write_json_atomic(run_path / "status.json", status)
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
    path = Path(run_path) / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        status = {}
    status.update(fields)
    write_json_atomic(path, status)
    return status


def read_metrics(run_path: str | Path) -> list[dict]:
    """Every record of metrics.jsonl; a half-written last line is skipped, not an error."""
    path = Path(run_path) / "metrics.jsonl"
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
    path = Path(run_path) / "train.log"
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
        return yaml.safe_load((Path(run_path) / "recipe.yaml").read_text(encoding="utf-8")) or {}
    except (FileNotFoundError, yaml.YAMLError):
        return {}


def run_info(run_path: str | Path) -> RunInfo:
    run_path = Path(run_path)
    status = read_status(run_path)
    metrics = read_metrics(run_path)
    train_losses = [m["loss"] for m in metrics if m.get("split") == "train" and m.get("loss") is not None]
    eval_losses = [m["loss"] for m in metrics if m.get("split") == "eval" and m.get("loss") is not None]
    return RunInfo(
        run_id=run_path.name, path=run_path, state=status.get("state", "unknown"), recipe=read_recipe(run_path),
        started_at=status.get("started_at"), ended_at=status.get("ended_at"), step=status.get("step", 0) or 0,
        total_steps=status.get("total_steps"), final_loss=train_losses[-1] if train_losses else None,
        best_eval_loss=min(eval_losses) if eval_losses else None, error=status.get("error"),
    )


def list_runs() -> list[RunInfo]:
    """Every run in the workspace, newest first."""
    root = workspace().runs
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "status.json").is_file()] if root.is_dir() else []
    infos = [run_info(p) for p in folders]
    return sorted(infos, key=lambda info: (info.started_at or "", info.run_id), reverse=True)


def active_run() -> RunInfo | None:
    return next((info for info in list_runs() if info.state in LIVE_STATES), None)


def latest_checkpoint(run_path: str | Path) -> Path | None:
    checkpoints = _checkpoints(Path(run_path))
    return checkpoints[-1] if checkpoints else None


def _checkpoints(run_path: Path) -> list[Path]:
    folder = run_path / "checkpoints"
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


# ---------------------------------------------------------------- starting


def new_run_dir(recipe: Recipe) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe.name).strip("-") or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = workspace().runs / f"{safe}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def create_run(recipe: Recipe, run_dir: str | Path | None = None) -> Path:
    """The run folder with the resolved recipe and a queued status; nothing starts yet."""
    run_dir = Path(run_dir) if run_dir else new_run_dir(recipe)
    if (run_dir / "status.json").exists():
        raise RunError(f"{run_dir} already holds a run; pick another --run-dir or resume that run")
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = _with_absolute_dataset(recipe)
    write_atomic(run_dir / "recipe.yaml", recipe.to_yaml())
    write_json_atomic(run_dir / "status.json", {"state": "queued", "pid": None, "step": 0, "total_steps": None,
                                                "created_at": now_iso(), "started_at": None, "ended_at": None,
                                                "error": None})
    return run_dir


def _with_absolute_dataset(recipe: Recipe) -> Recipe:
    """The run's recipe.yaml must load from inside the run folder, so its dataset path is absolute."""
    import copy

    resolved = copy.deepcopy(recipe)
    resolved.data.path = str(recipe.dataset_path())
    return resolved


def worker_command(run_dir: Path, resume: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "core.worker", str(run_dir)]
    return command + (["--resume", resume] if resume else [])


def accelerate_command(recipe: Recipe, run_dir: str | Path, resume: str | None = None) -> list[str]:
    """`accelerate launch` for a multi-GPU recipe (DDP, FSDP or DeepSpeed ZeRO from the recipe)."""
    t = recipe.training
    command = ["accelerate", "launch", "--num_processes", str(t.num_processes)]
    if t.distributed == "fsdp":
        command += ["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP"]
    elif t.distributed == "deepspeed":
        command += ["--use_deepspeed", "--zero_stage", "2"]
    else:
        command += ["--multi_gpu"]
    command += ["-m", "core.worker", str(run_dir)]
    return command + (["--resume", resume] if resume else [])


def uses_accelerate(recipe: Recipe) -> bool:
    return recipe.training.distributed != "none" and recipe.training.num_processes > 1


def launch_command(recipe: Recipe, run_dir: Path, resume: str | None = None) -> list[str]:
    return accelerate_command(recipe, run_dir, resume) if uses_accelerate(recipe) else worker_command(run_dir, resume)


def _spawn(command: list[str], run_dir: Path) -> int:
    import psutil

    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with open(run_dir / "train.log", "ab") as log:
        # Own session: Ctrl-C in the UI's terminal or a UI restart doesn't reach the worker.
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    _CHILDREN[process.pid] = process
    try:
        started = psutil.Process(process.pid).create_time()
    except psutil.Error:
        started = None
    update_status(run_dir, pid=process.pid, pid_started=started)
    return process.pid


class _StartLock:
    """Two starts at the same moment must not both see 'nothing running'."""

    def __enter__(self):
        self.handle = open(workspace().runs / ".start.lock", "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _refuse_if_busy() -> None:
    busy = active_run()
    if busy is not None:
        raise RunBusy(f"Run '{busy.run_id}' is {busy.state} (step {busy.step}/{busy.total_steps or '?'}); this studio "
                      "trains one run at a time. Stop it or wait for it to finish, then start again.")


def start(recipe: Recipe, run_dir: str | Path | None = None) -> Path:
    """Check, create the run folder and start its worker. Raises RunBusy, QLoRANeedsCUDA,
    RecipeError or ModelNotFound before anything is written when the run can't go."""
    from core.hosting import enforce_demo_limits
    from core.training import preflight

    recipe = enforce_demo_limits(recipe)
    preflight(recipe)
    with _StartLock():
        _refuse_if_busy()
        run_dir = create_run(recipe, run_dir)
        _launch(recipe, run_dir, None)
    return run_dir


def _launch(recipe: Recipe, run_dir: Path, resume: str | None) -> None:
    try:
        _spawn(launch_command(recipe, run_dir, resume), run_dir)
    except OSError as error:
        update_status(run_dir, state="failed", ended_at=now_iso(), error=f"could not start the worker: {error}")
        raise RunError(f"could not start the training process: {error}") from error


def resume(run_path: str | Path, checkpoint: str = "last") -> Path:
    """Continue a stopped or failed run from its last (or a named) checkpoint."""
    from core import recipes

    run_path = Path(run_path)
    status = read_status(run_path)
    if status.get("state") in LIVE_STATES:
        raise RunError(f"{run_path.name} is {status['state']}; only a stopped, failed or finished run can resume")
    if checkpoint == "last" and latest_checkpoint(run_path) is None:
        raise RunError(f"{run_path.name} has no checkpoint to resume from; start it again instead")
    recipe = recipes.load(run_path / "recipe.yaml")
    with _StartLock():
        _refuse_if_busy()
        (run_path / STOP_FILE).unlink(missing_ok=True)
        update_status(run_path, state="queued", pid=None, ended_at=None, error=None, created_at=now_iso())
        _launch(recipe, run_path, checkpoint)
    return run_path


def stop(run_path: str | Path) -> dict:
    """Ask the worker to save a checkpoint at the end of this step and stop."""
    run_path = Path(run_path)
    status = read_status(run_path)
    if status.get("state") not in LIVE_STATES:
        return status
    (run_path / STOP_FILE).write_text(now_iso() + "\n")
    return read_status(run_path)


def wait(run_path: str | Path, timeout: float = 600, poll: float = 0.5) -> dict:
    """Block until the run leaves the live states (or timeout); returns the last status."""
    deadline = time.monotonic() + timeout
    status = read_status(run_path)
    while status.get("state") in LIVE_STATES and time.monotonic() < deadline:
        time.sleep(poll)
        status = read_status(run_path)
    return status


def delete_run(run_path: str | Path) -> None:
    run_path = Path(run_path)
    if read_status(run_path).get("state") in LIVE_STATES:
        raise RunError(f"{run_path.name} is still running; stop it before deleting it")
    if not (run_path / "status.json").is_file():
        raise RunError(f"{run_path} is not a run folder (no status.json); nothing deleted")
    shutil.rmtree(run_path)
