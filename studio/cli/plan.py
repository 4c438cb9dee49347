"""`studio plan RECIPE [--on hf-jobs] [--json]`: what a run will need before it starts: parameters,
peak memory by part and whether it fits (this machine, or each Jobs flavor with its cost), time as
a range, and the changes that would make it fit (core.train.forecast, the same numbers the Train
tab and `studio train --dry-run` show).

Registered by studio.cli (`add_parser`, `COMMAND`). Exit 0 when the run fits, 1 when it does not.
"""

from __future__ import annotations

from core import recipes
from core.errors import BadInput
from core.train import forecast as forecasts
from core.train import hf_jobs
from core.train.hf_jobs import DEFAULT_TIMEOUT
from studio.cli.output import print_json

COMMAND = "plan"


def add_parser(sub) -> None:
    plan = sub.add_parser("plan", help="forecast a run before it starts: memory, whether it fits, time, cost")
    plan.add_argument("recipe", help="recipe YAML file (see configs/)")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. training.batch_size=8")
    plan.add_argument("--on", choices=["local", "hf-jobs"], default="local",
                      help="where it would run: this machine (measured), or every Hugging Face Jobs flavor with its cost")
    plan.add_argument("--flavor", default=None, help="with --on hf-jobs: the flavor the run would take (its fit and time)")
    plan.add_argument("--timeout", default=None,
                      help="the time the run may take (e.g. 90m, 4h; with --on hf-jobs the job's limit, default "
                           f"{DEFAULT_TIMEOUT}): warn when it would take longer")
    plan.add_argument("--no-calibrate", action="store_true",
                      help="don't time a few real steps on this machine; assume a typical speed (faster, rougher)")
    plan.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from core.train import training  # torch: loaded when a plan is made, not when `studio` starts

    on_jobs = args.on == "hf-jobs"
    if args.flavor and not on_jobs:
        raise BadInput("--flavor is for --on hf-jobs (a Jobs hardware flavor)")
    limit = args.timeout or (DEFAULT_TIMEOUT if on_jobs else None)
    recipe = recipes.load(args.recipe, args.set)
    dry = training.plan(recipe)
    result = forecasts.forecast(recipe, dry, calibrate=not args.no_calibrate, on_jobs=on_jobs, flavor=args.flavor,
                                time_limit_s=hf_jobs.timeout_seconds(limit) if limit else None)
    if args.json:
        print_json({"recipe": recipe.name, "method": recipe.training.method, "tuning": recipe.training.tuning,
                    "model": recipe.model.name, "total_steps": dry["total_steps"], **result.to_json()})
    else:
        print(f"Recipe {recipe.name}: {recipe.training.method} with {recipe.training.tuning} on {recipe.model.name}, "
              f"{dry['total_steps']} steps")
        for line in forecasts.lines(result):
            print(line)
    return 0 if result.fits else 1
