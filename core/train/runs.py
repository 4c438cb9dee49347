"""Runs: start, resume, stop, list and delete runs; the worker process behind each.

A run is `runs/<id>/` (recipe.yaml, status.json, metrics.jsonl, train.log, checkpoints/,
adapter/ or model/, best/) written by a separate OS process (`python -m core.train.worker RUN_DIR`,
or `accelerate launch` for several processes, see core.train.distributed), started with a list of arguments and no shell, in
its own session so a closed browser or a restarted UI never stops it. Everything here reads
or writes files; the status a reader sees is checked against the worker's pid, so a worker
that died (killed, out of memory) shows as `failed` with the last lines of its log. One
training run at a time per workspace. The folder's layout belongs to core.train.run_dir; this module knows nothing about trainers or the UI.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core import recipes
from core.errors import StudioError
from core.hosting import enforce_demo_limits
from core.recipes import Recipe
from core.train import distributed, trackers
from core.train.preflight import preflight
from core.train.run_dir import (  # noqa: F401  (the reading half of the contract, re-exported for callers)
    LIVE_STATES,
    LOG_FILE,
    RECIPE_FILE,
    STATUS_FILE,
    STOP_FILE,
    UnknownRun,
    in_runs_folder,
    is_run_dir,
    latest_checkpoint,
    model_artifacts,
    now_iso,
    parse_time,
    read_metrics,
    read_recipe,
    read_status,
    register_child,
    tail_log,
    update_status,
)
from core.workspace import (
    PROJECT_ROOT,
    VISITOR_ENV,
    Workspace,
    all_workspaces,
    as_visitor,
    current_visitor,
    owner_of,
    read_json,
    server_root,
    workspace,
    write_atomic,
    write_json_atomic,
)


class RunBusy(StudioError, RuntimeError):
    """A second start while a run is going."""


class RunError(StudioError, RuntimeError):
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
    waiting: bool = False  # queued behind another run (core.train.queue), no worker yet
    sweep: str | None = None
    where: str = "here"  # "here", or "hf-jobs:FLAVOR" for a run trained on Hugging Face Jobs
    precision: str | None = None  # the training precision's reason, as the worker recorded it
    eta_s: float | None = None  # while it trains: the time left at the measured pace
    forecast_s: float | None = None  # what the forecast before Start said the run would take (FORECAST_FILE)

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        end = parse_time(self.ended_at) if self.ended_at else time.time()
        return max(0.0, end - parse_time(self.started_at))


def run_info(run_path: str | Path) -> RunInfo:
    run_path = Path(run_path)
    status = read_status(run_path)
    metrics = read_metrics(run_path)
    train_losses = [m["loss"] for m in metrics if m.get("split") == "train" and m.get("loss") is not None]
    paced = [m for m in metrics if m.get("split") == "train" and m.get("eta") is not None]
    forecast = read_json(run_path / FORECAST_FILE) or {}
    eval_losses = [m["loss"] for m in metrics if m.get("split") == "eval" and m.get("loss") is not None]
    return RunInfo(
        run_id=run_path.name, path=run_path, state=status.get("state", "unknown"), recipe=read_recipe(run_path),
        started_at=status.get("started_at"), ended_at=status.get("ended_at"), step=status.get("step", 0) or 0,
        total_steps=status.get("total_steps"), final_loss=train_losses[-1] if train_losses else None,
        best_eval_loss=min(eval_losses) if eval_losses else None, error=status.get("error"),
        waiting=bool(status.get("waiting")) and status.get("state") == "queued", sweep=status.get("sweep"),
        where=_where(status), precision=(status.get("precision") or {}).get("why") if isinstance(status.get("precision"), dict) else None,
        eta_s=paced[-1]["eta"] if paced and status.get("state") == "running" else None, forecast_s=forecast.get("seconds"),
    )


FORECAST_FILE = "forecast.json"  # the forecast made before Start (core.train.forecast), kept beside the run


def save_forecast(run_path: str | Path, forecast: dict) -> None:
    write_json_atomic(Path(run_path) / FORECAST_FILE, forecast)


def _where(status: dict) -> str:
    job = status.get("hf_job")
    return f"hf-jobs:{job.get('flavor') or '?'}" if isinstance(job, dict) else "here"


def run_folders() -> list[Path]:
    """Every run folder in the workspace, by name; nothing inside them is read. A link in runs/
    that leads out of it is no run."""
    root = workspace().runs
    return sorted(p for p in root.iterdir() if p.is_dir() and is_run_dir(p) and in_runs_folder(p)) if root.is_dir() else []


def list_runs() -> list[RunInfo]:
    """Every run in the workspace, newest first (reads each run's metrics: not for a 2-second poll)."""
    infos = [run_info(p) for p in run_folders()]
    return sorted(infos, key=lambda info: (info.started_at or "", info.run_id), reverse=True)


def every_visitors_runs() -> list[tuple[str | None, RunInfo]]:
    """(visitor key or None, run) for the runs of every workspace on this server, newest first:
    the operator's view (`studio runs --all`, STUDIO_ADMINS in the UI), read only."""
    found = []
    for key, _ in all_workspaces():
        with as_visitor(key):
            found += [(key, info) for info in list_runs()]
    return sorted(found, key=lambda pair: (pair[1].started_at or "", pair[1].run_id), reverse=True)


def _newest(live_only: bool) -> Path | None:
    """The newest run (or newest live one holding this machine's slot), judged from status files
    alone. A run training on Hugging Face Jobs (core.train.hf_jobs) holds no slot here."""
    found = [((status.get("started_at") or "", path.name), path) for path in run_folders()
             for status in [read_status(path)]
             if not live_only or (status.get("state") in LIVE_STATES and not status.get("waiting") and not status.get("hf_job"))]
    return max(found)[1] if found else None


def active_run() -> RunInfo | None:
    """This workspace's run whose worker holds the training slot (runs waiting in the queue don't)."""
    live = _newest(live_only=True)
    return run_info(live) if live else None


def slot_holder() -> tuple[str | None, RunInfo] | None:
    """(visitor key, run) of the run holding this machine's one training slot, in whichever
    workspace it lives: visitors of a shared studio share the slot."""
    for key, _ in all_workspaces():
        with as_visitor(key):
            live = _newest(live_only=True)
            if live:
                return key, run_info(live)
    return None


def newest_run() -> Path | None:
    return _newest(live_only=False)


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


def create_run(recipe: Recipe, run_dir: str | Path | None = None, *, accelerate_config: dict | None = None) -> Path:
    """The run folder with the resolved recipe and a queued status; nothing starts yet. A
    several-process recipe (or a user's accelerate config) also gets its accelerate config file."""
    if accelerate_config is not None:
        recipe = distributed.adopt_user_config(recipe, accelerate_config)
    run_dir = _in_workspace_runs(Path(run_dir)) if run_dir else new_run_dir(recipe)
    if is_run_dir(run_dir):
        raise RunError(f"{run_dir} already holds a run; pick another --run-dir or resume that run")
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = _with_absolute_dataset(recipe)
    write_atomic(run_dir / RECIPE_FILE, recipe.to_yaml())
    if accelerate_config is not None or distributed.uses_accelerate(recipe):
        distributed.write_config(run_dir, accelerate_config or distributed.config_for(recipe))
    write_json_atomic(run_dir / STATUS_FILE, {"state": "queued", "pid": None, "step": 0, "total_steps": None,
                                                "created_at": now_iso(), "started_at": None, "ended_at": None,
                                                "error": None})
    return run_dir


def _in_workspace_runs(run_dir: Path) -> Path:
    """A run folder must sit directly in the workspace's runs/: elsewhere `studio runs`, the UI and the
    one-run-at-a-time lock would not see it."""
    run_dir = run_dir.expanduser().absolute()
    if not in_runs_folder(run_dir):
        raise RunError(f"--run-dir {run_dir}: a run folder must be directly inside the workspace's runs folder "
                       f"({workspace().runs}), where `studio runs` and the one-run-at-a-time lock see it; "
                       f"use --run-dir {workspace().runs / run_dir.name} or set STUDIO_HOME")
    return run_dir


def _with_absolute_dataset(recipe: Recipe) -> Recipe:
    """The run's recipe.yaml must load from inside the run folder, so its dataset path is absolute."""
    import copy

    resolved = copy.deepcopy(recipe)
    resolved.data.path = str(recipe.dataset_path())
    return resolved


def worker_command(run_dir: Path, resume: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "core.train.worker", str(run_dir)]
    return command + (["--resume", resume] if resume else [])


def accelerate_command(recipe: Recipe, run_dir: str | Path, resume: str | None = None) -> list[str]:
    """`accelerate launch --config_file RUN/accelerate_config.yaml -m core.train.worker RUN` (DDP,
    FSDP or DeepSpeed ZeRO from the config file core.train.distributed writes into the run folder)."""
    command = distributed.launch_argv(run_dir, Path(run_dir) / distributed.CONFIG_FILE)
    return command + (["--resume", resume] if resume else [])


def uses_accelerate(recipe: Recipe) -> bool:
    return distributed.uses_accelerate(recipe)


def launch_command(recipe: Recipe, run_dir: Path, resume: str | None = None) -> list[str]:
    """The run folder decides: an accelerate config in it means `accelerate launch`."""
    if distributed.config_path(run_dir) is not None:
        return accelerate_command(recipe, run_dir, resume)
    return worker_command(run_dir, resume)


def spawn(command: list[str], run_dir: Path, extra_env: dict[str, str] | None = None) -> int:
    """Start a run's process (a worker, or a Jobs follower) in its own session, its output into the
    run's train.log; its pid and start time go into status.json. Returns the pid."""
    import psutil

    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **(extra_env or {}))
    env = distributed.clean_env(trackers.clean_env(env))  # nothing of a previous run's worker leaks into this one
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop(VISITOR_ENV, None)
    if owner_of(run_dir):  # the worker works in the workspace its run lives in
        env[VISITOR_ENV] = owner_of(run_dir)
    with open(run_dir / LOG_FILE, "ab") as log:
        # Own session: Ctrl-C in the UI's terminal or a UI restart doesn't reach the worker.
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    register_child(process)
    try:
        started = psutil.Process(process.pid).create_time()
    except psutil.Error:
        started = None
    update_status(run_dir, pid=process.pid, pid_started=started)
    return process.pid


