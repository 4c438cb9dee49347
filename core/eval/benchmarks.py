"""Did it forget? General-skill benchmarks of the base and the tuned weights through
lm-evaluation-harness (the `lm-eval` package): its own task loader and scoring, the studio's own
model loading (embedded model, local folders, Hub ids, the precision core.models picks).

Bundled and offline: `studio_probe`, a general-skills probe written for this project (arithmetic,
everyday facts, reading, keeping to an asked-for form; assets/benchmarks/, items written by
scripts/assets/make_probe.py), as lm-eval task YAML over local files. Any other lm-eval task (arc_easy,
hellaswag, gsm8k, mmlu subsets) loads its data from the Hugging Face Hub, and says so clearly when
the Hub can't be reached.

Base and every tuned result get the same tasks, items and settings. The change per task is the
paired difference (tuned − base on the same items) with its 95% interval; a drop beyond that
interval is forgetting. An adapter is loaded onto the base once and switched off for the base's
numbers; a full model is loaded on its own. This module knows nothing about gradio or reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from core import models
from core.errors import BadInput
from core.eval.heldout import weights_digest, with_adapter
from core.workspace import ASSETS

FOLDER = ASSETS / "benchmarks"
PROBE = "studio_probe"
HUB_EXAMPLES = ("arc_easy", "hellaswag", "gsm8k", "mmlu_elementary_mathematics")
Z95 = 1.96
PREFERRED_METRICS = ("acc_norm", "acc", "exact_match")  # a task's headline metric, first found


class BenchmarkError(BadInput):
    """A benchmark that doesn't exist, or whose data can't be had here."""


@lru_cache(maxsize=1)
def task_manager():
    from lm_eval.tasks import TaskManager

    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return TaskManager(include_path=str(FOLDER), verbosity="ERROR")


def bundled() -> dict[str, int]:
    """The studio's own tasks and how many items each holds."""
    found = {}
    for part in sorted(FOLDER.glob(f"{PROBE}/*.jsonl")):
        found[f"{PROBE}_{part.stem}"] = sum(1 for line in part.read_text(encoding="utf-8").splitlines() if line.strip())
    return found


def list_benchmarks() -> dict:
    """What `--benchmarks` accepts: the bundled tasks (offline), and how many lm-eval knows (Hub)."""
    known = task_manager().all_tasks
    return {"bundled": {PROBE: sum(bundled().values()), **bundled()}, "hub_examples": list(HUB_EXAMPLES),
            "known": len(known)}


def check_names(names: list[str]) -> list[str]:
    """The names as given, once each; BenchmarkError naming the unknown ones."""
    names = list(dict.fromkeys(name.strip() for name in names if name and name.strip()))
    if not names:
        raise BenchmarkError("name at least one benchmark, e.g. studio_probe (offline) or arc_easy (Hub)")
    known = set(task_manager().all_tasks)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BenchmarkError(f"unknown benchmark(s): {', '.join(unknown)}; `studio eval --list-benchmarks` names the bundled "
                             f"ones, and lm-eval knows {len(known)} more (e.g. {', '.join(HUB_EXAMPLES)})")
    return names


def is_offline(name: str) -> bool:
    return name == PROBE or name in bundled()


def load_tasks(names: list[str]) -> dict:
    """lm-eval's task objects for `names` (their data loaded now, before any model): a Hub task
    that can't get its data is one clear error, not a traceback mid-evaluation."""
    from lm_eval.tasks import get_task_dict

    names = check_names(names)
    try:
        return get_task_dict(names, task_manager())
    except Exception as error:  # datasets raises many kinds when the Hub is out of reach
        online = [name for name in names if not is_offline(name)]
        if not online:
            raise
        raise BenchmarkError(f"benchmark(s) {', '.join(online)} load their data from the Hugging Face Hub, which can't be "
                             f"reached from here ({type(error).__name__}: {str(error)[:200]}). {PROBE} runs offline.") from None


def _metric(result: dict) -> str | None:
    """The task's headline metric key in lm-eval's results ('acc,none', 'exact_match,strip')."""
    keys = [key for key, value in result.items() if "," in key and "_stderr" not in key and isinstance(value, (int, float))]
    for wanted in PREFERRED_METRICS:
        for key in keys:
            if key.split(",")[0] == wanted:
                return key
    return keys[0] if keys else None


