"""Webhook: when a run ends, POST a small JSON body (run id, state, step, final and best eval
loss) to the URL in the workspace's settings.json (or STUDIO_WEBHOOK_URL).

The body never carries a token, a path or the recipe, and the URL itself is never printed past
its host (webhook URLs often embed a token). Delivery is best effort with a short timeout: the run
is already over. The worker calls `notify_webhook` as it ends. Knows nothing about the UI.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from core.recipes import RecipeError
from core.train import runs
from core.workspace import read_json, workspace, write_json_atomic

SETTINGS_FILE = "settings.json"



def _settings_path() -> Path:
    return workspace().root / SETTINGS_FILE


def read_settings() -> dict:
    return read_json(_settings_path())


def check_webhook_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        return ""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise RecipeError(f"webhook URL must start with http:// or https:// and name a host, got '{_shown(url)}'")
    return url


def save_webhook_url(url: str) -> str:
    """Store (or clear, with '') the completion webhook URL in the workspace's settings.json."""
    url = check_webhook_url(url)
    settings = read_settings()
    settings["webhook_url"] = url
    write_json_atomic(_settings_path(), settings)
    return url


def webhook_url() -> str:
    return os.environ.get("STUDIO_WEBHOOK_URL") or read_settings().get("webhook_url") or ""


def _shown(url: str) -> str:
    """The URL without its path and query (webhook URLs often carry a token there)."""
    parsed = urllib.parse.urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname or ''}/…" if parsed.scheme else "…"


def webhook_body(run_dir: Path) -> dict:
    info = runs.run_info(run_dir)
    return {"event": "run.finished", "run_id": info.run_id, "state": info.state, "step": info.step,
            "total_steps": info.total_steps, "final_loss": info.final_loss, "best_eval_loss": info.best_eval_loss,
            "ended_at": info.ended_at, "sweep": info.sweep}


CLAIM_FILE = ".webhook-sent"  # created once per run by whoever notifies: the worker or a UI poll


def _claim(run_dir: Path) -> bool:
    """Exactly one notifier per run, even when the worker and a poll race."""
    try:
        os.close(os.open(Path(run_dir) / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def notify_orphans() -> int:
    """Notify for runs that ended without their worker doing it (killed, out of memory): runs whose
    worker promised a notification (`notify_pending`) and are over. Returns how many were sent."""
    sent = 0
    for info in runs.list_runs():
        if info.state in runs.LIVE_STATES or not runs.read_status(info.path).get("notify_pending"):
            continue
        sent += notify_webhook(info.path)
    return sent


def notify_webhook(run_dir: Path, timeout: float = 5.0) -> bool:
    """POST the run's outcome to the webhook, if one is set and nobody has for this run. Returns
    whether it was delivered; a failure is printed (host only) and never raised: the run is over."""
    url = webhook_url()
    if not url or not _claim(run_dir):
        return False
    request = urllib.request.Request(url, data=json.dumps(webhook_body(run_dir)).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "tuning-studio"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"[studio] webhook {_shown(url)} not reached: {getattr(error, 'reason', error)}", flush=True)
        return False
    print(f"[studio] webhook {_shown(url)} {'notified' if ok else 'refused the notification'}", flush=True)
    return ok
