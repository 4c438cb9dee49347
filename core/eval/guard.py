"""The regression guard: evaluate base vs tuned weights on a prompt set and write the report.

`evaluate` is the whole pipeline behind `studio eval` and the after-training guard: load the
prompt set (retrieving contexts with BM25 when it points at a document folder), answer every
prompt with the base and the tuned side (same prompts, settings and seed), optionally judge the
pairs, measure held-out loss on the run's eval split, score general-skill benchmarks on base and
every kept checkpoint (core.eval.benchmarks: did it forget?), build the report with its verdict and
save it. `python -m core.eval.guard RUN_DIR` is what the training worker starts when a run whose
recipe names `eval.prompts` with `eval.after_training` completes; it records its progress under
`evaluation` in status.json (when done, with the verdict in brief: core.eval.verdict.outcome;
core.train.run_dir reads the entry back) and writes RUN_DIR/eval/. This module knows nothing about gradio,
and nothing about GGUF (core.export.quant_ab feeds GGUF answers into the same report).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import recipe_eval, recipes
from core.chat.engine import BASE, TUNED, Sampling, engine_for
from core.chat.tuned import tuned_source
from core.errors import BadInput
from core.eval import benchmarks as bench
from core.eval import judge as judges
from core.eval import report as reports
from core.eval import verdict as verdicts
from core.eval.ab import run_prompt_set
from core.eval.heldout import heldout_losses
from core.eval.metrics import load_patterns
from core.eval.preferences import read_picks
from core.eval.prompts import Prompt, leaked_prompts, read_prompt_set
from core.eval.retrieval import retrieve
from core.train import run_dir as run_files

EVAL_FOLDER = run_files.EVAL_DIR  # the run folder's layout is core.train.run_dir's


@dataclass
class Target:
    """What is evaluated: the tuned weights, their base model, and the run they came from."""

    tuned: Path
    base_model: str
    run: Path | None = None
    recipe: dict = field(default_factory=dict)


def resolve_target(path: str | Path, base_model: str | None = None) -> Target:
    """A run folder (its best result), an adapter or a checkpoint; its base model is
    core.train.run_dir.base_model_for's answer unless `base_model` names it."""
    source = tuned_source(path)
    run = next((p for p in [source.path, *source.path.parents] if run_files.is_run_dir(p)), None)
    recipe = run_files.read_recipe(run) if run else run_files.read_recipe(source.path)
    try:
        base = base_model or run_files.base_model_for(source.path)
    except run_files.UnknownBase as error:
        raise BadInput(f"{error} Or name the base with --model.") from None
    return Target(source.path, str(base), run, recipe)


def load_prompts(path: str | Path, documents: str | Path | None = None, k: int = 2) -> tuple[list[Prompt], list, dict | None]:
    """(prompts ready to ask, bad lines, the retrieval report or None)."""
    loaded = read_prompt_set(path)
    folder = documents or loaded.documents
    if not folder:
        return loaded.prompts, loaded.bad, None

    prompts, found = retrieve(loaded.prompts, folder, k)
    return prompts, loaded.bad, found.to_dict()


def answer(target: Target, prompts: list[Prompt], sampling: Sampling, patterns,
           say: Callable[[str], None]) -> list[dict]:
    engine = engine_for(target.base_model)
    rows = []
    for progress in run_prompt_set(engine, prompts, sampling, {BASE: None, TUNED: str(target.tuned)}, patterns):
        rows.append(progress.row)
        say(f"[{progress.done}/{progress.total}] {progress.side}: {progress.row['prompt_id']} ({progress.row['outcome']})")
    return rows


def benchmark(target: Target, names: list[str], limit: int | None, say: Callable[[str], None]) -> dict:
    """The benchmarks on base, the judged weights, then the run's other kept results (the forgetting curve)."""
    kept = run_files.model_artifacts(target.run) if target.run is not None else []
    label = next((name for name, path in kept if path.resolve() == target.tuned.resolve()), target.tuned.name)
    weights = [(label, target.tuned)] + [(name, path) for name, path in kept if path.resolve() != target.tuned.resolve()]
    return bench.evaluate(target.base_model, weights, names, limit=limit or None, say=say)


