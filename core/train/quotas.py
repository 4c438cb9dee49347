"""Quotas for a visitor of a shared studio: how much of the machine one person's workspace may
hold. The operator sets them (0: no limit); a shared studio (core.hosting.shared_workspaces)
without settings gets the Space defaults below, and one person's studio has none. A start that
would go over one is refused before anything is written, with what to delete to make room.

    STUDIO_QUOTA_RUNS     run folders kept in a visitor's workspace      (default 10)
    STUDIO_QUOTA_QUEUED   runs of one visitor waiting in the queue       (default 3)
    STUDIO_QUOTA_DISK_GB  size of a visitor's workspace, in GB           (default 5; models are shared, not counted)
    STUDIO_QUOTA_PAIRS    pairs in one made dataset                      (default 500)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput
from core.hosting import shared_workspaces
from core.train import runs
from core.workspace import current_visitor, workspace

DEFAULTS = {"runs": 10, "queued": 3, "disk_gb": 5.0, "pairs": 500}
ENV = {"runs": "STUDIO_QUOTA_RUNS", "queued": "STUDIO_QUOTA_QUEUED", "disk_gb": "STUDIO_QUOTA_DISK_GB", "pairs": "STUDIO_QUOTA_PAIRS"}


class OverQuota(BadInput):
    """A visitor's start that would go over a quota the operator set."""


@dataclass(frozen=True)
class Quotas:
    runs: int = 0
    queued: int = 0
    disk_gb: float = 0.0
    pairs: int = 0


def quotas() -> Quotas:
    """The limits for whoever is being served: none on one person's studio or for the server's
    own workspace; a visitor's otherwise (a setting of 0 turns one off)."""
    if not shared_workspaces() or not current_visitor():
        return Quotas()
    values = {}
    for name, default in DEFAULTS.items():
        raw = os.environ.get(ENV[name], "").strip()
        try:
            values[name] = type(default)(raw) if raw else default
        except ValueError:
            raise OverQuota(f"{ENV[name]}={raw!r} is not a number; the operator must fix it") from None
    return Quotas(**values)


def workspace_bytes() -> int:
    """What the visitor's workspace holds on disk (the shared models are a link, not counted)."""
    total = 0
    for path in workspace().root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def check_new_run() -> None:
    """Before a run folder is made (a start or a queued run): kept runs, queued runs, disk."""
    limits = quotas()
    kept = runs.list_runs() if limits.runs or limits.queued else []
    if limits.runs and len(kept) >= limits.runs:
        oldest = ", ".join(f"`{info.run_id}`" for info in sorted(kept, key=lambda i: i.started_at or "")[:3])
        raise OverQuota(f"Your workspace keeps {len(kept)} runs, the most this studio keeps for one person. Delete one "
                        f"in the Train tab's Run history (oldest first: {oldest}), then start again.")
    waiting = [info for info in kept if info.waiting]
    if limits.queued and len(waiting) >= limits.queued:
        raise OverQuota(f"You have {len(waiting)} runs waiting in the queue, the most this studio allows one person. "
                        "Cancel one in Queue and sweeps, or wait for one to start.")
    _check_disk(limits)


def check_made_dataset(pairs: int) -> None:
    """Before a dataset is made: its size, and the workspace's disk."""
    limits = quotas()
    if limits.pairs and pairs > limits.pairs:
        raise OverQuota(f"{pairs} pairs is more than this studio makes for one person ({limits.pairs}); ask for fewer.")
    _check_disk(limits)


def _check_disk(limits: Quotas) -> None:
    if not limits.disk_gb:
        return
    used = workspace_bytes() / 1e9
    if used >= limits.disk_gb:
        biggest = sorted(((_size(p), p.name) for p in workspace().runs.iterdir() if p.is_dir()), reverse=True)[:3]
        names = ", ".join(f"`{name}` ({size / 1e9:.1f} GB)" for size, name in biggest) or "exports in the Export tab"
        raise OverQuota(f"Your workspace holds {used:.1f} GB, the most this studio keeps for one person "
                        f"({limits.disk_gb:g} GB). Delete runs (largest: {names}) or exports, then try again.")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
