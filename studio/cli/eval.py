"""`studio eval RUN|ADAPTER --prompts FILE --out DIR`: did the tuning work, headless.
`studio eval RUN --benchmarks studio_probe [--limit N]`: did it forget (lm-evaluation-harness
tasks on base and every kept checkpoint); `studio eval --list-benchmarks` names them.

Base vs the tuned weights on a prompt set (same prompts, settings and seed), optionally judged
pairwise, or both as GGUF at one quantization through llama.cpp (`--gguf`). Writes report.json,
report.md, rows.csv and rows.jsonl into DIR and prints the verdict. Exit codes for CI: 0 fine,
1 a metric named with `--fail-on` regressed, 2 bad input. `--fail-on METRIC` fails when the
metric got worse beyond its 95% interval; `--fail-on METRIC:THRESHOLD` when it got worse by more
than THRESHOLD (a share for rates, 0.05 = 5 points; seconds for latency).
"""

from __future__ import annotations

import json
import sys

from core.chat.tuned import AdapterMismatch, TunedModelError
from core.eval import benchmarks
from core.eval.judge import JudgeError
from core.eval.metrics import metric_table
from core.train.run_dir import read_evaluation

# Every metric the report compares that has a better direction (core.eval.metrics.METRICS and the patterns).
FAIL_METRICS = tuple(metric.key for metric in metric_table() if metric.in_report and metric.prefer) + ("forgot",)


def add_parser(sub) -> None:
    parser = sub.add_parser("eval", help="evaluate base vs tuned on a prompt set: report, verdict, CI exit code")
    parser.add_argument("target", nargs="?", help="run folder (its best result), adapter or checkpoint folder")
    parser.add_argument("--prompts", default=None, help="prompt set JSONL (see assets/prompts/)")
    parser.add_argument("--benchmarks", default=None, metavar="TASKS",
                        help="comma-separated lm-eval tasks for base and each kept checkpoint (studio_probe: offline)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N items per benchmark task")
    parser.add_argument("--list-benchmarks", action="store_true", help="name the bundled benchmarks and the Hub's, then stop")
    parser.add_argument("--out", default=None, metavar="DIR", help="write report.json, report.md, rows.csv, rows.jsonl here")
    parser.add_argument("--model", default=None, help="base model (default: the one the run or adapter was tuned from)")
    parser.add_argument("--judge", default=None, metavar="MODEL", help="pairwise judge: an Ollama model name, or hf:PATH / embedded")
    parser.add_argument("--judge-host", default=None, help="Ollama address for the judge (default: OLLAMA_HOST)")
    parser.add_argument("--gguf", default=None, metavar="TYPE",
                        help="compare both as GGUF of this type in llama.cpp (needs the llama extra)")
    parser.add_argument("--fail-on", action="append", default=[], metavar="METRIC[:THRESHOLD]",
                        help=f"exit 1 when this metric regresses; one of {', '.join(FAIL_METRICS)}")
    parser.add_argument("--documents", default=None, metavar="DIR", help="retrieve contexts with BM25 from this folder")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--system", default="", help="system prompt for both sides")
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out loss of each checkpoint")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def parse_fail_on(items: list[str]) -> list[tuple[str, float | None]]:
    """[('keyword_coverage', 0.05), ('substantive', None)]; an unknown metric names the known ones."""
    parsed = []
    for item in items:
        name, _, threshold = item.partition(":")
        name = name.strip().removesuffix("_rate")
        if name not in FAIL_METRICS:
            raise ValueError(f"--fail-on {item}: unknown metric '{name}'; use one of {', '.join(FAIL_METRICS)}")
        try:
            parsed.append((name, float(threshold) if threshold.strip() else None))
        except ValueError:
            raise ValueError(f"--fail-on {item}: the threshold must be a number, e.g. {name}:0.05") from None
    return parsed


