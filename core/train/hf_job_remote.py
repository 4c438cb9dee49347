"""The job side of a Hugging Face Jobs run: `python -m core.train.hf_job_remote WORK`, started by
the job's command (core.train.hf_jobs.BOOTSTRAP) from the studio source the run sent.

It downloads the run's inputs from its repo (job.json, recipe.yaml, data/, model/), builds a run
folder under WORK as a local run has it, and starts the same worker a local run uses; the worker's
output is the job's log. While it trains, each new metrics record, GRPO completion and status
change is printed as one marker line (`STUDIO-METRIC {json}`...), which the follower on the user's
machine turns back into the run folder's files. At the end the run folder (without checkpoints)
goes to the repo's results/ and the job exits 0 when the run completed. The token is the job's
HF_TOKEN secret, read by huggingface_hub itself. This module also owns the marker format
(`marker`, `parse_marker`) both sides use; it knows nothing about the UI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from core import recipes
from core.clients import hub_api, resolve_token
from core.train import runs
from core.train.run_dir import COMPLETIONS_FILE, METRICS_FILE, STATUS_FILE
from core.workspace import workspace

MARKERS = {"METRIC": METRICS_FILE, "COMPLETION": COMPLETIONS_FILE, "STATUS": None, "RESULTS": None}
_MARKER = re.compile(r"STUDIO-(METRIC|COMPLETION|STATUS|RESULTS) (\{.*\})\s*$")
STATUS_KEYS = ("state", "step", "total_steps", "epoch", "error", "evaluation")
RESULTS = "results"
LEFT_BEHIND = ["checkpoints/*", "*.partial", "*.partial/*", "stop-requested", "train.log", ".webhook-sent"]


def marker(kind: str, record: dict) -> str:
    return f"STUDIO-{kind} {json.dumps(record, ensure_ascii=False)}"


def parse_marker(line: str) -> tuple[str, dict] | None:
    """(kind, record) of a marker line, also when a progress bar's partial line ran into it."""
    found = _MARKER.search(line)
    if not found:
        return None
    try:
        record = json.loads(found.group(2))
    except json.JSONDecodeError:
        return None
    return (found.group(1), record) if isinstance(record, dict) else None


class Relay:
    """Prints what the worker adds to the run folder as marker lines: new lines of the JSONL files
    (complete ones only) and each change of status."""

    def __init__(self, run: Path):
        self.run = run
        self.offsets = {name: 0 for name in MARKERS.values() if name}
        self.last_status: dict = {}

    def __call__(self) -> None:
        for kind, name in MARKERS.items():
            if name:
                for line in self._new_lines(name):
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    print(marker(kind, record), flush=True)
        try:
            status = json.loads((self.run / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return
        shown = {key: status.get(key) for key in STATUS_KEYS}
        if shown != self.last_status:
            self.last_status = shown
            print(marker("STATUS", shown), flush=True)

    def _new_lines(self, name: str) -> list[str]:
        path = self.run / name
        try:
            with open(path, "rb") as handle:
                handle.seek(self.offsets[name])
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for the next round
        self.offsets[name] += len(complete)
        return complete.decode("utf-8", errors="replace").splitlines()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    work = Path(argv[0]).resolve()
    repo = os.environ["STUDIO_JOB_REPO"]
    os.environ["STUDIO_HOME"] = str(work / "home")  # the job's own workspace: the run folder lives in it
    from huggingface_hub import snapshot_download

    inputs = Path(snapshot_download(repo, repo_type="dataset", local_dir=work / "inputs",
                                    allow_patterns=["job.json", "recipe.yaml", "data/*", "model/*"]))
    manifest = json.loads((inputs / "job.json").read_text(encoding="utf-8"))
    source = Path(__file__).resolve().parents[2]  # the tarball the run sent, unpacked: the code that trains
    print(f"[studio job] studio source {json.dumps(manifest.get('studio') or {})} at {source}, run {manifest['run_id']}", flush=True)
    recipe = recipes.load(inputs / "recipe.yaml")
    if manifest.get("model_folder"):
        recipe.model.name = str(inputs / manifest["model_folder"])
    run = runs.create_run(recipe, workspace().runs / manifest["run_id"])
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    worker = subprocess.Popen(runs.launch_command(recipe, run), cwd=Path.cwd(), env=env, stdin=subprocess.DEVNULL)
    relay = Relay(run)
    while worker.poll() is None:
        relay()
        time.sleep(1.0)
    relay()
    state = runs.read_status(run).get("state")
    api = hub_api(resolve_token(None))  # the job's HF_TOKEN secret
    uploaded = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(run), path_in_repo=RESULTS,
                                 ignore_patterns=LEFT_BEHIND, commit_message=f"Results of {manifest['run_id']} ({state})")
    print(marker("RESULTS", {"state": state, "commit": getattr(uploaded, "oid", None)}), flush=True)
    return 0 if state == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
