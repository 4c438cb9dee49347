"""Queue: runs waiting for the workspace's one training slot.

`submit()` starts a run at once when nothing trains, else creates its run folder (recipe.yaml,
status `queued` with `waiting: true`) and appends its id to `runs/.queue.json`. The queue lives in
the workspace, so a closed browser or a restarted UI loses nothing. `start_next()` launches the
first waiting run when the slot is free; the worker calls it as it ends, and the UI's poll (and
`studio train` while it follows a queued run) call it too, so a killed worker doesn't stall the
queue. Every change happens under core.train.runs' start lock, so two callers never both start a
run. A studio shared by several visitors has one slot for all of them: each visitor's queue lives
in their own workspace (they see and reorder only their own), and when the slot frees the next
run comes from the visitor whose turn it is: whoever started a run least recently (round robin,
kept in the server's `runs/.turns.json`). This module knows nothing about trainers or the UI.
"""

from __future__ import annotations

from pathlib import Path

from core import recipes
from core.errors import StudioError
from core.hosting import demo_mode, enforce_demo_limits
from core.recipes import Recipe
from core.train import distributed, quotas, runs
from core.train.preflight import preflight
from core.workspace import Workspace, all_workspaces, as_visitor, current_visitor, read_json, server_root, workspace, write_json_atomic

QUEUE_FILE = ".queue.json"
TURNS_FILE = ".turns.json"


class QueueError(StudioError, RuntimeError):
    """A queue operation on a run that isn't waiting in the queue."""


def _path() -> Path:
    return workspace().runs / QUEUE_FILE


def _read_ids() -> list[str]:
    return [str(i) for i in read_json(_path(), kind=list) if isinstance(i, str)]


def _write_ids(ids: list[str]) -> None:
    write_json_atomic(_path(), ids)


def _waiting(run_id: str) -> bool:
    status = runs.read_status(workspace().runs / run_id)
    return status.get("state") == "queued" and bool(status.get("waiting"))


def waiting_runs() -> list[runs.RunInfo]:
    """The queue in order: runs still waiting (cancelled or vanished folders drop out)."""
    return [runs.run_info(workspace().runs / run_id) for run_id in _read_ids() if _waiting(run_id)]


def submit(recipe: Recipe, run_dir: str | Path | None = None, *, accelerate_config: str | Path | None = None,
           sweep: str | None = None, params: dict | None = None) -> tuple[Path, bool]:
    """Start the run now, or queue it behind the live run (and any already waiting).
    Returns (run folder, started). Demo mode keeps its one-run rule: RunBusy instead of a queue."""
    recipe = enforce_demo_limits(recipe)
    if demo_mode():  # a hosted demo runs one process: no accelerate, no user config files
        recipe.training.num_processes, recipe.training.distributed, accelerate_config = 1, "none", None
    preflight(recipe)
    quotas.check_new_run()
    user_config = distributed.read_user_config(accelerate_config) if accelerate_config else None
    with runs.StartLock():
        free = runs.slot_holder() is None and not _anyone_waiting()
        if not free and demo_mode():
            runs.refuse_if_busy()
            raise runs.RunBusy("Runs are waiting in the queue; the demo trains one run at a time.")
        run_dir = runs.create_run(recipe, run_dir, accelerate_config=user_config)
        if sweep:
            runs.update_status(run_dir, sweep=sweep, sweep_params=params or {})
        if free:
            runs.launch(_saved_recipe(run_dir), run_dir)
            _took_turn(current_visitor())
            return run_dir, True
        runs.update_status(run_dir, waiting=True, queued_at=runs.now_iso())
        _write_ids([i for i in _read_ids() if _waiting(i)] + [run_dir.name])
    return run_dir, False


def _anyone_waiting() -> bool:
    for key, _ in all_workspaces():
        with as_visitor(key):
            if waiting_runs():
                return True
    return False


def _turns_path() -> Path:
    return Workspace(server_root()).ensure().runs / TURNS_FILE


