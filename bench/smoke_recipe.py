"""The smoke recipe end to end, as a person waits for it: libraries, model load, tokenizing,
training, evaluation, checkpoints and the final adapter, in one process through the studio's
own `core.train.training.train` (what the worker runs), into a scratch run folder.

Printed: the whole wall time, the time inside optimizer steps (step begin to step end: forward,
backward, optimizer), and the share spent outside them, split into before the first step
(imports, model, data), between steps (logging, evaluation, checkpoints) and after the last step
(the final adapter). Target (issue #15): outside share under 15%. Pass `--set` overrides as to
`studio train` (e.g. `--set training.max_steps=10` for a quicker look; the README's time is the
full recipe).

    python bench/smoke_recipe.py [--recipe configs/smoke-cpu.yaml] [--set key=value ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()  # before any library: imports are part of what a person waits for
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def step_clock():
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """Begin and end of every optimizer step, on the bench's clock."""

        def __init__(self):
            self.spans: list[tuple[float, float]] = []
            self._begin = None

        def on_step_begin(self, args, state, control, **kwargs):
            self._begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.spans.append((self._begin, time.perf_counter()))

    return StepClock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "smoke-cpu.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from core import recipes
    from core.train import training

    recipe = recipes.load(args.recipe, args.overrides)
    clock = step_clock()
    build = training.build_trainer

    def build_with_clock(*positional, callbacks=(), **named):
        return build(*positional, callbacks=[*callbacks, clock], **named)

    training.build_trainer = build_with_clock  # the studio's trainer, plus the bench's clock
    with tempfile.TemporaryDirectory() as scratch:
        began = time.perf_counter()
        trainer, _ = training.train(recipe, Path(scratch) / "run", log=lambda text: None)
        ended = time.perf_counter()
        saved = sorted(p.name for p in (Path(scratch) / "run").iterdir())
    spans = clock.spans
    steps_s = sum(end - begin for begin, end in spans)
    total = ended - START
    results = {
        "recipe": Path(args.recipe).name, "overrides": args.overrides, "steps": len(spans),
        "total_s": round(total, 1), "imports_s": round(began - START, 1), "steps_s": round(steps_s, 1),
        "before_first_step_s": round(spans[0][0] - START, 1) if spans else None,
        "between_steps_s": round(sum(b[0] - a[1] for a, b in itertools.pairwise(spans)), 1),
        "after_last_step_s": round(ended - spans[-1][1], 1) if spans else None,
        "outside_share": round(1 - steps_s / total, 3), "run_folder": saved,
        "final_train_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else None,
    }
    for key, value in results.items():
        print(f"{key:>20}  {value}")
    print(f"smoke recipe: {results['total_s']} s end to end, {results['outside_share']:.0%} outside optimizer steps "
          f"(target < 15%)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
