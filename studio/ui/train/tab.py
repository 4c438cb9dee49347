"""The Train tab: recipe picker and form (kept in sync with a YAML view), Start / Stop /
Resume, progress, live Plotly charts polled every two seconds, and the run history.

The tab only reads run folders (core.train.runs), so a page reload re-attaches to whatever is
running: the timer's first tick picks the live run, or the newest one.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from core import recipes
from core.eval import prompts as prompt_sets
from core.hosting import enforce_demo_limits
from core.train import advice, queue, run_dir, runs
from core.train import forecast as forecasts
from core.train.preflight import dataset_summary
from core.workspace import ASSETS, CONFIGS, inside, workspace, write_atomic
from studio.ui import sessions, visitor
from studio.ui.language import our_words, t, translate
from studio.ui.problems import EXPECTED, unexpected
from studio.ui.train import form as train_form
from studio.ui.train import grpo as train_grpo
from studio.ui.train import jobs as train_jobs
from studio.ui.train.forecast_view import forecast_markdown
from studio.ui.train.form import FormFill
from studio.ui.train.live import (  # noqa: F401  (the live view; tests and the layout below use these names)
    NO_RUNS,
    Tick,
    history_rows,
    open_run_verdict,
    progress_html,
    refresh,
    refresh_history,
)
from studio.ui.train.queue import build_queue_panel, launch_note

HISTORY_HEADERS = ["run", "state", "method", "model", "where", "steps", "final loss", "best eval loss", "duration", "started"]
LIVE = runs.LIVE_STATES
HISTORY_EVERY_S = 10.0  # the history reads every run's metrics, so it is redrawn less often than the open run


# ---------------------------------------------------------------- recipes and the form


def saved_recipes_dir() -> Path:
    return workspace().root / "recipes"


def recipe_choices() -> list[tuple[str, str]]:
    bundled = [(f"{p.stem} (bundled)", str(p)) for p in recipes.bundled()]
    saved = sorted(saved_recipes_dir().glob("*.yaml")) if saved_recipes_dir().is_dir() else []
    return bundled + [(f"{p.stem} (saved)", str(p)) for p in saved]


def _launch_note(recipe: recipes.Recipe | None) -> str:
    if recipe is None or not runs.uses_accelerate(recipe):
        return ""

    return launch_note(recipe)


def load_recipe(path: str) -> FormFill:
    """Fill the form and the YAML view from a recipe file."""
    if not path:
        return FormFill(yaml=gr.update(), status="Pick a recipe to load.", note="")
    try:
        recipe = train_form.portable(recipes.load(visitor.recipe_file(path, saved_recipes_dir())))
    except (recipes.RecipeError, *visitor.Refused) as error:
        return FormFill(yaml=gr.update(), status=f"⚠️ {error}", note="")
    return FormFill(train_form.form_dict(recipe), yaml=recipe.to_yaml(), status=f"Loaded `{Path(path).name}`.",
                    note=_launch_note(recipe))


def show_live_recipe() -> FormFill:
    """Page load: while a run goes, the form shows the recipe it is training with, so a reload
    mid-run shows what is running rather than the default recipe."""
    live = runs.active_run()
    if live is None:
        return FormFill(yaml=gr.update())
    try:
        recipe = train_form.portable(recipes.load(live.path / runs.RECIPE_FILE))
    except (recipes.RecipeError, OSError):
        return FormFill(yaml=gr.update())
    return FormFill(train_form.form_dict(recipe), yaml=recipe.to_yaml(),
                    status=f"Showing the recipe of the live run `{live.run_id}`.", note=_launch_note(recipe))


def form_changed(yaml_text: str, *values):
    """A form edit rewrites the YAML view; problems are named but the edit is kept. A new
    dataset file resets the format to auto-detect (the old file's format rarely fits it).
    Returns (YAML, status, launch note, format widget)."""
    try:
        before = train_form.parse_yaml(yaml_text)
        data = train_form.apply_form(yaml_text, list(values))
    except recipes.RecipeError as error:
        return gr.update(), f"⚠️ {error}", "", gr.update()
    fmt, note = gr.update(), ""
    new_path = train_form.get_dotted(data, "data.path")
    if new_path != train_form.get_dotted(before, "data.path") and train_form.get_dotted(data, "data.format") != "auto":
        train_form.set_dotted(data, "data.format", "auto")
        fmt, note = "auto", " Dataset changed: its format is detected again (data.format: auto)."
    try:
        recipe = recipes.from_dict(data)
    except recipes.RecipeError as error:
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True), f"⚠️ {error}{note}", "", fmt
    return recipe.to_yaml(), f"Recipe is valid.{note}", _launch_note(recipe), fmt


def yaml_changed(yaml_text: str) -> FormFill:
    """A YAML edit refills the form when it parses into a valid recipe."""
    try:
        recipe = train_form.recipe_from_yaml(yaml_text)
    except recipes.RecipeError as error:
        return FormFill(status=f"⚠️ {error}", note="")
    return FormFill(train_form.form_dict(recipe), status="Recipe is valid.", note=_launch_note(recipe))


def save_recipe(yaml_text: str, filename: str):
    try:
        recipe = train_form.recipe_from_yaml(yaml_text)
    except recipes.RecipeError as error:
        return f"⚠️ Not saved: {error}", gr.update()
    stem = Path((filename or recipe.name).strip()).stem or "recipe"
    target = saved_recipes_dir() / f"{stem}.yaml"
    write_atomic(target, recipe.to_yaml())
    return f"Saved to `{target}`.", gr.update(choices=recipe_choices(), value=str(target))


def offer_dataset(path: str, yaml_text: str):
    """The Dataset tab opened a file: offer it (a button naming it) unless the form already uses
    it. The form never follows on its own: a run trains on the dataset its recipe names until
    the person says otherwise."""
    if not path:
        return gr.update(visible=False)
    try:
        current = train_form.recipe_from_yaml(yaml_text).dataset_path()
    except recipes.RecipeError:
        current = None
    if current is not None and current.resolve() == Path(str(path)).resolve():
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"Use {Path(path).name} (open in the Dataset tab) for this run")


def dataset_line(yaml_text: str, why: str) -> str:
    """Which dataset the run will use and why, with its size and any warning (tiny data, rows that
    can't be used), read again whenever the recipe's dataset may have changed."""
    try:
        recipe = _checked_recipe(yaml_text)
        summary = dataset_summary(recipe, leaks=prompt_sets.recipe_leak_index(recipe))
    except (*EXPECTED, *visitor.Refused) as error:
        return f"**Dataset for this run:** ⚠️ {error}"
    name = Path(summary["path"]).name
    size = f"{summary['examples']:,} examples" + ("" if summary["complete"] else " in its first rows (a large file)")
    bad = f", {summary['bad_rows']:,} row(s) that can't be used" if summary["bad_rows"] else ""
    lines = [f"**Dataset for this run:** `{name}` ({why}) · {size}{bad}"]
    lines += [f"⚠️ {warning}" for warning in summary["warnings"]]
    tips = advice.recommend(recipe, summary["examples"])
    if tips:  # the settings against what usually works for this model and this much data
        lines.append("**Settings for this model and data:** " + " · ".join(
            f"{t.label} {'✓' if t.inside else '⚠️'}" for t in tips))
        lines += [f"- {t.line()}" for t in tips if not t.inside]
    return "  \n".join(lines)


def dataset_from_recipe(yaml_text: str) -> str:
    return dataset_line(yaml_text, "the recipe's data.path")


def dataset_from_dataset_tab(yaml_text: str) -> str:
    return dataset_line(yaml_text, "picked from the Dataset tab")


def dataset_from_form(yaml_text: str) -> str:
    return dataset_line(yaml_text, "as the form says")


def clear_line() -> str:
    """A plan or message that stopped being true (the recipe changed since) goes away."""
    return ""


def settle_run_line(run_id: str, text: str):
    """'Stopping…' stays only while the run is still stopping: afterwards the line says how it ended."""
    if not run_id or not (text or "").startswith("Stopping"):
        return gr.skip()
    try:
        state = runs.read_status(_run(run_id)).get("state")
    except runs.UnknownRun:
        return ""
    return gr.skip() if state in LIVE else f"`{run_id}` {state}."


def use_dataset(path: str, yaml_text: str):
    """The person chose the Dataset tab's open file for this run: put it in the form and the YAML."""
    if not path:
        return gr.update(), gr.update(), gr.update()
    try:
        data = train_form.parse_yaml(yaml_text)
    except recipes.RecipeError:
        data = {}
    train_form.set_dotted(data, "data.path", str(path))
    text, status, _, fmt = form_changed(yaml_text, *[train_form.to_widget(d, train_form.get_dotted(data, d))
                                                     for d in train_form.FIELDS])
    return str(path), text, status, fmt


def check_plan(yaml_text: str) -> str:
    """The dry run, as Markdown: samples, tokens, steps, without loading the model."""
    from core.train import training

    try:
        recipe = _checked_recipe(yaml_text)
        plan = training.plan(recipe)
    except Exception as error:  # noqa: BLE001 - any failure becomes a readable message
        return f"⚠️ {error}"
    stats = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in plan["train_tokens"].items())
    notes = "".join(f"\n- {note}" for note in plan["notes"])
    return (f"**Plan:** {plan['examples']} examples ({plan['format']}), {plan['train_rows']} train / {plan['eval_rows']} "
            f"eval rows, {plan['bad_rows']} bad rows, {plan['skipped']} skipped.  \n**Tokens** ({plan['tokenizer']}): {stats}.  \n"
            f"**Steps:** {plan['steps_per_epoch']} per epoch, {plan['total_steps']} in all, on {plan['device']}.{notes}\n\n"
            + forecast_markdown(recipe, plan))


def _checked_recipe(yaml_text: str) -> recipes.Recipe:
    """The YAML view as a recipe whose paths a visitor may use: demo limits first (embedded model,
    bundled data), then the dataset and a local model folder through the visitor guard, before the
    dry run or a start looks at either."""
    recipe = enforce_demo_limits(train_form.recipe_from_yaml(yaml_text))
    inside(recipe.dataset_path(), workspace().root, ASSETS, CONFIGS)
    recipe.model.name = visitor.model(recipe.model.name)
    return recipe


# ---------------------------------------------------------------- run controls


def start_run(yaml_text: str, where: str = train_jobs.HERE, flavor: str = "", token: str = "", request: gr.Request = None):
    """Start (or queue) the recipe here, or send it to Hugging Face Jobs (`where`); the token is
    only passed on, never shown or kept."""
    try:
        recipe = _checked_recipe(yaml_text)
        if where == train_jobs.JOBS:
            return train_jobs.start_job(recipe, flavor, token or sessions.hub_token(request))
        planned = forecasts.quick(recipe)
        for warning in planned.warnings if planned else []:  # said before the run starts, not found out an hour in
            gr.Warning(translate(warning))
        folder, started = queue.submit(recipe)
        if planned:
            runs.save_forecast(folder, planned.to_json())
    except (*EXPECTED, *visitor.Refused) as error:  # RunBusy, RecipeError, JobsError, ModelNotFound, QueueError ...
        gr.Warning(translate(str(error).splitlines()[0]))
        return gr.update(), f"⚠️ Not started: {error}"
    except Exception as error:  # noqa: BLE001 - last resort: never a traceback on the page
        return gr.update(), f"⚠️ Not started: {unexpected(error, 'starting the run')}"
    if not started:  # another run trains: this one waits in the queue (below the run history)
        return gr.update(), f"Queued `{folder.name}`: it starts when the runs ahead of it end."
    return folder.name, f"Started `{folder.name}`. The charts fill in as it trains; closing the page does not stop it."


def _run(run_id: str) -> Path:
    """The open run's folder. The browser only ever names a run by its id; runs.run_path checks it."""
    return run_dir.run_path(run_id)


def stop_run(run_id: str) -> str:
    if not run_id:
        return "No run selected."
    try:
        status = runs.stop(_run(run_id))
    except runs.UnknownRun as error:
        return f"⚠️ {error}"
    if status.get("waiting"):
        return f"`{run_id}` is waiting in the queue; cancel it under Queue and sweeps."
    if status.get("state") not in LIVE:
        return f"`{run_id}` is {status.get('state')}; nothing to stop."
    if status.get("hf_job"):
        return "Stopping: the Hugging Face job is cancelled and the run ends as `stopped` (a cancelled job sends no adapter back)."
    return "Stopping: the run saves a checkpoint at the end of this step, then ends as `stopped`."


def resume_run(run_id: str, checkpoint: str):
    if not run_id:
        return gr.update(), "No run selected."
    try:
        runs.resume(_run(run_id), checkpoint or "last")
    except Exception as error:  # noqa: BLE001
        gr.Warning(translate(str(error).splitlines()[0]))
        return gr.update(), f"⚠️ Not resumed: {error}"
    return run_id, f"Resuming `{run_id}` from {checkpoint or 'the last checkpoint'}."


def delete_run(run_id: str):
    if not run_id:
        return gr.update(), "No run selected."
    try:
        runs.delete_run(_run(run_id))
    except (runs.RunError, runs.UnknownRun) as error:
        return gr.update(), f"⚠️ {error}"
    return "", f"Deleted `{run_id}`."


def open_run(evt: gr.SelectData):
    """A click on a history row opens that run: the row's first cell is the run id, checked
    (the event's data comes from the browser and may be forged)."""
    row = evt.row_value or []
    if not row:
        return gr.update()
    try:
        return _run(str(row[0])).name
    except runs.UnknownRun as error:
        gr.Warning(translate(str(error)))
        return gr.update()


# ---------------------------------------------------------------- layout


def build_train_tab(dataset_path: gr.components.Component | None = None) -> None:
    """Lay out the tab. `dataset_path`, when given, is the Dataset tab's file component:
    when its value changes the form's dataset follows it."""
    current = gr.State("")  # the open run's id (its folder name under runs/), never a path
    seen = gr.State({})
    with gr.Row():
        with gr.Column(scale=5):
            picker, load_btn, form, yaml_view, status_md, launch_md, save_name, save_btn, plan_btn, plan_md = _build_recipe_side()
        with gr.Column(scale=7, elem_id="train-run-column"):
            start_btn, stop_btn, resume_btn, checkpoint, run_md, data_md, use_open = _build_controls()
            jobs = train_jobs.build_jobs_controls()
            progress = our_words(gr.HTML(t(NO_RUNS), elem_id="train-progress"))
            verdict = our_words(gr.Markdown(elem_id="train-verdict"))  # the regression guard's verdict, when the run has one
            log_scale, smoothing, overlays, plots = _build_charts()
            preview, grpo_plots = train_grpo.build_grpo_panel()
            plots = plots + grpo_plots
    with gr.Accordion(t("Run history"), open=True):
        history = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, wrap=True, label=t("Past runs (click a row to open it)"))
        with gr.Row():
            delete_btn = gr.Button(t("Delete the open run"), variant="stop", size="sm")
            history_btn = gr.Button(t("Refresh the list"), size="sm")
        log_tail = gr.Textbox(label=t("Training log (last lines)"), lines=14, max_lines=14, autoscroll=True, interactive=False)

    build_queue_panel(yaml_view, current)

    form_outputs = FormFill.outputs(form, yaml=yaml_view, status=status_md, note=launch_md)
    format_box = form[train_form.FIELDS.index("data.format")]
    (load_btn.click(load_recipe, inputs=picker, outputs=form_outputs)
     .then(clear_line, None, plan_md).then(dataset_from_recipe, yaml_view, data_md))
    gr.on(None, show_live_recipe, None, form_outputs).then(dataset_from_recipe, yaml_view, data_md)  # page load
    for widget in form:
        (widget.input(form_changed, inputs=[yaml_view, *form], outputs=[yaml_view, status_md, launch_md, format_box])
         .then(clear_line, None, plan_md))
    path_box = form[train_form.COMMON.index("data.path")]
    path_box.blur(dataset_from_form, yaml_view, data_md)  # on leaving the field, not on every key typed
    (yaml_view.input(yaml_changed, inputs=yaml_view, outputs=FormFill.outputs(form, status=status_md, note=launch_md))
     .then(clear_line, None, plan_md))
    yaml_view.blur(dataset_from_form, yaml_view, data_md)
    save_btn.click(save_recipe, inputs=[yaml_view, save_name], outputs=[status_md, picker])
    plan_btn.click(check_plan, inputs=yaml_view, outputs=plan_md)
    preview[0].click(train_grpo.preview_rewards, inputs=[yaml_view, preview[1], preview[2]], outputs=[preview[3], preview[4]])
    start_btn.click(start_run, inputs=[yaml_view, jobs.where, jobs.flavor, jobs.token], outputs=[current, run_md])
    stop_btn.click(stop_run, inputs=current, outputs=run_md)
    resume_btn.click(resume_run, inputs=[current, checkpoint], outputs=[current, run_md])
    delete_btn.click(delete_run, inputs=current, outputs=[current, run_md])
    history.select(open_run, outputs=current)
    if dataset_path is not None:  # offered, never swapped in silently
        dataset_path.change(offer_dataset, inputs=[dataset_path, yaml_view], outputs=use_open)
        (use_open.click(use_dataset, inputs=[dataset_path, yaml_view], outputs=[path_box, yaml_view, status_md, format_box])
         .then(clear_line, None, plan_md).then(dataset_from_dataset_tab, yaml_view, data_md)
         .then(offer_dataset, inputs=[dataset_path, yaml_view], outputs=use_open))

    timer = gr.Timer(2.0)
    timer.tick(refresh, inputs=[current, log_scale, smoothing, overlays, seen],
               outputs=[current, progress, *plots, log_tail, history, overlays, checkpoint, seen], show_progress="hidden")
    gr.Timer(HISTORY_EVERY_S).tick(refresh_history, outputs=history, show_progress="hidden")
    history_btn.click(refresh_history, outputs=history)
    timer.tick(open_run_verdict, inputs=current, outputs=verdict, show_progress="hidden")
    timer.tick(settle_run_line, inputs=[current, run_md], outputs=run_md, show_progress="hidden")


