"""Hugging Face Jobs against a local stand-in of the Hub and Jobs endpoints (tests/hub_standin.py),
whose job runs the submitted command line for real: the bootstrap downloads the studio's source
tarball from the stand-in repo, the job side trains the tiny model with the same worker, the
follower streams the log into the run folder and brings the adapter back. A real job on the Hub's
hardware is out of reach from here (the Hub is unreachable): the stand-in is the only Hub these
tests talk to, and the job's `pip install` steps are skipped there (its "image" is this venv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from core import recipes
from core.errors import BadInput
from core.train import hf_jobs, runs
from core.train.hf_job_remote import marker, parse_marker
from core.workspace import workspace
from tests.helpers.data import wait_for, write_chats
from tests.helpers.hub_standin import HubStandIn
from tests.helpers.server import ROOT, launch_on_free_port

TOKEN = "hf_standInJobsSecret4242"


@pytest.fixture
def hub(monkeypatch):
    """The stand-in, named by HF_ENDPOINT, with Hub access on for it (conftest turns it off)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # for the follower process, which reads it afresh
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("STUDIO_DEMO", raising=False)
    with HubStandIn(TOKEN) as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.endpoint)
        yield standin


def job_recipe(tiny_model_dir: Path, **training) -> recipes.Recipe:
    data = write_chats(workspace().datasets / "chats.jsonl")
    fields = {"max_steps": 3, "batch_size": 2, "learning_rate": 1e-3, "save_steps": 2, "eval_steps": 2, "logging_steps": 1}
    return recipes.from_dict({"name": "jobs", "model": {"name": str(tiny_model_dir)},
                              "data": {"path": str(data), "max_length": 128, "eval_split": 0.2}, "training": {**fields, **training}})


