"""Train tab, "Where to train": this machine, or Hugging Face Jobs on a flavor the Hub lists now,
with a token from the password box or the server's HF_TOKEN.

The token box is only ever an input: no handler returns it, puts it in a message or logs it, and
core.train.hf_jobs hands it to the job as a secret. A Jobs run is an ordinary run of the history
(its follower fills the folder); Stop on it cancels the job. In demo mode the choice is hidden
and the start refuses Jobs, whatever the browser sends. Knows nothing about the recipe form.
"""

from __future__ import annotations

from typing import NamedTuple

import gradio as gr

from core.errors import StudioError
from core.hosting import demo_mode
from core.recipes import Recipe
from core.train import forecast as forecasts
from core.train import hf_jobs, runs
from studio.ui import sessions
from studio.ui.language import choices, our_words, t, translate

HERE = "This machine"
JOBS = "Hugging Face Jobs"


class JobsControls(NamedTuple):
    where: gr.Radio
    flavor: gr.Dropdown
    token: gr.Textbox
    note: gr.Markdown


def list_flavors(token: str, request: gr.Request = None):
    """The flavors the Hub offers now (GPUs first), or why they can't be listed."""
    if demo_mode():
        return gr.update(choices=[], value=None), "Hugging Face Jobs are off in this demo studio."
    try:
        found = hf_jobs.flavors(token or sessions.hub_token(request))
    except StudioError as error:
        return gr.update(), f"⚠️ {error}"
    found.sort(key=lambda flavor: not flavor["gpu"])
    choices = [(flavor["label"], flavor["name"]) for flavor in found]
    return (gr.update(choices=choices, value=choices[0][1] if choices else None),
            f"{len(choices)} flavors listed by the Hub; the price is the Hub's, per hour of the job.")


def show_jobs(where: str, token: str, request: gr.Request = None):
    """Picking Jobs shows its options and lists the flavors at once."""
    if where != JOBS or demo_mode():
        return gr.update(visible=False), gr.update(), ""
    flavor, note = list_flavors(token, request)
    return gr.update(visible=True), flavor, note


def start_job(recipe: Recipe, flavor: str, token: str) -> tuple[str, str]:
    """Send a checked recipe (the Train tab's visitor guard has run) to Jobs; (run id, message).
    Raises the studio's errors (no token, Hub unreachable, unknown flavor, demo mode). The forecast
    for that flavor and the job's time limit warns first (too little memory, too long a run)."""
    planned = forecasts.quick(recipe, flavor=flavor, token=token or None,
                              time_limit_s=hf_jobs.timeout_seconds(hf_jobs.DEFAULT_TIMEOUT))
    folder = hf_jobs.submit(recipe, flavor, token)
    if planned:
        runs.save_forecast(folder, planned.to_json())
        for warning in planned.warnings:
            gr.Warning(translate(warning))
    job = hf_jobs.job_record(folder) or {}
    return folder.name, (f"Sent `{folder.name}` to Hugging Face Jobs on **{job.get('flavor')}** (job [{job.get('job_id')}]"
                         f"({job.get('url')})). It waits for the hardware, then the charts fill as the job's log arrives; "
                         "Stop cancels the job. The adapter comes back into the run folder when it ends.")


def build_jobs_controls() -> JobsControls:
    with gr.Row(visible=not demo_mode()):
        where = gr.Radio(choices([HERE, JOBS]), value=HERE, label=t("Where to train"), elem_id="train-where",
                         info=t("Hugging Face Jobs trains on the Hub's GPUs and brings the adapter back here"))
    with gr.Row(visible=False) as options:
        flavor = gr.Dropdown(choices=[], label=t("Jobs hardware"), allow_custom_value=True, scale=3, elem_id="train-flavor",
                             info=t("Listed by the Hub when you pick Jobs; the price is per hour"))
        token = gr.Textbox(label=t("Hugging Face token"), type="password", placeholder=t(f"hf_... (empty: {sessions.empty_token_means()})"),
                           scale=3, elem_id="train-hf-token")
        refresh = gr.Button(t("List flavors"), size="sm", scale=1)
    note = our_words(gr.Markdown("", elem_id="train-jobs-note"))
    where.change(show_jobs, [where, token], [options, flavor, note])
    refresh.click(list_flavors, token, [flavor, note])
    return JobsControls(where, flavor, token, note)