def score(model, tokenizer, names: list[str], *, limit: int | None = None, batch_size: int = 16) -> dict[str, dict]:
    """{task: {metric, n, score, stderr, items}} for one set of weights; `items` is the per-item
    score in lm-eval's document order, for the paired comparison."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    device = next(model.parameters()).device
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(device))
    out = simple_evaluate(model=lm, tasks=names, task_manager=task_manager(), limit=limit, log_samples=True,
                          bootstrap_iters=0, verbosity="ERROR")
    scores = {}
    for task, result in out["results"].items():
        key = _metric(result)
        if key is None or task not in out.get("samples", {}):
            continue  # a group's aggregate row: its tasks have rows of their own
        name = key.split(",")[0]
        items = [float(sample[name]) for sample in sorted(out["samples"][task], key=lambda s: s["doc_id"])]
        n = len(items)
        mean = sum(items) / n if n else 0.0
        spread = math.sqrt(sum((x - mean) ** 2 for x in items) / (n - 1)) if n > 1 else 0.0
        scores[task] = {"metric": name, "n": n, "score": round(mean, 4), "stderr": round(spread / math.sqrt(n), 4) if n else 0.0,
                        "items": items}
    return scores


def change(base: dict, tuned: dict) -> dict:
    """Tuned − base on the same items, with the paired 95% interval; `forgot` when the whole
    interval is below zero, `learned` when it is above."""
    pairs = list(zip(base["items"], tuned["items"]))
    n = len(pairs)
    diffs = [t - b for b, t in pairs]
    delta = sum(diffs) / n if n else 0.0
    spread = math.sqrt(sum((d - delta) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    half = Z95 * spread / math.sqrt(n) if n else 0.0
    return {"metric": base["metric"], "n": n, "base": base["score"], "tuned": tuned["score"],
            "base_stderr": base["stderr"], "tuned_stderr": tuned["stderr"], "delta": round(delta, 4),
            "low": round(delta - half, 4), "high": round(delta + half, 4),
            "forgot": n > 0 and delta + half < 0, "learned": n > 0 and delta - half > 0}


def evaluate(base_model: str, weights: list[tuple[str, Path]], names: list[str], *, limit: int | None = None,
             say: Callable[[str], None] = print) -> dict:
    """Base, then each of `weights` (label, folder) on the tasks: {'tasks', 'limit', 'base',
    'rows': [{weights, changes: {task: change}}]}. The first of `weights` is the one judged."""
    load_tasks(names)
    tokenizer = models.load_tokenizer(base_model)
    base = models.load_model(base_model).eval()
    say(f"benchmarks: base on {', '.join(names)}" + (f" ({limit} items a task at most)" if limit else ""))
    base_scores = score(base, tokenizer, names, limit=limit)
    rows, peft_model, measured = [], None, {}
    for label, path in weights:
        digest = weights_digest(path)
        if digest and digest in measured:  # best/ and the final adapter are often a checkpoint's very weights
            rows.append({**measured[digest], "weights": label, "same_as": measured[digest]["weights"]})
            continue
        say(f"benchmarks: {label}")
        if (path / "adapter_config.json").is_file():
            peft_model = with_adapter(peft_model, base, path, label)
            peft_model.set_adapter(label)
            tuned_scores = score(peft_model.base_model.model, tokenizer, names, limit=limit)  # the adapter's layers are in it
        else:
            tuned_scores = score(models.load_model(str(path)).eval(), tokenizer, names, limit=limit)
        rows.append({"weights": label, "changes": {task: change(base_scores[task], tuned_scores[task])
                                                   for task in base_scores if task in tuned_scores}})
        if digest:
            measured[digest] = rows[-1]
    if peft_model is not None:
        peft_model.unload()  # the base's own layers back, for whoever holds it next
    result = {"tasks": sorted(base_scores), "limit": limit,
              "base": {task: {k: v for k, v in s.items() if k != "items"} for task, s in base_scores.items()}, "rows": rows}
    result["forgot"] = forgotten(result)
    return result


def forgotten(benchmarks: dict | None) -> list[dict]:
    """The judged weights' tasks that dropped beyond their interval: [{task, delta, base, tuned, n}]."""
    if not benchmarks or not benchmarks.get("rows"):
        return []
    judged = benchmarks["rows"][0]["changes"]
    return [{"task": task, "name": short_name(task), **{k: line[k] for k in ("delta", "base", "tuned", "n", "low", "high")}}
            for task, line in judged.items() if line["forgot"]]


def short_name(task: str) -> str:
    """'studio_probe_arithmetic' → 'arithmetic' (the probe's parts read better by their own names)."""
    return task.removeprefix(f"{PROBE}_")