def failures(report: dict, fail_on: list[tuple[str, float | None]]) -> list[str]:
    """The --fail-on conditions the report meets, each as a sentence."""
    lines = {line["metric"]: line for line in report.get("metrics", [])}
    found = []
    for name, threshold in fail_on:
        if name == "forgot":  # a benchmark task that dropped beyond its interval (or by more than THRESHOLD)
            for item in (report.get("benchmarks") or {}).get("rows", [{}])[0].get("changes", {}).items():
                task, line = item
                if (-line["delta"] > threshold) if threshold is not None else line["forgot"]:
                    found.append(f"forgot {task}: {line['delta'] * 100:+.1f} points (n={line['n']})")
            continue
        line = lines.get(name)
        if line is None or line["delta"] is None or line["prefer"] is None:
            continue
        drop = -line["delta"] if line["prefer"] == "more" else line["delta"]
        worse = drop > threshold if threshold is not None else (drop > 0 and line["beyond_uncertainty"])
        if worse:
            limit = f"more than {threshold:g}" if threshold is not None else "beyond its 95% interval"
            found.append(f"{line['label']} got worse by {drop:.3g} ({limit}; n={line['n']})")
    return found


def list_benchmarks(as_json: bool) -> int:
    found = benchmarks.list_benchmarks()
    if as_json:
        print(json.dumps(found, indent=2))
        return 0
    print("Bundled (offline):")
    for name, items in found["bundled"].items():
        print(f"  {name}  ({items} items)")
    print(f"From the Hugging Face Hub (lm-eval knows {found['known']} tasks and groups), e.g. {', '.join(found['hub_examples'])}")
    return 0


def cmd_eval(args) -> int:
    from core.eval.report import to_markdown

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.list_benchmarks:
        return list_benchmarks(args.json)
    try:
        fail_on = parse_fail_on(args.fail_on)
        if not args.target or not args.out:
            raise ValueError("name the run or adapter to evaluate and --out DIR (or --list-benchmarks)")
        if args.max_new_tokens < 1:
            raise ValueError("--max-new-tokens must be at least 1")
        if args.limit is not None and args.limit < 1:
            raise ValueError("--limit must be at least 1")
        tasks = [name for name in (args.benchmarks or "").split(",") if name.strip()]
        if args.gguf and tasks:
            raise ValueError("--benchmarks score the tuned weights, not a GGUF; run them without --gguf")
        common = {"max_new_tokens": args.max_new_tokens, "system": args.system, "documents": args.documents,
                  "judge": args.judge, "judge_host": args.judge_host, "out": args.out, "say": say}
        if args.gguf:
            from core.export.quant_ab import evaluate_gguf

            report, files = evaluate_gguf(args.target, args.prompts, args.gguf, **common)
        else:
            from core.eval.guard import evaluate

            report, files = evaluate(args.target, args.prompts, base_model=args.model, heldout=not args.no_heldout,
                                     benchmarks=tasks, limit=args.limit, **common)
    except (ValueError, AdapterMismatch, TunedModelError, JudgeError, RuntimeError) as error:
        if args.json:
            print(json.dumps({"ok": False, "error": str(error)}))
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = failures(report, fail_on)
    if args.json:
        print(json.dumps({"ok": not failed, "out": args.out, "files": [str(f) for f in files], "verdict": report["verdict"],
                          "metrics": report["metrics"], "retrieval": report["retrieval"], "benchmarks": report.get("benchmarks"),
                          "failed": failed},
                         indent=2, ensure_ascii=False, default=str))
    else:
        print("\n".join(to_markdown(report)))
        print(f"\nreport written to {args.out}")
        for line in failed:
            print(f"FAIL: {line}")
    return 1 if failed else 0


def await_evaluation(run_dir, status: dict, *, quiet: bool) -> dict:
    """After `studio train`: wait for the regression guard the worker started, then print its
    verdict (Ctrl-C leaves it running; the report lands in the run folder either way)."""
    import time

    evaluation = read_evaluation(run_dir)
    if evaluation.get("state") != "running":
        return status
    if not quiet:
        print("evaluating base vs the best checkpoint on the recipe's prompt set (Ctrl-C to stop waiting)")
    try:
        while evaluation.get("state") == "running":
            time.sleep(2.0)
            evaluation = read_evaluation(run_dir)
    except KeyboardInterrupt:
        return status
    status = {**status, "evaluation": evaluation}
    if not quiet:
        print(f"evaluation: {evaluation.get('headline') or evaluation.get('error')} (report: {run_dir}/eval/report.md)")
    return status

