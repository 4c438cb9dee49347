"""The follower of a Hugging Face Jobs run: `python -m core.train.hf_job_follow RUN_DIR`, started by
core.train.hf_jobs.submit in its own session, so a closed browser or a restarted UI leaves it going.

It plays the worker's part for a run that trains elsewhere. A thread streams the job's log
(`fetch_job_logs(follow=True)`) into train.log (this process's stdout) and turns marker lines
(core.train.hf_job_remote) into metrics.jsonl, completions.jsonl and status.json's step. The main
loop polls `inspect_job` and maps the job's stage to the run's state: SCHEDULING is `queued`,
RUNNING `running`, COMPLETED `completed` once the results are downloaded, ERROR and DELETED
`failed` (with the job's error), CANCELED `stopped`. A stop request (the run folder's stop file,
written by Stop in the UI or Ctrl-C in `studio train`) cancels the job. When the job completes, its
results/ come down into the run folder where a local run keeps them (adapter/ or model/, best/,
metrics.jsonl, eval/), with this machine's recipe and base model written into them, so Chat and
Export treat the run like any other. Its pid is the run's pid: if it dies, the run reads `failed`.
The token is HF_TOKEN in this process's environment; nothing it writes contains it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from core.clients import hub_api
from core.train import webhook
from core.train.hf_job_remote import MARKERS, RESULTS, parse_marker
from core.train.hf_jobs import JobsError, hub_call, scrub
from core.train.run_dir import (
    BEST,
    FINAL,
    LOG_FILE,
    RECIPE_FILE,
    STATUS_FILE,
    STOP_FILE,
    append_record,
    now_iso,
    read_recipe,
    tail_log,
    update_status,
)
from core.workspace import atomic_path, read_json

POLL_S = 2.0
LOST_AFTER_S = 600.0  # this long without an answer from the Hub and the run is given up as failed
STAGES = {"SCHEDULING": "queued", "RUNNING": "running"}
KEPT_HERE = {STATUS_FILE, RECIPE_FILE, LOG_FILE, STOP_FILE}  # the job's copies of these don't replace ours


class Follower:
    def __init__(self, run: Path, token: str | None, poll: float = POLL_S):
        self.run, self.token, self.poll = run, token, poll
        self.job = json.loads((run / STATUS_FILE).read_text(encoding="utf-8"))["hf_job"]
        self.api = hub_api(token, self.job["endpoint"])
        self.lock = threading.Lock()
        self.job_error: str | None = None  # the worker's own error, as the job's log said it
        self.lines_seen = 0
        self.finished = threading.Event()

    # ---------------------------------------------------------------- the log stream

    def say(self, text: str) -> None:
        with self.lock:
            print(scrub(text, self.token), flush=True)

    def stream_logs(self) -> None:
        """The job's log, line by line, until the job ends; a broken stream reconnects and skips
        the lines it already wrote (the Hub replays a job's log from its start)."""
        told = False
        while not self.finished.is_set():
            seen = 0
            try:
                for line in self.api.fetch_job_logs(job_id=self.job["job_id"], namespace=self.job["namespace"], follow=True):
                    seen += 1
                    if seen > self.lines_seen:
                        self.lines_seen, told = seen, False
                        self.take(line)
                return
            except Exception as error:  # noqa: BLE001 - any stream failure: say so once, wait, reconnect
                if not told:
                    self.say(f"[studio] the job's log stream broke ({type(error).__name__}); reconnecting")
                told = True
                self.finished.wait(5.0)

    def take(self, line: str) -> None:
        found = parse_marker(line)
        if found is None:
            self.say(line)
            return
        kind, record = found
        if MARKERS.get(kind):
            with self.lock:
                append_record(self.run, MARKERS[kind], record)
        elif kind == "STATUS":
            if record.get("error"):
                self.job_error = scrub(str(record["error"]), self.token)
            fields = {key: record[key] for key in ("step", "total_steps", "epoch", "evaluation") if record.get(key) is not None}
            if fields:
                with self.lock:
                    update_status(self.run, **fields)

    # ---------------------------------------------------------------- the job's stage

    def follow(self) -> str:
        """Follow the job to its end; returns the run's final state."""
        self.say(f"[studio] Hugging Face job {self.job['job_id']} on {self.job['flavor']}: {self.job.get('url') or ''}")
        with self.lock:  # a promise the UI's poll keeps if this process dies first, as the worker's is
            update_status(self.run, notify_pending=bool(webhook.webhook_url()))
        logs = threading.Thread(target=self.stream_logs, name="job-logs", daemon=True)
        logs.start()
        stage, cancelled, last_answer, message = "SCHEDULING", False, time.monotonic(), None
        while True:
            if (self.run / STOP_FILE).exists() and not cancelled:
                cancelled = self._cancel()
            try:
                info = hub_call("Asking for the job's state", self._inspect, self.token, self.job["endpoint"])
                stage, message, last_answer = str(getattr(info.status.stage, "value", info.status.stage)), info.status.message, \
                    time.monotonic()
            except JobsError as error:
                if time.monotonic() - last_answer > LOST_AFTER_S:
                    return self._end("failed", f"Lost contact with the Hub for {LOST_AFTER_S / 60:.0f} minutes: {error} "
                                               f"The job may still run: {self.job.get('url')}")
            if stage in STAGES:
                self._set_state(STAGES[stage])
            else:
                break
            time.sleep(self.poll)
        logs.join(timeout=30)  # the stream ends with the job; give its last lines a moment
        self.finished.set()
        return self._finish(stage, message, cancelled)

    def _inspect(self):
        return self.api.inspect_job(job_id=self.job["job_id"], namespace=self.job["namespace"])

    def _cancel(self) -> bool:
        try:
            hub_call("Cancelling the job", lambda: self.api.cancel_job(job_id=self.job["job_id"], namespace=self.job["namespace"]),
                     self.token, self.job["endpoint"])
        except JobsError as error:
            self.say(f"[studio] {error}")
            return False
        self.say("[studio] stop requested: the Hugging Face job was cancelled")
        return True

    def _set_state(self, state: str) -> None:
        with self.lock:
            status = json.loads((self.run / STATUS_FILE).read_text(encoding="utf-8"))
            if status.get("state") != state:
                update_status(self.run, state=state)

    def _finish(self, stage: str, message: str | None, cancelled: bool) -> str:
        if stage == "COMPLETED":
            try:
                hub_call("Downloading the job's results", self._download, self.token, self.job["endpoint"])
            except (JobsError, OSError) as error:
                return self._end("failed", f"The job completed, but its results could not be downloaded: {error} "
                                           f"They are in {self.job['repo_id']} (results/).")
            return self._end("completed", None)
        if stage == "CANCELED":
            self.say("[studio] the job was cancelled" + ("" if cancelled else " on the Hub"))
            return self._end("stopped", None)
        why = self.job_error or message or ("The job was deleted on the Hub." if stage == "DELETED" else f"The job ended as {stage}.")
        return self._end("failed", f"{why}\nLast lines of train.log:\n{tail_log(self.run, 15)}")

    def _end(self, state: str, error: str | None) -> str:
        with self.lock:
            update_status(self.run, state=state, ended_at=now_iso(), error=scrub(error, self.token) if error else None)
        (self.run / STOP_FILE).unlink(missing_ok=True)
        self.say(f"[studio] {state}")

        try:
            webhook.notify_webhook(self.run)
        except Exception as error:  # noqa: BLE001 - the run is done; say why and go on
            self.say(f"[studio] after the run: {type(error).__name__}: {error}")
        return state

    # ---------------------------------------------------------------- results

    def _download(self) -> None:
        from huggingface_hub import snapshot_download

        landing = self.run / ".job-results.partial"
        shutil.rmtree(landing, ignore_errors=True)
        snapshot_download(self.job["repo_id"], repo_type=self.job["repo_type"], local_dir=landing, allow_patterns=[f"{RESULTS}/*"],
                          token=self.token or False, endpoint=self.job["endpoint"])
        results = landing / RESULTS
        job_status = read_json(results / STATUS_FILE)
        for item in sorted(results.iterdir()) if results.is_dir() else []:
            if item.name in KEPT_HERE:
                continue
            with atomic_path(self.run / item.name) as partial:  # metrics.jsonl too: the job's own file, whole
                shutil.move(item, partial)
        shutil.rmtree(landing, ignore_errors=True)
        self._localize()
        fields = {key: job_status[key] for key in ("step", "total_steps", "epoch", "evaluation") if job_status.get(key) is not None}
        with self.lock:
            update_status(self.run, **fields)
        self.say(f"[studio] results downloaded into {self.run}")

    def _localize(self) -> None:
        """The artifacts name this machine's base model and carry this machine's recipe (the job's
        paths exist only in the job), as a local run's artifacts do."""
        recipe_text = (self.run / RECIPE_FILE).read_text(encoding="utf-8")
        model = (read_recipe(self.run).get("model") or {}).get("name")
        for name in (BEST, *FINAL):
            folder = self.run / name
            if not folder.is_dir():
                continue
            (folder / RECIPE_FILE).write_text(recipe_text, encoding="utf-8")
            config = folder / "adapter_config.json"
            if config.is_file() and model and self.job.get("model_sent") == "folder":
                data = json.loads(config.read_text(encoding="utf-8"))
                data["base_model_name_or_path"] = model
                config.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run = Path(argv[0]).resolve()
    follower = Follower(run, os.environ.get("HF_TOKEN"))
    os.environ.pop("HF_TOKEN", None)  # held by the follower; nothing this process starts needs it
    state = follower.follow()
    return 0 if state in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
