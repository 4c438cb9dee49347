"""`studio make`: make a dataset, grounded Q&A from documents (`qa`) or mode-tagged samples from
raw records (`modes`). Parses arguments and calls core.dataset.make_*; nothing else.
Exit status: 0 made (and, for modes, clean), 1 the mode build's check found problems,
2 bad input or no model, 130 stopped (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from core.dataset import reader, tokens
from core.dataset.make_backends import backend_from_spec
from core.dataset.make_docs import DocumentError
from core.dataset.make_modes import build_modes
from core.dataset.make_qa import MakeError, QASettings
from core.dataset.make_run import run_qa
from core.dataset.make_schema import ChatTemplateSchema, SchemaError, load_schema_file
from core.models import ModelNotFound

QA_EPILOG = """\
examples:
  studio make qa assets/make/docs --out qa.jsonl --count 20 --model qwen3:4b
  studio make qa papers/ --out rag.jsonl --backend transformers --model embedded --count 5 --num-predict 200

Each pair is validated before it is kept (JSON shape, non-empty question and answer, cited titles
from the context, evidence quotes that occur in the context, refusals that refuse); invalid replies
are logged in OUT's .make/rejected.log and retried alone. Stop with Ctrl-C at any time and run the
same command again to resume: the output is append-only and nothing kept is made twice.
Documents: .txt / .md (title = first '# heading' or the file name), .pdf (title = metadata or
file name), .jsonl (one {"title", "text"} a line); a folder is searched recursively."""

MODES_EPILOG = """\
examples:
  studio make modes assets/make/raw_records.jsonl --out made-modes/
  studio make modes records.jsonl --out out/ --only-mode agent --max-count 500 --schema assets/make/schema_plain.yaml

