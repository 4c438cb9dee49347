"""Visits to a shared studio: the processes a visitor's work started, and the end of an
anonymous visit (a hosted demo's visitor who never signed in keeps a workspace only for their
session). Every process a visitor starts (training worker, evaluation, make worker) carries
their key in STUDIO_VISITOR (core.workspace), so it is found here however it was started.
Knows nothing about gradio: the UI calls `end_visit` when a session ends, and
`sweep_anonymous` when the server starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import psutil

from core.workspace import VISITOR_ENV, VISITORS, server_root, visitor_root

ANONYMOUS = "anon-"  # the key of a visitor known only by their page session (core.workspace.visitor_key("anon:..."))


def visitor_processes(key: str) -> list[psutil.Process]:
    """Live processes (not this one) working for visitor `key`."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(VISITOR_ENV) == key and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def stop_processes(key: str, grace_s: float = 5.0) -> int:
    """End every process working for `key`: asked first (SIGTERM), then made to (SIGKILL).
    Returns how many there were."""
    found = visitor_processes(key)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for process in found:
            try:
                process.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(_alive(p) for p in found):
            time.sleep(0.1)
        found = [p for p in found if _alive(p)]
        if not found:
            break
    return len(found)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def end_visit(key: str) -> bool:
    """An anonymous visitor left: stop what their visit started and remove their workspace.
    A signed-in visitor's workspace stays (they come back to it). Returns whether it was removed."""
    if not key.startswith(ANONYMOUS):
        return False
    stop_processes(key)
    root = visitor_root(key)
    if root.is_dir():
        shutil.rmtree(root, ignore_errors=True)
    return not root.exists()


def sweep_anonymous() -> list[str]:
    """At start: every anonymous workspace belongs to a session of an earlier server, which can't
    come back; remove them (and anything of theirs still running). Returns the keys removed."""
    folder = server_root() / VISITORS
    keys = sorted(p.name for p in folder.iterdir() if p.name.startswith(ANONYMOUS)) if folder.is_dir() else []
    return [key for key in keys if end_visit(key)]
