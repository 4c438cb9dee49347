"""`studio queue` and `studio sweep`: the run queue and grid sweeps from a terminal.

Registered by studio.cli with `add_parsers(sub)` and `HANDLERS`; every handler calls core
(core.train.queue, core.train.sweeps) and prints plain text or, with --json, one JSON object.
"""

from __future__ import annotations

import sys

from core import recipes
from core.train import queue, sweeps
from studio.cli.output import print_json


def add_parsers(sub) -> None:
    queue = sub.add_parser("queue", help="list the runs waiting to train; move, cancel, or start the next one")
    queue.add_argument("action", nargs="?", default="list", choices=["list", "move", "cancel", "next"],
                       help="list (default), move RUN WHERE, cancel RUN, next (start the first if nothing trains)")
    queue.add_argument("run", nargs="?", default=None, help="run id (for move and cancel)")
    queue.add_argument("where", nargs="?", default=None, choices=["up", "down", "top", "bottom"], help="for move")
    queue.add_argument("--json", action="store_true", help="print one JSON object")

    sweep = sub.add_parser("sweep", help="queue a recipe over a small grid, or compare a sweep's runs")
    sweep.add_argument("recipe", nargs="?", default=None, help="recipe YAML file (omit with --compare or --list)")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                       help="values to sweep, e.g. training.learning_rate=1e-4,3e-4 --grid lora.r=8,16")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field for every run")
    sweep.add_argument("--accelerate-config", default=None, metavar="FILE", help="accelerate config file for every run")
    sweep.add_argument("--compare", default=None, metavar="SWEEP_ID",
                       help="print the sweep's comparison table: losses and, for runs evaluated after training, "
                            "the prompt set's verdict")
    sweep.add_argument("--list", action="store_true", help="list the sweeps in this workspace")
    sweep.add_argument("--json", action="store_true", help="print one JSON object")



def cmd_queue(args) -> int:
    if args.action in ("move", "cancel") and not args.run:
        print(f"error: studio queue {args.action} needs a run id (see: studio queue)", file=sys.stderr)
        return 2
    if args.action == "move":
        if not args.where:
            print("error: studio queue move RUN needs where: up, down, top or bottom", file=sys.stderr)
            return 2
        queue.move(args.run, args.where)
    elif args.action == "cancel":
        queue.cancel(args.run)
    elif args.action == "next":
        started = queue.start_next()
        print(f"started {started.name}" if started else "nothing started (a run is training, or the queue is empty)",
              file=sys.stderr if args.json else sys.stdout)
    waiting = queue.waiting_runs()
    if args.json:
        print_json({"queue": [{"position": n, "run_id": i.run_id, "sweep": i.sweep} for n, i in enumerate(waiting, 1)]})
    elif not waiting:
        print("the queue is empty")
    else:
        for n, info in enumerate(waiting, 1):
            print(f"{n:>3}. {info.run_id}" + (f"  (sweep {info.sweep})" if info.sweep else ""))
    return 0


def cmd_sweep(args) -> int:
    if args.list:
        records = sweeps.list_sweeps()
        if args.json:
            print_json({"sweeps": records})
        for record in [] if args.json else records:
            print(f"{record['sweep_id']}: {len(record['runs'])} runs over {', '.join(record['grid'])}")
        return 0
    if args.compare:
        rows = sweeps.compare(args.compare)
        best = sweeps.best_runs(rows)
        print_json({"sweep_id": args.compare, "runs": rows, "best": best}) if args.json else _print_table(rows, best)
        return 0
    if not args.recipe:
        print("error: name a recipe (studio sweep RECIPE --grid FIELD=V1,V2), or use --compare / --list", file=sys.stderr)
        return 2
    recipe = recipes.load(args.recipe, args.set)
    record = sweeps.submit(recipe, sweeps.parse_grid(args.grid), accelerate_config=args.accelerate_config)
    if args.json:
        print_json(record)
    else:
        print(f"sweep {record['sweep_id']}: {len(record['runs'])} runs queued (the first starts when nothing trains)")
        for entry in record["runs"]:
            print(f"  {entry['run_id']}  " + ", ".join(f"{k}={v}" for k, v in entry["params"].items()))
        print(f"compare them with: studio sweep --compare {record['sweep_id']}")
    return 0


def _print_table(rows: list[dict], best: dict) -> None:
    """The comparison as aligned columns (the verdict, last, unpadded), then the picks."""
    if not rows:
        print("no runs")
        return

    headers, cells = sweeps.table(rows)
    text = [headers] + [[_text(value) for value in line] for line in cells]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers) - 1)]
    for line in text:
        print("  ".join([value.ljust(width) for value, width in zip(line, widths)] + [line[-1]]).rstrip())
    if best["eval_loss"]:
        print(f"\nlowest eval loss: {best['eval_loss']}")
    if best["prompt_set"]:
        print(f"best on the prompt set (nothing regressed, best {best['metric']}): {best['prompt_set']}")
    if any(row["evaluation"]["state"] == "done" for row in rows):
        print("⚑ = a change beyond its 95% interval; each evaluated run's report: runs/<run>/eval/report.md")


def _text(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("-" if value is None else str(value))


HANDLERS = {"queue": cmd_queue, "sweep": cmd_sweep}
