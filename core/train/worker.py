"""The worker: `python -m core.train.worker RUN_DIR [--resume last|CHECKPOINT]`.

Runs the recipe saved in RUN_DIR/recipe.yaml and records the outcome in status.json:
`completed`, `stopped` (a stop request or SIGTERM: a checkpoint was saved first) or `failed`
(with the last lines of the error). stdout and stderr go to train.log (core.train.runs opens it).
Under `accelerate launch` only the main process writes the run files. This module knows
nothing about the UI; it is the process core.train.runs starts.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

from core import recipes
from core.hosting import demo_mode
from core.train import cpu_memory, queue, runs, webhook


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _several_processes() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.train.worker", description="Run one training run folder.")
    parser.add_argument("run_dir")
    parser.add_argument("--resume", default=None, help="'last' or a checkpoint folder")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    cpu_memory.bound()  # before torch's first matmul: the primitive cache is sized then

    main_process = _is_main_process()

    def update(**fields):
        if main_process:
            runs.update_status(run_dir, **fields)

    previous = runs.read_status(run_dir)
    # Under accelerate the pid in status.json stays the launcher's: the run lives while any rank does.
    own_pid = {} if _several_processes() else {"pid": os.getpid()}
    update(state="running", started_at=previous.get("started_at") or runs.now_iso(), ended_at=None, error=None, **own_pid)

    if main_process:  # a new outcome is coming (a resumed run notifies again)
        (run_dir / webhook.CLAIM_FILE).unlink(missing_ok=True)
    # A promise the UI's poll keeps if this process dies before it can (core.train.webhook).
    update(notify_pending=bool(webhook.webhook_url()))
    prefix = f"[studio rank {os.environ.get('RANK', '0')}]" if _several_processes() else "[studio]"
    # SIGTERM (e.g. `kill PID`) is a polite stop: finish the step, save, end as `stopped`.
    signal.signal(signal.SIGTERM, lambda *_: (run_dir / runs.STOP_FILE).write_text("SIGTERM\n"))
    try:
        recipe = recipes.load(run_dir / runs.RECIPE_FILE)
        from core.train.training import train

        trainer, stopped = train(recipe, run_dir, resume=args.resume, update_status=update,
                                 log=lambda text: print(f"{prefix} {text}", flush=True))
    except BaseException as error:  # noqa: BLE001 - every failure must land in status.json
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        update(state="failed", ended_at=runs.now_iso(), error=_readable(error))
        _after(run_dir, main_process)
        return 1
    step = trainer.state.global_step
    evaluate = main_process and not stopped and wants_evaluation(recipe)
    extra = {"evaluation": {"state": "running"}} if evaluate else {}  # set with the state, so no reader sees a gap
    update(state="stopped" if stopped else "completed", ended_at=runs.now_iso(), step=step, **extra)
    if main_process:
        (run_dir / runs.STOP_FILE).unlink(missing_ok=True)
    print(f"{prefix} {'stopped' if stopped else 'completed'} at step {step}", flush=True)
    if evaluate:
        del trainer  # let the trained model go before the evaluation process loads its own
        _evaluate(run_dir)
    _after(run_dir, main_process)
    return 0


def wants_evaluation(recipe) -> bool:
    """The regression guard runs when the recipe names a prompt set and asks for it; never in
    demo mode (a shared CPU Space must not spend minutes answering prompts after every run)."""
    return bool((recipe.eval.prompts or recipe.eval.benchmarks) and recipe.eval.after_training) and not demo_mode()


def _evaluate(run_dir: Path) -> None:
    """Base vs best on the recipe's prompt set, in its own process: the training model's memory
    is freed first, and the evaluation room (core.eval, a layer above this one) is reached
    through its command line rather than imported. Its output joins train.log."""
    import gc
    import subprocess

    gc.collect()
    print("[studio] evaluating base vs the best checkpoint on the recipe's prompt set", flush=True)
    subprocess.run([sys.executable, "-m", "core.eval.guard", str(run_dir)], check=False)


def _after(run_dir: Path, main_process: bool) -> None:
    """The run has its final state: tell the webhook, then hand the slot to the next queued run.
    Neither may turn a finished run into a failed one."""
    if not main_process:
        return

    for step in (lambda: webhook.notify_webhook(run_dir), queue.start_next):
        try:
            step()
        except Exception as error:  # noqa: BLE001 - the run itself is done; say why and go on
            print(f"[studio] after the run: {type(error).__name__}: {error}", flush=True)


def _readable(error: BaseException) -> str:
    """The person-facing message; the traceback is in train.log for whoever debugs."""
    return f"{type(error).__name__}: {error} (the full traceback is in train.log)"


if __name__ == "__main__":
    sys.exit(main())