def _took_turn(key: str | None) -> None:
    turns = read_json(_turns_path())
    turns[key or ""] = runs.now_iso()
    write_json_atomic(_turns_path(), turns)


def turn_order() -> list[str | None]:
    """Visitors with waiting runs, whose turn first: the one who started a run least recently
    (never counts as longest ago), then whoever has waited longest."""
    turns = read_json(_turns_path())
    waiting = []
    for key, _ in all_workspaces():
        with as_visitor(key):
            queued = waiting_runs()
            if queued:
                first = runs.read_status(queued[0].path).get("queued_at") or ""
                waiting.append((turns.get(key or "", ""), first, key or ""))
    return [key or None for _, _, key in sorted(waiting)]


def places_in_line() -> dict[str, int]:
    """{run id: its place in the whole server's line} for this workspace's waiting runs: 1 starts
    next. Turns go round the visitors in turn_order, each giving their next waiting run."""
    mine, lines = current_visitor(), []
    for key in turn_order():
        with as_visitor(key):
            lines.append((key, [info.run_id for info in waiting_runs()]))
    places, place, depth = {}, 0, 0
    while any(depth < len(ids) for _, ids in lines):
        for key, ids in lines:
            if depth < len(ids):
                place += 1
                if key == mine:
                    places[ids[depth]] = place
        depth += 1
    return places


def start_next() -> Path | None:
    """Launch the next waiting run, in turn across visitors, if the slot is free; the run folder
    started, or None."""
    if not any(read_json(space.runs / QUEUE_FILE, kind=list) for _, space in all_workspaces()):
        return None  # the common case (the UI polls this), without taking the lock
    with runs.StartLock():
        if runs.slot_holder() is not None:
            return None
        for key in turn_order():
            with as_visitor(key):
                started = _start_first_waiting()
            if started is not None:
                _took_turn(key)
                return started
    return None


def _start_first_waiting() -> Path | None:
    """This workspace's first waiting run, launched (call under StartLock)."""
    ids = _read_ids()
    while ids:
        run_id = ids.pop(0)
        _write_ids(ids)
        run_dir = workspace().runs / run_id
        if not _waiting(run_id):
            continue
        (run_dir / runs.STOP_FILE).unlink(missing_ok=True)
        runs.update_status(run_dir, waiting=False, created_at=runs.now_iso())
        try:
            runs.launch(_saved_recipe(run_dir), run_dir)
        except runs.RunError:
            continue  # marked failed with the reason; the next one may still start
        return run_dir
    return None


def _saved_recipe(run_dir: Path) -> Recipe:
    return recipes.load(run_dir / runs.RECIPE_FILE)


def move(run_id: str, where: str) -> list[str]:
    """Reorder: where is up, down, top or bottom. Returns the new order."""
    with runs.StartLock():
        ids = [i for i in _read_ids() if _waiting(i)]
        if run_id not in ids:
            raise QueueError(f"'{run_id}' is not waiting in the queue (it started, ended or was cancelled)")
        index = ids.index(run_id)
        ids.pop(index)
        target = {"up": max(0, index - 1), "down": index + 1, "top": 0, "bottom": len(ids)}.get(where)
        if target is None:
            raise QueueError(f"move '{where}': expected up, down, top or bottom")
        ids.insert(min(target, len(ids)), run_id)
        _write_ids(ids)
    return ids


def cancel(run_id: str) -> None:
    """Take a waiting run out of the queue; its folder stays, marked `cancelled`."""
    with runs.StartLock():
        ids = _read_ids()
        if run_id not in ids or not _waiting(run_id):
            raise QueueError(f"'{run_id}' is not waiting in the queue (it started, ended or was cancelled)")
        _write_ids([i for i in ids if i != run_id])
        runs.update_status(workspace().runs / run_id, state="cancelled", waiting=False, ended_at=runs.now_iso(),
                           error="Cancelled before it started.")