def files_holding(root: Path, secret: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


# ---------------------------------------------------------------- no job needed


def test_markers_survive_a_progress_bar_running_into_them():
    line = marker("METRIC", {"step": 3, "loss": 1.5})
    assert parse_marker(line) == ("METRIC", {"step": 3, "loss": 1.5})
    assert parse_marker("\r 50%|█████     | 2/4 [00:01<00:01]" + line) == ("METRIC", {"step": 3, "loss": 1.5})
    assert parse_marker("STUDIO-METRIC {not json") is None and parse_marker("{'loss': 1.5}") is None


def test_the_source_sent_is_this_checkout_without_caches():
    import io
    import tarfile

    names = tarfile.open(fileobj=io.BytesIO(hf_jobs.source_tarball())).getnames()
    assert {"core/train/worker.py", "core/train/hf_job_remote.py", "studio/cli/commands.py", "studio/cli/__main__.py",
            "pyproject.toml", "assets/patterns.yaml"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert hf_jobs.source_version().get("commit")  # this is a git checkout: the commit is recorded


def test_what_travels_embedded_becomes_the_hub_model_and_a_local_folder_is_sent(tiny_model_dir):
    recipe = job_recipe(tiny_model_dir)
    job, files, sent = hf_jobs.job_files(recipe)
    assert sent == "folder" and job["model"]["name"] == "model" and job["data"]["path"] == "data/chats.jsonl"
    assert ("data/chats.jsonl", recipe.dataset_path()) in files and any(name == "model/config.json" for name, _ in files)
    recipe.model.name = "embedded"
    job, files, sent = hf_jobs.job_files(recipe)
    assert sent == "embedded" and job["model"]["name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert not [name for name, _ in files if name.startswith("model/")]


def test_flavors_come_from_the_hub(hub):
    found = hf_jobs.flavors(TOKEN)
    assert [f["name"] for f in found] == ["cpu-basic", "a10g-small"]
    assert found[1]["gpu"] and found[1]["label"] == "a10g-small: 1x A10G 24 GB, $1.00/hour"


def test_unreachable_hub_is_one_clear_error_and_no_run(tiny_model_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(hf_jobs.JobsError) as caught:
        hf_jobs.submit(job_recipe(tiny_model_dir), "cpu-basic", TOKEN, endpoint="http://127.0.0.1:9")
    assert "could not reach the Hugging Face Hub at http://127.0.0.1:9" in str(caught.value)
    assert TOKEN not in str(caught.value) and runs.run_folders() == []
    with pytest.raises(hf_jobs.JobsError, match="could not reach"):
        hf_jobs.flavors(endpoint="http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(hf_jobs.JobsError, match="HF_HUB_OFFLINE=1"):
        hf_jobs.flavors()


def test_no_token_a_refused_token_an_unknown_flavor_and_demo_mode_start_nothing(hub, tiny_model_dir, monkeypatch):
    from core.hosting import DemoRefusal

    recipe = job_recipe(tiny_model_dir)
    with pytest.raises(hf_jobs.JobsError, match="No Hugging Face token"):
        hf_jobs.submit(recipe, "cpu-basic")
    with pytest.raises(hf_jobs.JobsError, match="answered 401.*Check the token"):
        hf_jobs.submit(recipe, "cpu-basic", "hf_wrong")
    with pytest.raises(hf_jobs.JobsError, match="'h100x9' is not a Jobs flavor.*cpu-basic, a10g-small"):
        hf_jobs.submit(recipe, "h100x9", TOKEN)
    with pytest.raises(BadInput):  # not a flavor name at all
        hf_jobs.submit(recipe, "../../etc", TOKEN)
    with pytest.raises(BadInput, match="timeout"):
        hf_jobs.submit(recipe, "cpu-basic", TOKEN, timeout="soon")
    recipe.training.tuning = "qlora"
    with pytest.raises(recipes.RecipeError, match="QLoRA needs a GPU, and cpu-basic has none"):
        hf_jobs.submit(recipe, "cpu-basic", TOKEN)
    monkeypatch.setenv("STUDIO_DEMO", "1")
    with pytest.raises(DemoRefusal):
        hf_jobs.submit(recipe, "cpu-basic", TOKEN)
    assert runs.run_folders() == [] and not hub.jobs


def test_demo_mode_hides_jobs_and_refuses_them_whatever_the_browser_sends(monkeypatch):
    from studio.ui.train import jobs as train_jobs
    from studio.ui.train import tab as train_tab

    monkeypatch.setenv("STUDIO_DEMO", "1")
    recipe = recipes.load(ROOT / "configs" / "smoke-cpu.yaml")
    recipe.data.path = str(recipe.dataset_path())  # the bundled sample: demo mode's own data
    text = recipe.to_yaml()
    current, message = train_tab.start_run(text, train_jobs.JOBS, "cpu-basic", TOKEN)
    assert "Not started" in message and "off in this demo studio" in message and TOKEN not in message
    assert runs.run_folders() == []
    assert "off in this demo" in train_jobs.list_flavors(TOKEN)[1]


def test_the_train_tab_tells_an_unreachable_hub_in_words(monkeypatch):
    from huggingface_hub import constants

    from studio.ui.train import jobs as train_jobs
    from studio.ui.train import tab as train_tab

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    data = write_chats(workspace().datasets / "chats.jsonl")
    text = recipes.from_dict({"name": "jobs", "model": {"name": "embedded"}, "data": {"path": str(data)}}).to_yaml()
    _, message = train_tab.start_run(text, train_jobs.JOBS, "a10g-small", TOKEN)
    assert message.startswith("⚠️ Not started: Checking the token: could not reach the Hugging Face Hub at http://127.0.0.1:9")
    flavors, note = train_jobs.list_flavors("")
    assert "could not reach the Hugging Face Hub" in note and "Traceback" not in note + message and TOKEN not in message
    assert runs.run_folders() == []


def test_a_jobs_run_whose_follower_died_says_so_and_the_live_view_names_the_job(tmp_path):
    from studio.ui.train.live import progress_html

    run = workspace().runs / "job-run"
    run.mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    job = {"job_id": "abc123", "flavor": "a10g-small", "url": "https://huggingface.co/jobs/me/abc123"}
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": dead, "created_at": runs.now_iso(), "hf_job": job}))
    status = runs.read_status(run)
    assert status["state"] == "failed" and "The process following Hugging Face job abc123 ended early" in status["error"]
    assert job["url"] in status["error"]
    assert "on Hugging Face Jobs (a10g-small, job <a href='https://huggingface.co/jobs/me/abc123'" in progress_html(status, [], "job-run")


# ---------------------------------------------------------------- real jobs on the stand-in


def _spec_hides_the_token(job) -> None:
    assert job.spec["secrets"] == {"HF_TOKEN": TOKEN}  # the token reached the job as a secret only
    assert TOKEN not in json.dumps(job.spec["environment"]) and TOKEN not in json.dumps(job.spec["command"])


@pytest.mark.slow  # a real job: the tiny model trains 3 steps in the stand-in's subprocess (~25 s on 2 cores)
def test_cli_round_trip_logs_metrics_status_and_adapter(hub, tiny_model_dir, tmp_path):
    recipe_file = tmp_path / "jobs.yaml"
    recipe_file.write_text(job_recipe(tiny_model_dir).to_yaml())
    env = dict(os.environ, HF_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(recipe_file), "--on", "hf-jobs", "--flavor", "cpu-basic"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "queued on the Hub" in done.stdout and "step 3/3  train" in done.stdout and "completed at step 3" in done.stdout
    assert "warning:" not in done.stderr  # three steps of a tiny model fit cpu-basic and its time limit
    [run] = runs.run_folders()
    planned = json.loads((run / runs.FORECAST_FILE).read_text())  # the forecast for that flavor, made before sending it
    assert planned["fits"] and "cpu-basic" in planned["speed"]["how"] and "prices from the Hub" in planned["flavors_note"]
    status = runs.read_status(run)
    assert status["state"] == "completed" and status["step"] == 3 and status["total_steps"] == 3
    [job] = hub.jobs.values()
    record = status["hf_job"]
    assert record["job_id"] == job.id and record["flavor"] == "cpu-basic" and record["endpoint"] == hub.endpoint
    assert record["repo_id"] == f"standin-user/studio-job-{run.name}" and record["source"]["commit"]
    assert hub.repo("dataset", record["repo_id"]).private
    _spec_hides_the_token(job)
    log = (run / "train.log").read_text()
    assert f"Hugging Face job {job.id}" in log and "completed at step 3" in log and "STUDIO-" not in log
    source = log.split("studio source ", 1)[1].split(" at ", 1)[1].split(",")[0]
    assert Path(source).is_relative_to(job.scratch), "the job must run the studio source it downloaded"
    metrics = runs.read_metrics(run)
    assert [m["step"] for m in metrics if m["split"] == "train"] == [1, 2, 3] and any(m["split"] == "eval" for m in metrics)
    assert [info.run_id for info in runs.list_runs()] == [run.name]  # in the run history like any run
    assert runs.list_runs()[0].where == "hf-jobs:cpu-basic"  # and marked as trained on Jobs (studio runs, Train tab)
    # The adapter is where a local run keeps it, naming this machine's base model: Chat loads it.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.chat import tuned

    source = tuned.tuned_source(run)
    assert source.kind == "adapter" and source.path.parent == run
    tuned.check_adapter_base(source.path, str(tiny_model_dir))
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run / "adapter")
    assert any("lora_B" in name and param.abs().sum() > 0 for name, param in loaded.named_parameters())  # trained, not zero
    assert (run / "adapter" / "recipe.yaml").read_text() == (run / "recipe.yaml").read_text()
    assert files_holding(workspace().root, TOKEN) == [] and files_holding(tmp_path, TOKEN) == []
    assert {auth for _, _, auth in hub.requests} == {f"Bearer {TOKEN}"}  # every call the job and the follower made carried it


@pytest.mark.slow  # a job whose worker fails on a broken model folder (~10 s)
def test_a_failing_job_reads_failed_with_the_workers_error(hub, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    recipe = job_recipe(tiny_model_dir)
    recipe.model.name = str(broken)
    run = hf_jobs.submit(recipe, "cpu-basic", TOKEN)
    status = runs.wait(run, timeout=240)
    assert status["state"] == "failed", status
    assert "the full traceback is in train.log" in status["error"] and "Last lines of train.log" in status["error"]
    assert next(iter(hub.jobs.values())).stage == "ERROR"
    assert files_holding(workspace().root, TOKEN) == []


# ---------------------------------------------------------------- the Train tab, through the real queue API


def _post(base: str, session: str, fn_index: int, data: list, trigger_id) -> str:
    """Join the queue like the page does; the session's SSE stream up to this event's end."""
    joined = httpx.post(f"{base}/gradio_api/queue/join", timeout=30, json={
        "data": data, "event_data": None, "fn_index": fn_index, "trigger_id": trigger_id, "session_hash": session})
    assert joined.status_code == 200, joined.text
    event_id, seen = joined.json()["event_id"], []
    with httpx.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(line)
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    break
    return "\n".join(seen)


@pytest.mark.slow  # a real job, cancelled once it trains (~20 s)
def test_train_tab_lists_flavors_starts_a_job_and_stop_cancels_it(hub, tiny_model_dir):
    from studio.ui.app import build_app
    from studio.ui.train import jobs as train_jobs

    app = build_app().queue(default_concurrency_limit=4)
    base = f"http://127.0.0.1:{launch_on_free_port(app)}"
    try:
        named = {fn.name: (index, fn) for index, fn in app.fns.items()}
        session = uuid.uuid4().hex

        def call(name: str, data: list) -> str:
            index, fn = named[name]
            return _post(base, session, index, data, fn.targets[0][0] if fn.targets else None)

        listed = call("list_flavors", [TOKEN])
        assert "a10g-small: 1x A10G 24 GB" in listed and TOKEN not in listed
        text = job_recipe(tiny_model_dir, max_steps=100000, eval_steps=100000, save_steps=100000).to_yaml()
        started = call("start_run", [text, train_jobs.JOBS, "cpu-basic", TOKEN])
        assert "Sent `jobs-" in started and TOKEN not in started, started
        [run] = runs.run_folders()
        planned = json.loads((run / runs.FORECAST_FILE).read_text())
        assert [row["flavor"] for row in planned["flavors"]] and "cpu-basic" in planned["speed"]["how"]
        wait_for(lambda: runs.read_metrics(run), timeout=180, poll=0.5)  # the job trains; its metrics arrive here
        assert runs.read_status(run)["state"] == "running" and runs.active_run() is None  # no local slot taken
        stopping = call("stop_run", [None])
        assert "the Hugging Face job is cancelled" in stopping
        status = runs.wait(run, timeout=60)
        assert status["state"] == "stopped" and status["error"] is None
        assert next(iter(hub.jobs.values())).stage == "CANCELED"
        _spec_hides_the_token(next(iter(hub.jobs.values())))
        assert files_holding(workspace().root, TOKEN) == []
    finally:
        app.close()
        time.sleep(0.2)
