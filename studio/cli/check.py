"""`studio check FILE`: every check of a dataset (format, bad rows, mode contamination, quality,
duplicates and near duplicates, personal data and secrets, evaluation leaks, tokens), printed with
where each finding is, or as one JSON object; `--fix redact|dedupe --out FILE` writes a fixed copy.
Exit 0 clean, 1 problems found (or warnings with --strict), 2 unreadable. Registered by studio.cli.
"""

from __future__ import annotations

import sys

from core.dataset import bulk, checks, reader, tokens
from core.dataset.formats import FORMATS
from core.eval import prompts as prompt_sets
from studio.cli.output import fix_line, print_json


def add_parser(sub) -> None:
    check = sub.add_parser("check", help="check a dataset: format, bad rows, mode contamination, quality, tokens")
    check.add_argument("dataset", help="JSONL/JSON/CSV/Parquet file or folder")
    check.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="the rows' format (default: detected)")
    check.add_argument("--max-length", type=int, default=None, help="token budget for the token statistics (needs --model)")
    check.add_argument("--model", default=None, help="model whose tokenizer counts tokens, e.g. embedded")
    check.add_argument("--modes", default=None, help="YAML file with a mode -> tags table for the contamination check")
    check.add_argument("--template", default=None,
                       help="assistant template for friction records (default <think>{thought_stream}</think>{final_answer})")
    check.add_argument("--token-limit", type=int, default=None, help="count tokens for at most this many examples (default: all)")
    check.add_argument("--eval-set", action="append", default=[], metavar="PROMPTS",
                       help="a prompt set (JSONL) the training text must not hold; the bundled sets are always checked")
    check.add_argument("--strict", action="store_true", help="also fail (exit 1) when a quality metric misses its target")
    check.add_argument("--targets", default="auto", choices=checks.TARGET_NAMES,
                       help="quality targets for this kind of data (default: picked from the data)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--near-threshold", type=float, default=checks.NEAR_THRESHOLD, metavar="SIMILARITY",
                       help="how alike two records must be to count as near duplicates: the share of their word "
                            f"triples in common, 0-1 (default {checks.NEAR_THRESHOLD})")
    check.add_argument("--fix", choices=bulk.FIXES, default=None,
                       help="write a fixed copy to --out: redact (personal data and secrets become [EMAIL], [HF_TOKEN] ...) "
                            "or dedupe (records that repeat another are left out, one per group kept)")
    check.add_argument("--out", default=None, metavar="FILE", help="where --fix writes the fixed dataset (JSONL)")


def cmd_check(args) -> int:
    """Exit 0 clean, 1 problems found (or warnings with --strict), 2 unreadable."""
    if bool(args.fix) != bool(args.out):
        print("error: --fix and --out go together: studio check FILE --fix redact|dedupe --out FIXED.jsonl", file=sys.stderr)
        return 2
    try:
        report = checks.check(args.dataset, args.format, modes_file=args.modes, format_template=args.template, targets=args.targets,
                              leaks=prompt_sets.leak_index(args.eval_set), near_threshold=args.near_threshold)
        fixed = bulk.fix_file(args.dataset, args.fix, args.out, report, format=args.format,
                              format_template=args.template) if args.fix else None
        if args.model or args.max_length:
            tokenizer = tokens.tokenizer_for(args.model or "embedded")
            examples = (item for item in reader.stream(args.dataset, args.format, format_template=args.template)
                        if isinstance(item, reader.Example))
            report.tokens = tokens.token_stats(examples, tokenizer, max_length=args.max_length or 2048, limit=args.token_limit)
    except (reader.DatasetError, OSError, ValueError) as error:
        if args.json:
            print_json({"path": args.dataset, "ok": False, "error": str(error)})
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = report.to_json()
    if summary.get("tokens"):
        summary["tokens"] = {k: v for k, v in summary["tokens"].items() if k != "lengths"}
    if fixed:
        summary["fix"] = {"how": args.fix, "out": str(fixed.out), "written": fixed.written, "dropped": fixed.dropped,
                          "redacted_records": fixed.redacted_records, "redacted_spans": fixed.redacted_spans,
                          "bad_rows_left_out": fixed.bad_rows, "written_normalized": fixed.normalized}
    if args.json:
        print_json(summary)
    else:
        _print_check(report, summary)
        if fixed:
            print(fix_line(args.fix, fixed))
    failed = not report.ok or (args.strict and report.warnings())
    return 1 if failed else 0


