"""Train tab, "Queue and sweeps" panel: the runs waiting for the training slot (move, cancel),
a sweep form (learning rates x LoRA ranks x epochs over the recipe in the editor), the sweep
comparison table (losses beside each run's evaluation on the recipe's prompt set) with every
run's loss curves overlaid, the completion webhook, and the open run's accelerate config.

Everything is read from the workspace on each poll (core.train.queue / core.train.sweeps), so a
restarted UI shows the same queue; the poll also hands the slot to the next queued run when a
worker died without doing it. Run and sweep ids from the browser are only looked up in the queue
and sweep records, never joined into paths unchecked.
"""

from __future__ import annotations

import gradio as gr

from core import recipes
from core.hosting import demo_mode, shared_workspaces
from core.train import distributed, queue, run_dir, runs, sweeps, webhook
from core.workspace import workspace
from studio.ui import visitor
from studio.ui.language import our_words, t
from studio.ui.train import charts as train_charts
from studio.ui.train import form as train_form

QUEUE_HEADERS = ["#", "run", "sweep", "values", "queued at"]
GRID_FIELDS = {"training.learning_rate": "Learning rates", "lora.r": "LoRA ranks", "training.epochs": "Epochs"}


# ---------------------------------------------------------------- the queue


def queue_rows() -> list[list]:
    """The visitor's own waiting runs; `#` is each one's place in the whole server's line (on a
    shared studio other people's runs take turns with these)."""
    rows = []
    places = queue.places_in_line() if shared_workspaces() else {}
    for n, info in enumerate(queue.waiting_runs(), start=1):
        n = places.get(info.run_id, n)
        status = runs.read_status(info.path)
        values = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in (status.get("sweep_params") or {}).items())
        rows.append([n, info.run_id, info.sweep or "", values, (status.get("queued_at") or "")[:19].replace("T", " ")])
    return rows


def poll_queue(seen: dict | None):
    """One tick: start the next run if the slot is free, then the table and the pickers."""
    started = queue.start_next()
    webhook.notify_orphans()  # runs whose worker died before it could send the webhook
    rows = queue_rows()
    waiting = [row[1] for row in rows]
    sweep_ids = [record["sweep_id"] for record in sweeps.list_sweeps()]
    seen = seen or {}
    run_pick = gr.update(choices=waiting) if seen.get("waiting") != waiting else gr.update()
    sweep_pick = gr.update(choices=sweep_ids) if seen.get("sweeps") != sweep_ids else gr.update()
    note = f"Started `{started.name}` from the queue." if started else gr.update()
    return rows, run_pick, sweep_pick, note, {"waiting": waiting, "sweeps": sweep_ids}


def move_queued(run_id: str, where: str):
    if not run_id:
        return gr.update(), "Pick a queued run first."
    try:
        queue.move(run_id, where)
    except queue.QueueError as error:
        return gr.update(), f"⚠️ {error}"
    return queue_rows(), f"Moved `{run_id}` {where}."


def move_up(run_id: str):
    return move_queued(run_id, "up")


def move_down(run_id: str):
    return move_queued(run_id, "down")


def cancel_queued(run_id: str):
    if not run_id:
        return gr.update(), "Pick a queued run first."
    try:
        queue.cancel(run_id)
    except queue.QueueError as error:
        return gr.update(), f"⚠️ {error}"
    return queue_rows(), f"Cancelled `{run_id}`; its folder stays in the history as `cancelled`."


# ---------------------------------------------------------------- sweeps


def _grid(rates: str, ranks: str, epochs: str) -> dict:
    items = [f"{field}={text}" for field, text in zip(GRID_FIELDS, (rates, ranks, epochs)) if (text or "").strip()]
    return sweeps.parse_grid(items)


def queue_sweep(yaml_text: str, rates: str, ranks: str, epochs: str):
    """The recipe in the editor over the grid: queued runs under one sweep id."""
    if demo_mode():
        return gr.update(), "⚠️ The demo trains one run at a time; run the studio yourself for sweeps."
    try:
        recipe = train_form.recipe_from_yaml(yaml_text)
        visitor.dataset(str(recipe.dataset_path()))  # the same guard as Start: a visitor's dataset and model
        recipe.model.name = visitor.model(recipe.model.name)
        record = sweeps.submit(recipe, _grid(rates, ranks, epochs))
    except (recipes.RecipeError, runs.RunBusy, runs.RunError, *visitor.Refused, PermissionError, ValueError) as error:
        return gr.update(), f"⚠️ Sweep not queued: {error}"
    return (gr.update(choices=[r["sweep_id"] for r in sweeps.list_sweeps()], value=record["sweep_id"]),
            f"Sweep `{record['sweep_id']}`: {len(record['runs'])} runs queued; the first starts when nothing trains.")


def compare_sweep(sweep_id: str, smoothing: float):
    """The comparison table (sorted by best eval loss, with each run's evaluation after training
    when its recipe names a prompt set) and every run's loss curves overlaid."""
    if not sweep_id:
        return gr.update(value=[], headers=["run"]), train_charts.loss_figure([]), ""
    try:
        rows = sweeps.compare(sweep_id)
    except recipes.RecipeError as error:
        return gr.update(value=[], headers=["run"]), train_charts.loss_figure([]), f"⚠️ {error}"
    headers, cells = sweeps.table(rows)
    table = [["" if value is None else value for value in line] for line in cells]
    curves = {row["run_id"]: runs.read_metrics(workspace().runs / row["run_id"]) for row in rows}
    first = next(iter(curves), None)
    figure = train_charts.loss_figure(curves.get(first, []), smoothing=smoothing, name=first,
                                      overlays=dict(list(curves.items())[1:]))
    return gr.update(value=table, headers=headers), figure, _picks(sweeps.best_runs(rows), rows)