class StartLock:
    """Two starts at the same moment must not both see 'nothing running'."""

    def __enter__(self):
        self.handle = open(Workspace(server_root()).ensure().runs / ".start.lock", "w")  # one slot for all visitors
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def refuse_if_busy() -> None:
    held = slot_holder()
    if held is None:
        return
    owner, busy = held
    if owner != current_visitor():  # another visitor's run: say so, never its name
        raise RunBusy(f"Another person's run is training on this machine (step {busy.step}/{busy.total_steps or '?'}); "
                      "this studio trains one run at a time. Queue yours and it starts in its turn.")
    raise RunBusy(f"Run '{busy.run_id}' is {busy.state} (step {busy.step}/{busy.total_steps or '?'}); this studio "
                  "trains one run at a time. Stop it or wait for it to finish, then start again.")


def start(recipe: Recipe, run_dir: str | Path | None = None, *, accelerate_config: str | Path | None = None) -> Path:
    """Check, create the run folder and start its worker. Raises RunBusy, QLoRANeedsCUDA,
    RecipeError or ModelNotFound before anything is written when the run can't go.
    `accelerate_config`: a user's accelerate config file to launch with (copied into the run)."""
    run_dir = _in_workspace_runs(Path(run_dir)) if run_dir else None
    recipe = enforce_demo_limits(recipe)
    preflight(recipe)
    user_config = distributed.read_user_config(accelerate_config) if accelerate_config else None
    with StartLock():
        refuse_if_busy()
        run_dir = create_run(recipe, run_dir, accelerate_config=user_config)
        launch(recipe, run_dir, None)
    return run_dir