def _build_recipe_side():
    gr.Markdown(t("### Recipe"))
    with gr.Row():
        picker = gr.Dropdown(choices=recipe_choices(), label=t("Recipe"), info=t("A bundled recipe from configs/ or one you saved"),
                             scale=4, value=str(CONFIGS / "smoke-cpu.yaml"))
        load_btn = gr.Button(t("Load recipe"), scale=1)
    default = train_form.default_recipe()
    values = train_form.form_dict(default)
    common = _widget_grid(train_form.COMMON, values, per_row=2)
    with gr.Accordion(t("Advanced"), open=False):
        advanced = _widget_grid(train_form.ADVANCED, values, per_row=2)
        yaml_view = gr.Code(default.to_yaml(), language="yaml", label=t("Recipe YAML (edits here update the form)"),
                            interactive=True, lines=16)
    status_md = our_words(gr.Markdown(""))
    launch_md = our_words(gr.Markdown(""))
    with gr.Row():
        save_name = gr.Textbox(label=t("Save as"), placeholder=t("my-recipe"), scale=3)
        save_btn = gr.Button(t("Save recipe"), scale=1)
        plan_btn = gr.Button(t("Check plan and forecast (dry run)"), scale=1, elem_id="train-plan")
    plan_md = our_words(gr.Markdown("", elem_id="train-plan-md"))
    return picker, load_btn, common + advanced, yaml_view, status_md, launch_md, save_name, save_btn, plan_btn, plan_md