def _picks(best: dict, rows: list[dict]) -> str:
    loss = {row["run_id"]: row["best_eval_loss"] for row in rows}
    lines = [f"Lowest eval loss: `{best['eval_loss']}` ({loss[best['eval_loss']]:.4f})." if best["eval_loss"]
             else "No eval loss yet."]
    if best["prompt_set"]:
        lines.append(f"Best on the prompt set (nothing regressed, best {best['metric']}): `{best['prompt_set']}`.")
    if any(row["evaluation"]["state"] == "done" for row in rows):
        lines.append("⚑ = a change beyond its 95% interval; open a run in the history above for its full report.")
    return " ".join(lines)


# ---------------------------------------------------------------- webhook and accelerate config


def save_webhook(url: str) -> str:
    if demo_mode():
        return "⚠️ The demo studio does not call webhooks."
    try:
        saved = webhook.save_webhook_url(url)
    except recipes.RecipeError as error:
        return f"⚠️ {error}"
    return "Webhook saved: each finished run is POSTed there (run id, state, losses)." if saved else "Webhook cleared."


def launch_note(recipe: recipes.Recipe) -> str:
    """The several-process launch a recipe will get, with the accelerate config it writes."""
    import yaml

    command = distributed.shown(runs.accelerate_command(recipe, "<run-dir>"))
    config = yaml.safe_dump(distributed.config_for(recipe), sort_keys=False)
    strategy = recipe.training.distributed if recipe.training.distributed != "none" else "ddp"
    return (f"**{recipe.training.num_processes} processes** ({strategy}"
            f"; on a CPU over gloo): this recipe runs as\n```\n{command}\n```\nwith this accelerate config, "
            f"written into the run folder:\n```yaml\n{config}```")


def accelerate_view(run_id: str):
    """The open run's (named by id) accelerate config file, shown when the run uses several processes."""
    try:
        folder = run_dir.run_path(run_id)
    except run_dir.UnknownRun:
        return gr.update(visible=False, value="")
    path = distributed.config_path(folder)
    if path is None:
        return gr.update(visible=False, value="")
    return gr.update(visible=True, value=path.read_text(encoding="utf-8"), label=f"accelerate config of {folder.name}")


# ---------------------------------------------------------------- layout


def build_queue_panel(yaml_view: gr.components.Component, current: gr.components.Component) -> None:
    """The panel under the run history. `yaml_view` is the recipe editor, `current` the open run."""
    seen = gr.State({})
    with gr.Accordion(t("Queue and sweeps"), open=True, elem_id="train-queue"):
        gr.Markdown(t("Starting a run while another trains puts it here; the next one starts when the slot frees. "
                    "The queue lives in the workspace, so a restart keeps it."))
        table = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, label=t("Waiting runs"), elem_id="train-queue-table")
        with gr.Row():
            picked = gr.Dropdown(choices=[], label=t("Queued run"), scale=3, elem_id="train-queue-pick")
            up = gr.Button(t("Move up"), size="sm")
            down = gr.Button(t("Move down"), size="sm")
            cancel = gr.Button(t("Cancel"), variant="stop", size="sm")
        note = our_words(gr.Markdown("", elem_id="train-queue-note"))
        gr.Markdown(t("**Sweep** the recipe in the editor: comma-separated values; every combination is queued."))
        with gr.Row():
            grid = [gr.Textbox(label=t(label), placeholder=hint, elem_id=f"train-sweep-{field.split('.')[-1]}")
                    for (field, label), hint in zip(GRID_FIELDS.items(), ("1e-4, 3e-4", "8, 16", "1, 2"))]
            sweep_btn = gr.Button(t("Queue sweep"), variant="primary")
        with gr.Row():
            sweep_pick = gr.Dropdown(choices=[], label=t("Compare a sweep"), scale=3, elem_id="train-sweep-pick")
            smoothing = gr.Slider(0, 0.99, value=0.6, step=0.01, label=t("Smoothing"))
        sweep_note = our_words(gr.Markdown(""))
        sweep_table = gr.Dataframe(interactive=False, wrap=True, elem_id="train-sweep-table",
                                   label=t("Sweep runs, best eval loss first, with the evaluation after training "
                                         "(when the recipe names a prompt set: eval.prompts, eval.after_training)"))
        sweep_plot = gr.Plot(label=t("Sweep loss curves"))
        with gr.Row():
            hook = gr.Textbox(label=t("Completion webhook URL"), value=webhook.read_settings().get("webhook_url", ""),
                              info=t("Each finished run sends its id, state and best eval loss here (a JSON POST); no tokens."),
                              scale=4)
            hook_btn = gr.Button(t("Save webhook"), size="sm")
        accel = gr.Code(language="yaml", label=t("accelerate config"), visible=False, interactive=False)

    up.click(move_up, picked, [table, note])
    down.click(move_down, picked, [table, note])
    cancel.click(cancel_queued, picked, [table, note])
    sweep_btn.click(queue_sweep, [yaml_view, *grid], [sweep_pick, sweep_note])
    sweep_pick.change(compare_sweep, [sweep_pick, smoothing], [sweep_table, sweep_plot, sweep_note])
    smoothing.release(compare_sweep, [sweep_pick, smoothing], [sweep_table, sweep_plot, sweep_note])
    hook_btn.click(save_webhook, hook, note)
    current.change(accelerate_view, current, accel)
    timer = gr.Timer(3.0)
    timer.tick(poll_queue, seen, [table, picked, sweep_pick, note, seen], show_progress="hidden")
