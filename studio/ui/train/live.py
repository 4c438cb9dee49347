"""The Train tab's live view: one timer tick reads the open run (named by id) and draws its
progress, charts, log tail and the GRPO panel; the run history table redraws when runs come or go.
Knows nothing about the recipe form or starting runs (studio.ui.train.tab)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

from core.train import run_dir, runs
from core.workspace import current_visitor
from studio.ui import sessions
from studio.ui.chat import eval_view
from studio.ui.language import say, translate
from studio.ui.train import charts as train_charts
from studio.ui.train import grpo as train_grpo

LIVE = runs.LIVE_STATES


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m {seconds % 60:02d}s"


def history_rows(infos: list[runs.RunInfo]) -> list[list]:
    rows = []
    for info in infos:
        training = info.recipe.get("training", {})
        rows.append([info.run_id, translate(info.state), f"{training.get('method', '?')}/{training.get('tuning', '?')}",
                     info.recipe.get("model", {}).get("name", "?"), info.where, f"{info.step}/{info.total_steps or '?'}",
                     _round(info.final_loss), _round(info.best_eval_loss), _duration(info.duration_s),
                     (info.started_at or "")[:19].replace("T", " ")])
    return rows


def _round(value):
    return round(value, 4) if isinstance(value, (int, float)) else ""


NO_RUNS = "<div class='train-progress'>No runs yet: load a recipe and press <b>Start</b>.</div>"


def progress_html(status: dict, metrics: list[dict], run_id: str) -> str:
    if not run_id:
        return say(NO_RUNS)
    step, total = status.get("step") or 0, status.get("total_steps") or 0
    share = min(100, round(100 * step / total)) if total else 0
    last = next((m for m in reversed(metrics) if m.get("split") == "train"), {})
    bits = [f"<b>{_escape(run_id)}</b> · {translate(str(status.get('state', '?')))}",
            say("step {step}/{total}", step=step, total=total or "?")]
    if status.get("hf_job"):  # trains on Hugging Face Jobs: queued means waiting for the Hub's hardware
        job = status["hf_job"]
        link = f"<a href='{html.escape(job.get('url') or '', quote=True)}' target='_blank'>{_escape(job.get('job_id'))}</a>"
        bits.insert(1, say("on Hugging Face Jobs ({flavor}, job {link})", flavor=_escape(job.get("flavor")), link=link))
    if status.get("epoch") is not None:
        bits.append(say("epoch {epoch}", epoch=f"{status['epoch']:.2f}"))
    if status.get("state") in LIVE and last.get("eta") is not None:
        bits.append(say("ETA {left}", left=_duration(last["eta"])))
    if last.get("tokens_per_s"):
        bits.append(f"{last['tokens_per_s']:.0f} tokens/s")
    if last.get("peak_mem_mb"):
        bits.append(say("peak memory {gb} GB", gb=f"{last['peak_mem_mb'] / 1024:.2f}"))
    bar = (f"<div style='background:#e5e7eb;border-radius:6px;height:12px;margin-top:6px'>"
           f"<div style='background:#2563eb;width:{share}%;height:12px;border-radius:6px'></div></div>")
    error = f"<pre style='white-space:pre-wrap;color:#b91c1c'>{_escape(status['error'])}</pre>" if status.get("error") else ""
    return f"<div class='train-progress'>{' · '.join(bits)}{bar}{error}</div>"


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pick_run(run_id: str, names: list[str]) -> str:
    """Keep the open run (by id); else re-attach to the live run, or show the newest."""
    if run_id in names:
        return run_id
    chosen = runs.active_run()
    if chosen is not None:
        return chosen.run_id
    newest = runs.newest_run()
    return newest.name if newest else ""


class Tick(NamedTuple):
    """One timer tick's updates, by name (gradio takes it as the tuple of `Tick._fields`)."""

    run: str
    progress: str
    loss: Any
    lr: Any
    grad: Any
    rewards: Any
    grpo_panel: Any  # the GRPO panel (shown for GRPO runs) and its charts and sample table
    grpo_rewards: Any
    grpo_kl: Any
    grpo_length: Any
    grpo_clip: Any
    grpo_samples: Any
    log: str
    history: Any
    overlays: Any
    checkpoints: Any
    seen: dict