def _widget_grid(fields: list[str], values: dict, per_row: int) -> list:
    widgets = []
    for start in range(0, len(fields), per_row):
        with gr.Row(equal_height=True):
            widgets += [train_form.make_widget(d, values[d]) for d in fields[start:start + per_row]]
    return widgets


def _build_controls():
    gr.Markdown(t("### Run"))
    with gr.Row():
        start_btn = gr.Button(t("Start"), variant="primary")
        stop_btn = gr.Button(t("Stop (save a checkpoint)"))
        checkpoint = gr.Dropdown(choices=["last"], value="last", label=t("Resume from"), scale=1, min_width=120)
        resume_btn = gr.Button(t("Resume"))
    data_md = our_words(gr.Markdown("", elem_id="train-dataset"))
    use_open = gr.Button(t("Use the dataset open in the Dataset tab"), visible=False, size="sm", elem_id="train-use-dataset")
    run_md = our_words(gr.Markdown(""))
    return start_btn, stop_btn, resume_btn, checkpoint, run_md, data_md, use_open


def _build_charts():
    with gr.Row(elem_classes="phone-wrap"):
        log_scale = gr.Checkbox(label=t("Log scale"), value=False)
        smoothing = gr.Slider(0, 0.99, value=0.6, step=0.01, label=t("Smoothing"), info=t("Weight of the moving average on train loss"))
        overlays = gr.Dropdown(choices=[], multiselect=True, label=t("Compare with earlier runs"), info=t("Overlay their loss curves"))
    loss_plot = gr.Plot(label=t("Loss"), elem_id="train-loss-plot")
    with gr.Row():
        lr_plot = gr.Plot(label=t("Learning rate"))
        grad_plot = gr.Plot(label=t("Gradient norm"))
    rewards_plot = gr.Plot(label=t("Preference rewards"), visible=False)
    return log_scale, smoothing, overlays, [loss_plot, lr_plot, grad_plot, rewards_plot]
