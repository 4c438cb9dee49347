"""The `studio` command: every capability of the web UI, from a terminal or a CI job.

Each subcommand is a plain function that parses nothing itself and calls core. Only `ui`
imports gradio. `--json` output is one JSON object on stdout with stable keys.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Tuning Studio: review data, train, compare, export.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ui = sub.add_parser("ui", help="launch the web studio")
    ui.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"), help="address to listen on")
    ui.add_argument("--port", type=int, default=int(os.environ.get("STUDIO_PORT", "7860")), help="port to listen on")
    ui.add_argument("--share", action="store_true", help="create a temporary public gradio.live link")
    ui.add_argument("--auth", default=os.environ.get("STUDIO_AUTH"), help="require a login, USER:PASS (or env STUDIO_AUTH)")

    check = sub.add_parser("check", help="check a dataset: format, bad rows, mode contamination, quality, tokens")
    check.add_argument("dataset", help="JSONL/JSON/CSV/Parquet file or folder")
    check.add_argument("--format", default="auto", help="auto, messages, sharegpt, alpaca, prompt_completion, preference, friction, modes")
    check.add_argument("--max-length", type=int, default=None, help="token budget for the token statistics (needs --model)")
    check.add_argument("--model", default=None, help="model whose tokenizer counts tokens, e.g. embedded")
    check.add_argument("--modes", default=None, help="YAML file with a mode -> tags table for the contamination check")
    check.add_argument("--json", action="store_true", help="print one JSON object")

    train = sub.add_parser("train", help="run a training recipe")
    train.add_argument("recipe", help="recipe YAML file (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. training.learning_rate=1e-4")
    train.add_argument("--run-dir", default=None, help="run folder (default: STUDIO_HOME/runs/<name>-<time>)")
    train.add_argument("--resume", default=None, metavar="CHECKPOINT", help="resume from 'last' or a checkpoint folder")
    train.add_argument("--dry-run", action="store_true", help="validate recipe and data, print the plan and trainer configs, train nothing")
    train.add_argument("--json", action="store_true", help="print one JSON object")

    runs = sub.add_parser("runs", help="list training runs")
    runs.add_argument("--json", action="store_true", help="print one JSON object")

    chat = sub.add_parser("chat", help="answer prompts with a model, and with its adapter beside it")
    chat.add_argument("--model", default="embedded", help="base model: embedded, a folder or a Hub id")
    chat.add_argument("--adapter", default=None, help="LoRA adapter folder, or a run folder")
    group = chat.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt", help="one prompt")
    group.add_argument("--prompts", help="prompt set JSONL for an A/B run")
    chat.add_argument("--out", default=None, help="write the A/B results (JSONL or CSV) here")
    chat.add_argument("--system", default=None, help="system prompt")
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    chat.add_argument("--top-p", type=float, default=1.0)
    chat.add_argument("--seed", type=int, default=0)
    chat.add_argument("--json", action="store_true", help="print one JSON object")

    export = sub.add_parser("export", help="merge, push to the Hub, convert to GGUF, create in Ollama")
    export.add_argument("source", help="run folder or adapter folder")
    export.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint name")
    export.add_argument("--merge", default=None, metavar="DIR", help="write the merged model here")
    export.add_argument("--gguf", default=None, metavar="TYPE", help="convert to GGUF: f16, bf16, q8_0, q4_k_m ...")
    export.add_argument("--ollama", default=None, metavar="NAME", help="create this model in Ollama")
    export.add_argument("--ollama-host", default=None, help="Ollama server address (default: OLLAMA_HOST)")
    export.add_argument("--hub", default=None, metavar="REPO_ID", help="push to this Hub repository (token from HF_TOKEN)")
    export.add_argument("--public", action="store_true", help="make the Hub repository public")
    export.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"ui": cmd_ui, "check": cmd_check, "train": cmd_train, "runs": cmd_runs, "chat": cmd_chat, "export": cmd_export}[args.command]
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except _USER_ERRORS() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _USER_ERRORS() -> tuple[type[Exception], ...]:
    from core.models import ModelNotFound, QLoRANeedsCUDA
    from core.recipes import RecipeError

    return (RecipeError, ModelNotFound, QLoRANeedsCUDA, FileNotFoundError)


def _print_json(data: dict) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def cmd_ui(args) -> int:
    from studio.app import build_app, launch_kwargs

    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    if args.auth and len(auth) != 2:
        print("error: --auth expects USER:PASS", file=sys.stderr)
        return 2
    app = build_app()
    app.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, share=args.share,
                                                  auth=auth, **launch_kwargs())
    return 0


def cmd_check(args) -> int:
    print("studio check: dataset checks land with the Dataset workbench (issue 3).", file=sys.stderr)
    return 2


def cmd_train(args) -> int:
    print("studio train: training lands with the Training launcher (issue 4).", file=sys.stderr)
    return 2


def cmd_runs(args) -> int:
    print("studio runs: run listing lands with the Training launcher (issue 4).", file=sys.stderr)
    return 2


def cmd_chat(args) -> int:
    if args.prompts or args.adapter:
        print("studio chat: adapters and prompt sets land with Chat and A/B (issue 5).", file=sys.stderr)
        return 2
    import torch

    from core import models

    tokenizer = models.load_tokenizer(args.model)
    model = models.load_model(args.model)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": args.prompt}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True).to(model.device)
    torch.manual_seed(args.seed)
    sampling = {"do_sample": True, "temperature": args.temperature, "top_p": args.top_p} if args.temperature > 0 else {"do_sample": False}
    output = model.generate(**inputs, max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    if args.json:
        _print_json({"model": args.model, "prompt": args.prompt, "answer": answer})
    else:
        print(answer)
    return 0


def cmd_export(args) -> int:
    print("studio export: export lands with the Export issue (issue 6).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