def refresh(run_id: str, log_scale: bool, smoothing: float, overlays: list[str] | None, seen: dict | None) -> Tick:
    """One timer tick, reading only the open run: progress, charts (redrawn only when something
    changed), log tail. Other runs are only listed by folder name; the history table is drawn when
    runs come or go, and otherwise by `refresh_history` on its slower timer or on demand. The
    browser names runs by id only: the open run and the overlays are ids among the listed folders."""
    folders = {path.name: path for path in runs.run_folders()}
    names = sorted(folders)
    run_id = _pick_run(run_id, names)
    folder = folders.get(run_id)
    status = runs.read_status(folder) if folder else {}
    metrics = runs.read_metrics(folder) if folder else []
    others = [n for n in names if n != run_id]
    overlays = [name for name in overlays or [] if name in others]
    checkpoints = _resume_choices(folder)
    signature = [run_id, len(metrics), bool(log_scale), smoothing, sorted(overlays), status.get("state"),
                 (status.get("evaluation") or {}).get("state")]
    seen = seen or {}
    charts = [gr.update()] * 10  # 4 common charts + the GRPO panel (train_grpo.grpo_updates)
    if seen.get("signature") != signature:
        charts = (_charts(metrics, log_scale, smoothing, {name: folders[name] for name in overlays}, folder)
                  + train_grpo.grpo_updates(metrics, str(folder or "")))
    overlay_update = gr.update(choices=others) if seen.get("others") != others else gr.update()
    ckpt_update = gr.update(choices=checkpoints) if seen.get("checkpoints") != checkpoints else gr.update()
    log = runs.tail_log(folder, 7) if folder else ""
    history = refresh_history() if seen.get("names") != names else gr.update()
    new_seen = {"signature": signature, "others": others, "checkpoints": checkpoints, "names": names}
    return Tick(run_id, progress_html(status, metrics, run_id), *charts, log, history, overlay_update, ckpt_update,
                new_seen)


def refresh_history() -> list[list]:
    """The run history table (every run's status and metrics are read: every few seconds at most).
    Someone the operator names in STUDIO_ADMINS also sees every other visitor's runs, as
    `owner / run` (read only: such a row opens nothing)."""
    rows = history_rows(runs.list_runs())
    if sessions.is_admin():
        mine = current_visitor()
        others = [(key, info) for key, info in runs.every_visitors_runs() if key != mine]
        for (key, _), row in zip(others, history_rows([info for _, info in others])):
            rows.append([f"{owner_name(key)} / {row[0]}", *row[1:]])
    return rows


def owner_name(key: str | None) -> str:
    """A visitor key as a person reads it: 'user-ana-1f…' -> 'user-ana'; None -> 'server'."""
    return key.rsplit("-", 1)[0] if key else "server"


def open_run_verdict(run_id: str) -> str:
    """The evaluation verdict of the open run (named by id), up front; nothing when there is none."""
    try:
        folder = run_dir.run_path(run_id)
    except run_dir.UnknownRun:
        return ""
    return eval_view.run_verdict(str(folder))


def _resume_choices(folder: Path | None) -> list[str]:
    if not folder:
        return ["last"]
    return ["last"] + [label for label, _ in runs.model_artifacts(folder) if label.startswith("checkpoint-")]


def _charts(metrics, log_scale, smoothing, overlays: dict[str, Path], folder: Path | None = None):
    others = {name: runs.read_metrics(folder) for name, folder in overlays.items()}
    from core.eval.report import forgetting_curve, read_report  # the evaluation room, when a chart is drawn

    forgetting = forgetting_curve(read_report(folder / run_dir.EVAL_DIR)) if folder else []
    pairs = any("rewards/margins" in m for m in metrics)
    return [
        train_charts.loss_figure(metrics, smoothing=smoothing, log_scale=log_scale, overlays=others, forgetting=forgetting),
        train_charts.line_figure(metrics, "lr", "Learning rate", log_scale=log_scale),
        train_charts.line_figure(metrics, "grad_norm", "Gradient norm", log_scale=log_scale, colour="#9467bd"),
        gr.update(value=train_charts.rewards_figure(metrics, smoothing=smoothing), visible=pairs),
    ]