A record is one JSON object a line with a "type" (mapped to a mode by the config) and either a
"text" (two sentences or more) or an exchange: "input"/"output", "user"/"assistant" or "messages".
Writes curated.jsonl, formatted.jsonl, schema.jsonl, final.jsonl and run-summary.json; exit 1
when the final file has mode contamination (the rows are named) or, with --strict, a quality
metric misses its target."""


def add_make_parser(sub) -> None:
    make = sub.add_parser("make", help="make a dataset: Q&A from documents, or mode-tagged samples from raw records",
                          description="Make a dataset. `studio make qa --help` and `studio make modes --help` say more.")
    kinds = make.add_subparsers(dest="make_kind", required=True, metavar="KIND")
    fmt = argparse.RawDescriptionHelpFormatter
    qa = kinds.add_parser("qa", help="grounded / synthesis / refusal Q&A pairs from documents", epilog=QA_EPILOG,
                          formatter_class=fmt, description="Grounded Q&A from a document corpus with a local model.")
    qa.add_argument("docs", help="a document file or a folder of .txt / .md / .pdf / .jsonl documents")
    qa.add_argument("--out", required=True, help="output JSONL file (created, or resumed when it exists)")
    defaults = QASettings()
    for name, flag in (("count", "--count"), ("grounded", "--grounded"), ("synthesis", "--synthesis"),
                       ("refusal", "--refusal"), ("chunk_size", "--chunk-size"), ("chunk_overlap", "--chunk-overlap"),
                       ("seed", "--seed"), ("retries", "--retries")):
        value = getattr(defaults, name)
        qa.add_argument(flag, type=type(value), default=value, help=f"{QASettings.help(name)} (default {value})")
    qa.add_argument("--system", default=None, help="system prompt of every sample (default: the RAG rules)")
    qa.add_argument("--backend", choices=["ollama", "transformers"], default="ollama",
                    help="ollama: a server through the official client (default); transformers: a local model")
    qa.add_argument("--model", default=None, help="model name: an Ollama model (e.g. qwen3:4b) or, with "
                    "--backend transformers, embedded / a folder / a Hub id (default: qwen3:4b or embedded)")
    qa.add_argument("--host", default=None, help="Ollama address (default: OLLAMA_HOST, else 127.0.0.1:11434)")
    qa.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    qa.add_argument("--num-predict", type=int, default=None,
                    help="token budget per reply (default 2048 for Ollama: a thinking model spends part of it "
                         "reasoning; 256 for transformers)")
    qa.add_argument("--think", choices=["auto", "on", "off"], default="auto",
                    help="Ollama thinking: auto = the model's default, off = no reasoning (faster)")
    qa.add_argument("--api", choices=["chat", "generate"], default="chat", help="Ollama endpoint (default chat)")
    qa.add_argument("--timeout", type=float, default=300, help="seconds to wait for one reply (default 300)")
    qa.add_argument("--restart", action="store_true", help="throw away OUT and start over instead of resuming")
    qa.add_argument("--token-stats", default=None, metavar="MODEL",
                    help="afterwards, count tokens with this model's tokenizer (e.g. embedded): min, mean, max, truncated")
    qa.add_argument("--max-length", type=int, default=2048, help="token budget the truncation count uses (default 2048)")
    qa.add_argument("--json", action="store_true", help="print the final manifest as one JSON object")

    modes = kinds.add_parser("modes", help="mode-tagged samples from raw records, stage by stage", epilog=MODES_EPILOG,
                             formatter_class=fmt, description="Curate, format, apply a schema and check raw records.")
    modes.add_argument("records", help="raw records, JSONL")
    modes.add_argument("--out", required=True, help="folder for the stage files and run-summary.json")
    modes.add_argument("--config", default=None, help="type -> mode map, filler list, prompts (default assets/modes_make.yaml)")
    modes.add_argument("--only-mode", default=None, help="keep only this mode's samples, e.g. dual")
    modes.add_argument("--max-count", type=int, default=None, help="keep at most this many samples")
    modes.add_argument("--model", default="embedded", help="whose chat template renders schema.jsonl (default embedded)")
    modes.add_argument("--schema", default=None, help="a prefix/suffix schema YAML instead of the chat template")
    modes.add_argument("--no-schema", action="store_true", help="skip the schema stage (schema.jsonl holds null texts)")
    modes.add_argument("--strict", action="store_true", help="also exit 1 when a quality metric misses its target")
    modes.add_argument("--json", action="store_true", help="print run-summary.json as one JSON object")


def user_errors() -> tuple[type[Exception], ...]:
    return (MakeError, DocumentError, SchemaError)


def cmd_make(args) -> int:
    try:
        return make_qa(args) if args.make_kind == "qa" else make_modes(args)
    except user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def backend_spec(args) -> dict:
    return {"backend": args.backend, "model": args.model, "host": args.host, "temperature": args.temperature,
            "num_predict": args.num_predict, "think": {"auto": None, "on": True, "off": False}[args.think],
            "timeout_s": args.timeout, "api": args.api, "seed": args.seed}


def make_qa(args) -> int:
    settings = QASettings(count=args.count, grounded=args.grounded, synthesis=args.synthesis, refusal=args.refusal,
                          chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap, seed=args.seed,
                          retries=args.retries, **({"system_prompt": args.system} if args.system else {}))
    # SIGTERM (the UI's Stop, a closed terminal) stops like Ctrl-C: the manifest says "stopped".
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    def show(manifest: dict) -> None:
        if args.json:
            return
        eta = f", ETA {manifest['eta_s'] / 60:.1f} min" if manifest.get("eta_s") else ""
        print(f"\r{manifest['done']}/{manifest['total']} done · {manifest['kept']} kept · {manifest['rejected']} "
              f"rejected replies · {manifest['pairs_per_min']:.1f} pairs/min{eta}   ", end="", file=sys.stderr, flush=True)

    try:
        manifest = run_qa(args.docs, args.out, settings, backend_from_spec(backend_spec(args)), restart=args.restart, on_progress=show)
    except KeyboardInterrupt:
        print(f"\nstopped; run the same command again to resume ({args.out})", file=sys.stderr)
        return 130
    if args.token_stats:
        manifest["tokens"] = _token_stats(args.out, args.token_stats, args.max_length)
    if args.json:
        print(json.dumps(manifest, indent=2, ensure_ascii=False))
        return 0 if manifest["state"] == "completed" else 130
    if manifest.get("tokens", {}).get("counted"):
        t = manifest["tokens"]
        print(f"\ntokens ({args.token_stats}): min {t['min']}, mean {t['mean']}, max {t['max']}, "
              f"{t['truncated']} of {t['counted']} over {t['max_length']}", end="")
    print(f"\n{manifest['state']}: {manifest['kept']} pairs in {args.out} ({manifest['by_kind']}), "
          f"{len(manifest['gave_up'])} given up, {manifest['rejected']} rejected replies "
          f"({manifest['from_thinking']} taken from the thinking field)")
    return 0 if manifest["state"] == "completed" else 130


def _token_stats(path: str, model: str, max_length: int) -> dict:
    examples = (x for x in reader.stream(path, "messages") if isinstance(x, reader.Example))
    stats = tokens.token_stats(examples, tokens.tokenizer_for(model), max_length=max_length)
    return {k: v for k, v in stats.items() if k != "lengths"}


def make_modes(args) -> int:
    schema = None
    if args.schema:
        schema = load_schema_file(args.schema)
    elif not args.no_schema:
        try:
            schema = ChatTemplateSchema(tokens.tokenizer_for(args.model), args.model)
        except ModelNotFound as error:
            print(f"error: --model {args.model}: {error}", file=sys.stderr)
            return 2
    summary = build_modes(args.records, args.out, config=args.config, only_mode=args.only_mode,
                          max_count=args.max_count, schema=schema)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_modes(summary)
    failed = not summary["ok"] or (args.strict and summary["check"]["warnings"])
    return 1 if failed else 0


def _print_modes(summary: dict) -> None:
    stages = summary["stages"]
    cur = stages["curated"]
    print(f"curated    {cur['rows_out']} of {cur['rows_in']} records kept, {cur['filler_removed']} filler phrases "
          f"removed, modes {cur['modes']}  -> {cur['file']}")
    for row in summary["dropped"]["rows"][:20]:
        print(f"  dropped  line {row['line']}: {row['reason']}")
    for row in summary["mode_shares"]:
        print(f"  mode {row['mode']:<10} {row['count']:>5} samples  {row['share']:.0%} (target {row['target']:.0%}, {row['status']})")
    for name in ("formatted", "schema", "final"):
        print(f"{name:<10} {stages[name]['rows_out']} rows -> {stages[name]['file']}")
    check = summary["check"]
    for item in check["contamination"][:50]:
        print(f"  contamination  row {item['row']} ({item['id']}), mode {item['mode']}: {item['reason']} {' '.join(item['tags'])}")
    for metric in check["metrics"].values():
        print(f"  [{metric['status']:>4}] {metric['label']}: {metric['display']} (target {metric['target']})")
    verdict = "clean" if summary["ok"] else (f"FAILED: {check['problems']} problem(s) in final.jsonl" if check["problems"]
                                             else f"FAILED: {'; '.join(check['warnings'])}")
    print(f"{verdict}; summary in {summary['out']}/run-summary.json ({summary['seconds']['total']} s)")
