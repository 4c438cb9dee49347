"""`studio train RECIPE --on hf-jobs --flavor FLAVOR`: the recipe trained on Hugging Face Jobs and
followed here like a local run; `studio train --on hf-jobs --list-flavors` lists the hardware.

Registered by studio.cli: `add_train_options(train_parser)` and `train(local_handler)`, which
sends Jobs runs here and everything else to the local handler. The token is HF_TOKEN only (a
command-line argument would show in the process list). Every failure the studio explains
(no token, the Hub unreachable, an unknown flavor) is one `error:` line and exit 2.
"""

from __future__ import annotations

import sys
import time

from core import recipes
from core.errors import StudioError
from core.train import forecast as forecasts
from core.train import hf_jobs, runs
from core.train.hf_jobs import DEFAULT_IMAGE, DEFAULT_TIMEOUT, IMAGE_ENV
from studio.cli import runs as cli_runs
from studio.cli.output import metric_line, print_json

WHERE = ("local", "hf-jobs")


def add_train_options(train) -> None:
    train.add_argument("--on", choices=WHERE, default="local",
                       help="where to train: this machine (default) or hf-jobs, Hugging Face Jobs (token from HF_TOKEN)")
    train.add_argument("--flavor", default=None, help="with --on hf-jobs: the hardware, e.g. a10g-small (see --list-flavors)")
    train.add_argument("--list-flavors", action="store_true", help="list the Jobs hardware the Hub offers now, and exit")
    train.add_argument("--image", default=None, help=f"with --on hf-jobs: a Docker image with torch (default: {IMAGE_ENV} or "
                                                     f"{DEFAULT_IMAGE})")
    train.add_argument("--timeout", default=DEFAULT_TIMEOUT, help="with --on hf-jobs: the job's time limit, e.g. 90m or 8h")


def train(local):
    """The `studio train` handler: Jobs runs and the flavor list here, a local run to `local`."""

    def handler(args) -> int:
        if args.on == "hf-jobs" and not args.dry_run or args.list_flavors:
            return cmd_train_job(args)
        if not args.recipe:
            print("error: name a recipe file, e.g. studio train configs/smoke-cpu.yaml", file=sys.stderr)
            return 2
        return local(args)

    return handler



def _refuse(args, message: str) -> int:
    if args.json:
        print_json({"ok": False, "error": message})
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_train_job(args) -> int:
    try:
        if args.list_flavors:
            return _list_flavors(args, hf_jobs.flavors())
        for given, flag in ((args.resume, "--resume"), (args.run_dir, "--run-dir"), (args.accelerate_config, "--accelerate-config")):
            if given:
                return _refuse(args, f"{flag} is for runs on this machine, not with --on hf-jobs")
        if not args.recipe or not args.flavor:
            return _refuse(args, "--on hf-jobs needs a recipe and --flavor, e.g. studio train RECIPE --on hf-jobs --flavor a10g-small "
                                 "(studio train --on hf-jobs --list-flavors lists them)")
        recipe = recipes.load(args.recipe, args.set)
        # Said before the job is sent: a flavor too small, or a run longer than the job may last.
        planned = forecasts.quick(recipe, flavor=args.flavor, time_limit_s=hf_jobs.timeout_seconds(args.timeout))
        run = hf_jobs.submit(recipe, args.flavor, image=args.image, timeout=args.timeout)
    except StudioError as error:
        return _refuse(args, str(error))
    if planned:
        runs.save_forecast(run, planned.to_json())
        for warning in planned.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    job = hf_jobs.job_record(run) or {}
    if not args.json:
        print(f"job {job.get('job_id')} on {job.get('flavor')}: {job.get('url')}\nrun {run} (log: {run / runs.LOG_FILE})")
    status = follow(run, quiet=args.json)
    return cli_runs.report_run(run, status, as_json=args.json, extra={"hf_job": job})


def _list_flavors(args, found: list[dict]) -> int:
    if args.json:
        print_json({"flavors": found})
    for flavor in [] if args.json else found:
        print(("gpu  " if flavor["gpu"] else "cpu  ") + flavor["label"])
    return 0


def follow(run, *, quiet: bool) -> dict:
    """Print the job's state changes and metrics as the follower writes them; Ctrl-C cancels the
    job (twice: detach, the follower goes on)."""
    seen, state, stopping = 0, None, False
    while True:
        try:
            status = runs.read_status(run)
            if status.get("state") != state and not quiet:
                state = status.get("state")
                print({"queued": "queued on the Hub, waiting for the hardware", "running": "running"}.get(state, state))
            metrics = runs.read_metrics(run)
            for record in [] if quiet else metrics[seen:]:
                print(metric_line(record, status.get("total_steps")))
            seen = len(metrics)
            if status.get("state") not in runs.LIVE_STATES:
                return status
            time.sleep(1.0)
        except KeyboardInterrupt:
            if stopping:
                print(f"\ndetached; the job goes on and {run} keeps following it", file=sys.stderr)
                return runs.read_status(run)
            stopping = True
            print("\nstopping: cancelling the Hugging Face job (Ctrl-C again to detach)", file=sys.stderr)
            runs.stop(run)