def launch(recipe: Recipe, run_dir: Path, resume: str | None = None) -> None:
    """Start the worker of a created run folder (call under StartLock)."""
    try:
        spawn(launch_command(recipe, run_dir, resume), run_dir)
    except OSError as error:
        update_status(run_dir, state="failed", ended_at=now_iso(), error=f"could not start the worker: {error}")
        raise RunError(f"could not start the training process: {error}") from error


def resume(run_path: str | Path, checkpoint: str = "last") -> Path:
    """Continue a stopped or failed run from its last (or a named) checkpoint."""
    run_path = _in_workspace_runs(Path(run_path))
    status = read_status(run_path)
    if status.get("state") in LIVE_STATES:
        raise RunError(f"{run_path.name} is {status['state']}; only a stopped, failed or finished run can resume")
    if status.get("hf_job"):
        raise RunError(f"{run_path.name} trained on Hugging Face Jobs, whose checkpoints stay in the job; start it again instead")
    if checkpoint == "last" and latest_checkpoint(run_path) is None:
        raise RunError(f"{run_path.name} has no checkpoint to resume from; start it again instead")
    recipe = recipes.load(run_path / RECIPE_FILE)
    with StartLock():
        refuse_if_busy()
        (run_path / STOP_FILE).unlink(missing_ok=True)
        update_status(run_path, state="queued", pid=None, ended_at=None, error=None, created_at=now_iso())
        launch(recipe, run_path, checkpoint)
    return run_path


def stop(run_path: str | Path) -> dict:
    """Ask the worker to save a checkpoint at the end of this step and stop."""
    run_path = Path(run_path)
    status = read_status(run_path)
    if status.get("state") not in LIVE_STATES or status.get("waiting"):
        return status  # a run waiting in the queue has no worker to stop: cancel it there
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
    """Delete a finished run folder; only ever a folder directly inside the workspace's runs/."""
    run_path = Path(run_path)
    if not in_runs_folder(run_path) or run_path.is_symlink():
        raise RunError(f"{run_path} is not a run folder of this workspace ({workspace().runs}); nothing deleted")
    if read_status(run_path).get("state") in LIVE_STATES:
        raise RunError(f"{run_path.name} is still running; stop it before deleting it")
    if not is_run_dir(run_path):
        raise RunError(f"{run_path} is not a run folder (no status.json); nothing deleted")
    shutil.rmtree(run_path)
