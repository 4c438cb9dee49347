"""`studio runs`: the run history, a line per run (or one JSON object): state, steps, losses,
where it trained (this machine or Hugging Face Jobs), and why a failed run failed. Registered by
studio.cli's handler table."""

from __future__ import annotations

from core.train import runs
from core.train.estimate import human_time
from studio.cli.output import print_json


def cmd_runs(args) -> int:
    if getattr(args, "all", False):
        return _every_workspace(args)
    infos = runs.list_runs()
    if args.json:
        print_json({"runs": [{"run_id": i.run_id, "path": str(i.path), "state": i.state, "step": i.step,
                               "total_steps": i.total_steps, "started_at": i.started_at, "ended_at": i.ended_at,
                               "final_loss": i.final_loss, "best_eval_loss": i.best_eval_loss, "error": i.error,
                               "method": i.recipe.get("training", {}).get("method"),
                               "model": i.recipe.get("model", {}).get("name"), "where": i.where,
                               "precision": i.precision, "eta_s": i.eta_s, "forecast_s": i.forecast_s,
                               "duration_s": i.duration_s} for i in infos]})
        return 0
    if not infos:
        print("no runs yet; start one with: studio train configs/smoke-cpu.yaml")
        return 0
    print(f"{'run':40} {'state':10} {'step':>11} {'loss':>8} {'best eval':>9}  {'time (forecast)':24} where")
    for i in infos:
        loss = f"{i.final_loss:.4f}" if i.final_loss is not None else "-"
        best = f"{i.best_eval_loss:.4f}" if i.best_eval_loss is not None else "-"
        print(f"{i.run_id:40} {i.state:10} {f'{i.step}/{i.total_steps or chr(63)}':>11} {loss:>8} {best:>9}  "
              f"{time_against_forecast(i):24} {i.where}")
        if i.state == "failed" and i.error:
            print(f"  why: {first_line(i.error)}")
    return 0


def time_against_forecast(info) -> str:
    """So far (and, while it trains, the time left at its pace) beside what the forecast said, so a
    run far off its plan shows early."""
    if info.duration_s is None:
        return "-"
    shown = human_time(info.duration_s) + (f" + {human_time(info.eta_s)} left" if info.eta_s is not None else "")
    return shown + (f" ({human_time(info.forecast_s)})" if info.forecast_s else "")


def _every_workspace(args) -> int:
    """`studio runs --all`: the operator's view of a shared studio, every visitor's runs with their owner."""
    pairs = runs.every_visitors_runs()
    if args.json:
        print_json({"runs": [{"owner": key, "run_id": i.run_id, "path": str(i.path), "state": i.state, "step": i.step,
                               "total_steps": i.total_steps, "started_at": i.started_at, "final_loss": i.final_loss}
                              for key, i in pairs]})
        return 0
    print(f"{'owner':32} {'run':40} {'state':10} {'step':>11}")
    for key, i in pairs:
        print(f"{key or '(server)':32} {i.run_id:40} {i.state:10} {f'{i.step}/{i.total_steps or chr(63)}':>11}")
    return 0


def first_line(error: str, limit: int = 200) -> str:
    """The reason a run failed, in one line: status.json's error without the log tail it carries."""
    line = next((part.strip() for part in error.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def report_run(run_dir, status: dict, *, as_json: bool, extra: dict | None = None) -> int:
    """The end of `studio train` (here or on Jobs): one JSON object, or the outcome in a line.
    Exit code 1 when the run failed."""
    import sys

    info = runs.run_info(run_dir)
    if as_json:
        print_json({"run_dir": str(run_dir), "state": info.state, "step": info.step, "total_steps": info.total_steps,
                     "final_loss": info.final_loss, "best_eval_loss": info.best_eval_loss, "error": info.error,
                     **(extra or {}),
                     "artifacts": {label: str(path) for label, path in runs.model_artifacts(run_dir)}})
    elif status.get("state") == "failed":
        print(f"\nfailed: {status.get('error')}", file=sys.stderr)
    else:
        print(f"\n{status.get('state')} at step {status.get('step')}; results in {run_dir}")
    return 1 if status.get("state") == "failed" else 0
