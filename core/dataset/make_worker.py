"""A Q&A generation in its own process, for the UI: `start()` saves the job beside the output
and starts `python -m core.dataset.make_worker OUT` (no shell, its own session, so a closed tab or
a restarted UI never stops it); `stop()` asks it to stop; `status()` reads the manifest and says
whether the process is still there. The worker runs core.dataset.make_run.run_qa, which writes
everything to disk as it goes. This module knows nothing about widgets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from core.dataset.make_backends import backend_from_spec
from core.dataset.make_docs import DocumentError
from core.dataset.make_qa import MakeError, QASettings
from core.dataset.make_run import read_manifest, request_stop, run_qa, sidecar
from core.workspace import PROJECT_ROOT, VISITOR_ENV, current_visitor, write_json_atomic

_CHILDREN: dict[str, subprocess.Popen] = {}  # output path -> the worker this process started


def start(documents: str | Path, out: str | Path, settings: QASettings, backend: dict, *, resume: bool,
          owner_pid: int | None = None, budget_s: float | None = None) -> int:
    """Start (or resume) a generation in the background; returns the worker's pid. With
    `owner_pid` the worker stops when that process (the server that started it) is gone; with
    `budget_s` it stops after that many seconds. Either way it stops as Stop does: every kept
    pair stays, and Resume goes on."""
    out = Path(out)
    settings.check()
    if is_running(out):
        raise MakeError(f"{out.name} is being made already; stop it first")
    if out.exists() and not resume:
        raise MakeError(f"{out.name} exists: press Resume to continue it, or pick another name")
    if resume and read_manifest(out) is None:
        raise MakeError(f"{out.name} has nothing to resume yet: press Start")
    folder = sidecar(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "job.json", {"documents": str(documents), "settings": asdict(settings), "backend": backend,
                                            "limits": {"owner_pid": owner_pid, "budget_s": budget_s}})
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop(VISITOR_ENV, None)
    if current_visitor():  # the worker works in the visitor's own workspace
        env[VISITOR_ENV] = current_visitor()
    with open(folder / "worker.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "core.dataset.make_worker", str(out)], cwd=PROJECT_ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    _CHILDREN[str(out)] = process
    return process.pid


def is_running(out: str | Path) -> bool:
    child = _CHILDREN.get(str(out))
    manifest = read_manifest(out)
    if child is not None:
        if child.poll() is None and manifest and manifest.get("state") in ("stopped", "completed", "failed"):
            try:  # the manifest is final: the worker is only closing its files
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return child.poll() is None
    return bool(manifest and manifest.get("state") == "running" and _alive(manifest.get("pid")))


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def stop(out: str | Path) -> None:
    """Stop after the current pair; a worker this process started is also told at once (SIGTERM),
    so a long reply is not waited for. Every kept row is already on disk."""
    request_stop(out)
    child = _CHILDREN.get(str(out))
    if child is not None and child.poll() is None:
        child.send_signal(signal.SIGTERM)


def status(out: str | Path) -> dict | None:
    """The manifest, with `state` corrected to 'interrupted' when its worker is gone."""
    manifest = read_manifest(out)
    if manifest is None:
        child = _CHILDREN.get(str(out))
        if child is not None and child.poll() is not None:
            return {"state": "failed", "error": _log_tail(out) or "the worker exited before it started"}
        return None
    if manifest.get("state") == "running" and not is_running(out):
        manifest["state"] = "interrupted"
    if manifest.get("state") == "failed" and not manifest.get("error"):
        manifest["error"] = _log_tail(out)
    return manifest


def _log_tail(out: str | Path, lines: int = 6) -> str:
    log = sidecar(Path(out)) / "worker.log"
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:])[0])
    job = json.loads((sidecar(out) / "job.json").read_text(encoding="utf-8"))
    signal.signal(signal.SIGTERM, _interrupt)
    _watch(**(job.get("limits") or {}))
    try:
        manifest = run_qa(job["documents"], out, QASettings(**job["settings"]), backend_from_spec(job["backend"]))
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return 130
    except (MakeError, DocumentError, ValueError) as error:
        print(f"error: {error}", flush=True)
        folder = sidecar(out)
        manifest = read_manifest(out) or {"out": str(out), "total": 0, "done": 0, "kept": 0}
        write_json_atomic(folder / "manifest.json", {**manifest, "state": "failed", "error": str(error)})
        return 2
    print(f"{manifest['state']}: {manifest['kept']} kept", flush=True)
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt


def _watch(owner_pid: int | None = None, budget_s: float | None = None, every_s: float = 1.0) -> None:
    """Stop this worker (SIGTERM to itself: the pair in progress is dropped, the manifest says
    'stopped') once its owner process has gone or its time budget is spent. A thread, so a reply
    that takes minutes does not hold it up."""
    if not owner_pid and not budget_s:
        return
    deadline = time.monotonic() + float(budget_s) if budget_s else None

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if (owner_pid and not _alive(owner_pid)) or (deadline and time.monotonic() > deadline):
                why = "its time budget is spent" if owner_pid is None or _alive(owner_pid) else "the server that started it is gone"
                print(f"stopping: {why}", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="make-limits", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