def _print_check(report, summary: dict) -> None:
    print(f"{report.path}: {report.format} ({report.evidence})")
    print(f"{report.rows} rows, {report.examples} usable examples, {report.problems} problem(s)")
    for bad in report.bad_rows[:20]:
        print(f"  bad row  {bad['file']}:{bad['line'] or 'row ' + str(bad['row'])}: {bad['reason']}")
    for item in report.contamination[:50]:
        print(f"  contamination  {_where(item)} ({item['id']}), mode {item['mode']}: {item['reason']} {' '.join(item['tags'])}")
    for item in report.left_out[:20]:
        print(f"  left out  {_where(item)} ({item['id']}): {', '.join(item['parts'])[:200]} (the studio trains on text only)")
    for item in report.personal_data[:20]:  # masked: the check must not print what it found
        what = "secret" if item["secret"] else "personal data"
        span = f"{item['field']} [{item['start']}:{item['end']}]"
        print(f"  {what}  {_where(item)} ({item['id']}) {span}: {item['label']}: {item['excerpt']}")
    for item in report.eval_leaks[:20]:
        print(f"  evaluation leak  {_where(item)} ({item['id']}): holds prompt {item['prompt']} of {item['set']}")
    for kind in ("empty_turns", "role_order"):
        for item in getattr(report, kind)[:20]:
            what = item.get("reason") or f"empty {item.get('role')} turn {item.get('turn')}"
            print(f"  {kind.replace('_', ' ')}  {_where(item)} ({item['id']}): {what}")
    for item in report.duplicates["exact"][:20]:
        same = _where({"row": item["same_as_row"], "line": item["same_as_line"]})
        print(f"  exact duplicate  {_where(item)} same as {same}")
    for group in report.duplicates.get("clusters", [])[:20]:
        rows = ", ".join(str(row) for row in group["rows"][:12]) + (" ..." if len(group["rows"]) > 12 else "")
        print(f"  near duplicates  rows {rows} (at least {group['similarity']:.0%} alike): keep row {group['keep']}")
    if report.preference:
        for item in report.preference["findings"][:20]:
            print(f"  preference  {_where(item)} ({item['id']}): {item['reason']}")
    if report.metrics and report.targets:
        print(f"  quality targets: {report.targets['label']} ({report.targets['why']}; --targets to choose)")
    for metric in report.metrics.values():
        print(f"  [{metric['status']:>4}] {metric['label']}: {metric['display']} (target {metric['target']})")
        if metric.get("advice"):
            print(f"         {metric['advice']}")
    if not report.metrics:
        print("  quality metrics: not graded (no usable examples)")
    if summary.get("tokens") and summary["tokens"].get("counted"):
        t = summary["tokens"]
        print(f"  tokens: {t['counted']} examples, min {t['min']}, mean {t['mean']}, max {t['max']}, "
              f"{t['truncated']} over {t['max_length']}, {t['trained_share']:.0%} of tokens trained")
    missed = report.warnings()
    print(("clean" if not missed else f"no broken rows; {len(missed)} quality target(s) missed") if report.ok else "problems found")


def _where(item: dict) -> str:
    """Row and line of a finding; rows of a JSON array or Parquet file have no line, so the row
    (1-based, the array index plus one) names them alone."""
    return f"row {item['row']}, line {item['line']}" if item.get("line") else f"row {item['row']}"