def finish(rows: list[dict], prompts: list[Prompt], *, target: Target | None, prompt_set: str, settings: dict,
           retrieval: dict | None = None, judge: str | None = None, judge_host: str | None = None,
           heldout: bool = False, benchmarks: list[str] | None = None, limit: int | None = None,
           out: str | Path | None = None, say: Callable[[str], None] = print) -> tuple[dict, list[Path]]:
    """The judge, held-out loss and benchmarks when asked for, then the report and its files."""
    patterns = load_patterns()
    judged = None
    if judge:
        say(f"judging {len(prompts)} pairs in both orders with {judge}")
        judged = judges.judge_rows(judges.judge_for(judge, host=judge_host), rows, {p.id: p.messages for p in prompts},
                                   model=judge, tuned=TUNED, picks=read_picks())
    held = None
    if heldout and target is not None and target.run is not None:
        try:
            say("held-out loss of base and each checkpoint on the run's eval split")
            held = heldout_losses(target.run, target.base_model)
        except ValueError as error:  # a DPO run, or nothing held out: say so in the report
            held = {"samples": 0, "rows": [], "note": str(error)}
    scored = benchmark(target, benchmarks, limit, say) if benchmarks and target is not None else None
    leaked = leaked_prompts(target.recipe, prompts) if target is not None and target.run is not None and prompts else None
    report = reports.build_report(rows, patterns=patterns, tuned=TUNED, prompt_set=prompt_set, settings=settings,
                                  retrieval=retrieval, heldout=held, judge=judged, recipe=target.recipe if target else None,
                                  leaked=leaked, benchmarks=scored)
    files = reports.save_report(report, rows, out) if out else []
    return report, files


def evaluate(path: str | Path, prompts_file: str | Path | None, *, base_model: str | None = None, max_new_tokens: int = 256,
             system: str = "", documents: str | Path | None = None, judge: str | None = None,
             judge_host: str | None = None, heldout: bool = True, benchmarks: list[str] | None = None,
             limit: int | None = None, out: str | Path | None = None,
             say: Callable[[str], None] = print) -> tuple[dict, list[Path]]:
    """Base vs tuned on a prompt set, on benchmarks, or both."""
    if not prompts_file and not benchmarks:
        raise BadInput("name a prompt set (--prompts) or general-skill benchmarks (--benchmarks), or both")
    if benchmarks:
        bench.check_names(benchmarks)  # a typo is said before any model loads
    target = resolve_target(path, base_model)
    prompts, rows, retrieval = [], [], None
    if prompts_file:
        prompts, bad, retrieval = load_prompts(prompts_file, documents)
        for row in bad:
            say(f"skipped {row}")
        if not prompts:
            raise BadInput(f"{prompts_file}: no usable prompts")
        sampling = Sampling(system, 0.0, 1.0, max_new_tokens, 0).check()
        rows = answer(target, prompts, sampling, load_patterns(), say)
    settings = {"max_new_tokens": max_new_tokens, "temperature": 0.0, "seed": 0, "system_prompt": system,
                "base_model": target.base_model, "tuned_path": str(target.tuned)}
    return finish(rows, prompts, target=target, prompt_set=Path(prompts_file).name if prompts_file else "", settings=settings,
                  retrieval=retrieval, judge=judge if prompts else None, judge_host=judge_host, heldout=heldout,
                  benchmarks=benchmarks, limit=limit, out=out, say=say)


def run_report(run: str | Path) -> dict | None:
    """The guard's report for a run, when it has one."""
    return reports.read_report(Path(run) / EVAL_FOLDER)


def guard_run(run: Path) -> int:
    """Evaluate a completed run as its recipe asks; progress and outcome go to status.json."""
    recipe = recipes.load(run / run_files.RECIPE_FILE)
    prompts = recipe_eval.prompts_path(recipe.eval, recipe.source)
    run_files.update_status(run, evaluation={"state": "running", "prompts": str(prompts) if prompts else None,
                                             "benchmarks": recipe.eval.benchmarks})
    try:
        report, _ = evaluate(run, prompts, base_model=recipe.model.name, max_new_tokens=recipe.eval.max_new_tokens,
                             heldout=recipe.eval.heldout_loss, benchmarks=recipe.eval.benchmarks,
                             limit=recipe.eval.benchmark_limit or None, out=run / EVAL_FOLDER,
                             say=lambda text: print(f"[eval] {text}", flush=True))
    except Exception as error:  # noqa: BLE001 - a failed guard must be recorded, the run stays completed
        traceback.print_exc()
        run_files.update_status(run, evaluation={"state": "failed", "error": f"{type(error).__name__}: {error}"})
        return 1
    # The outcome in brief beside the state: the CLI, the sweep table and the run views read it
    # without opening the report (core.train.sweeps can't import this room to read one).
    run_files.update_status(run, evaluation={"state": "done", **verdicts.outcome(report)})
    print(f"[eval] {report['verdict']['headline']}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.eval.guard", description="Evaluate a completed run.")
    parser.add_argument("run_dir")
    return guard_run(Path(parser.parse_args(argv).run_dir).resolve())


if __name__ == "__main__":
    sys.exit(main())
