"""The `studio` command: every capability of the web UI, from a terminal or a CI job.

Each subcommand is a plain function that parses nothing itself and calls core. Only `ui`
imports gradio. `--json` output is one JSON object on stdout with stable keys.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from core import recipes
from core.chat import tuned
from core.dataset.reader import DatasetError
from core.errors import BadInput
from core.eval import prompts as prompt_sets
from core.export import pipeline
from core.models import ModelNotFound, QLoRANeedsCUDA
from core.recipes import RecipeError
from core.train import distributed, queue, runs
from core.train import forecast as forecasts
from core.train.distributed import shown
from core.train.preflight import dataset_summary
from core.train.queue import QueueError
from studio.cli import check as cli_check
from studio.cli import eval as cli_eval
from studio.cli import jobs as cli_jobs
from studio.cli import plan as cli_plan
from studio.cli import rewards as cli_rewards
from studio.cli import runs as cli_runs
from studio.cli import scale as cli_scale
from studio.cli import system as cli_system
from studio.cli.eval import await_evaluation, cmd_eval
from studio.cli.make import add_make_parser, cmd_make
from studio.cli.output import metric_line, print_json


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Tuning Studio: review data, train, compare, export.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ui = sub.add_parser("ui", help="launch the web studio")
    ui.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"), help="address to listen on")
    ui.add_argument("--port", type=int, default=int(os.environ.get("STUDIO_PORT", "7860")), help="port to listen on")
    ui.add_argument("--share", action="store_true", help="create a temporary public gradio.live link")
    ui.add_argument("--auth", default=None, help="require a login, USER:PASS (or set STUDIO_AUTH)")
    ui.add_argument("--demo", action="store_true", help="demo mode: embedded model, bundled data, tight step limits")

    cli_check.add_parser(sub)

    train = sub.add_parser("train", help="run a training recipe")
    train.add_argument("recipe", nargs="?", help="recipe YAML file (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. training.learning_rate=1e-4")
    train.add_argument("--run-dir", default=None, help="run folder (default: STUDIO_HOME/runs/<name>-<time>)")
    train.add_argument("--resume", default=None, metavar="CHECKPOINT", help="resume from 'last' or a checkpoint folder")
    train.add_argument("--dry-run", action="store_true", help="validate recipe and data, print the plan and trainer configs, train nothing")
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.add_argument("--strict", action="store_true",
                       help="refuse to start when the training data holds the evaluation's own prompts (an evaluation leak)")
    train.add_argument("--accelerate-config", default=None, metavar="FILE",
                       help="launch with your accelerate config file (DDP/FSDP/DeepSpeed; copied into the run folder)")
    cli_jobs.add_train_options(train)  # --on hf-jobs --flavor ..., --list-flavors

    runs = sub.add_parser("runs", help="list training runs")
    runs.add_argument("--all", action="store_true", help="every visitor's runs on a shared studio, with their owner")
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
    chat.add_argument("--all-checkpoints", action="store_true",
                      help="with a run folder as --adapter: compare best, final and every checkpoint")
    chat.add_argument("--patterns", default=None, help="pattern list YAML for the A/B metrics (default: assets/patterns.yaml)")
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
    export.add_argument("--hub-what", default="auto", choices=["auto", "adapter", "merged", "gguf"],
                        help="what to push: the adapter (auto for adapter runs), the merged model, or the GGUF")
    export.add_argument("--ollama-quantize", default=None, metavar="TYPE", help="ask Ollama to quantize on create, e.g. q4_K_M")
    export.add_argument("--system", default=None, help="default system prompt for the Modelfile (default: the chat template's)")
    export.add_argument("--no-verify", action="store_true", help="skip loading the GGUF back and comparing answers")
    export.add_argument("--json", action="store_true", help="print one JSON object")


    add_make_parser(sub)
    cli_eval.add_parser(sub)
    cli_rewards.add_parser(sub)
    cli_scale.add_parsers(sub)
    cli_system.add_parser(sub)
    cli_plan.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    handler = {"ui": cmd_ui, "check": cli_check.cmd_check, "train": cli_jobs.train(cmd_train), "runs": cli_runs.cmd_runs, "chat": cmd_chat,
               "export": cmd_export, "eval": _cmd_eval, "make": _cmd_make, cli_rewards.COMMAND: cli_rewards.run,
               cli_system.COMMAND: cli_system.run, cli_plan.COMMAND: cli_plan.run,
               **cli_scale.HANDLERS}[args.command]
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except _USER_ERRORS() as error:
        if getattr(args, "json", False):
            print_json({"ok": False, "error": str(error)})
        print(f"error: {error}", file=sys.stderr)
        return 2


def _USER_ERRORS() -> tuple[type[Exception], ...]:
    return (RecipeError, DatasetError, ModelNotFound, QLoRANeedsCUDA, FileNotFoundError, QueueError, BadInput)


def _cmd_eval(args) -> int:
    return cmd_eval(args)


def _cmd_make(args) -> int:
    return cmd_make(args)



def cmd_ui(args) -> int:
    if args.auth:
        os.environ["STUDIO_AUTH"] = args.auth  # read by launch_kwargs; never printed
    if args.demo:
        os.environ["STUDIO_DEMO"] = "1"
    # Read by the custom-reward policy (core.train.reward_custom) here and in the workers started from here.
    os.environ["STUDIO_HOST"], os.environ["STUDIO_SHARE"] = args.host, "1" if args.share else "0"
    from studio.ui.app import build_app, launch_kwargs, warm_up

    try:
        kwargs = launch_kwargs()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = build_app()  # queue settings are part of build_app
    app.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True, **kwargs)
    warm_up()  # after the page is served: a first conversion imports torch, which would slow the start
    app.block_thread()
    return 0


def cmd_train(args) -> int:
    from core.train import runs, training

    recipe = recipes.load(args.recipe, args.set)
    if args.dry_run:
        plan = training.plan(recipe)
        plan["forecast"] = forecasts.forecast(recipe, plan, calibrate="cached").to_json()
        if runs.uses_accelerate(recipe) or args.accelerate_config:
            config = distributed.read_user_config(args.accelerate_config) if args.accelerate_config else distributed.config_for(recipe)
            plan["launch_command"] = runs.accelerate_command(recipe, args.run_dir or "<run-dir>")
            plan["accelerate_config"] = config
        print_json(plan) if args.json else _print_train_plan(plan)
        return 0
    try:
        if args.resume:
            if not args.run_dir:
                print("error: --resume needs --run-dir RUN_FOLDER (the run to continue)", file=sys.stderr)
                return 2
            run_dir = runs.resume(args.run_dir, args.resume)
        else:
            summary = dataset_summary(recipe, leaks=prompt_sets.recipe_leak_index(recipe))
            if args.strict and summary["leak_warnings"]:
                for warning in summary["leak_warnings"]:
                    print(f"error: {warning}", file=sys.stderr)
                print("error: --strict: the run was not started", file=sys.stderr)
                return 2
            planned = forecasts.quick(recipe)
            warnings = summary["warnings"] + (planned.warnings if planned else [])
            run_dir, started = queue.submit(recipe, run_dir=args.run_dir, accelerate_config=args.accelerate_config)
            if planned:
                runs.save_forecast(run_dir, planned.to_json())
            for warning in warnings:  # said before the first step, not discovered after the run (a refused start says only why)
                print(f"warning: {warning}", file=sys.stderr)
            if not started and not args.json:
                print(f"queued {run_dir.name}: it starts when the runs ahead of it end (studio queue lists them)")
    except (runs.RunBusy, runs.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = _follow_run(run_dir, quiet=args.json)

    status = await_evaluation(run_dir, status, quiet=args.json)
    return cli_runs.report_run(run_dir, status, as_json=args.json)


def _print_train_plan(plan: dict) -> None:
    print(f"Recipe {plan['recipe']}: {plan['method']} with {plan['tuning']} on {plan['model']} ({plan['device']})")
    print(f"Dataset {plan['dataset']} ({plan['format']}): {plan['examples']} examples, {plan['bad_rows']} bad rows, "
          f"{plan['skipped']} skipped; {plan['train_rows']} train / {plan['eval_rows']} eval")
    print(f"Tokens (tokenizer: {plan['tokenizer']}): " + ", ".join(f"{k} {v}" for k, v in plan["train_tokens"].items()))
    print(f"Steps: {plan['steps_per_epoch']} per epoch, {plan['total_steps']} in all")
    for note in plan["notes"]:
        print(f"Note: {note}")
    for warning in plan.get("warnings", []):
        print(f"Warning: {warning}")
    if plan.get("forecast"):
        for line in forecasts.lines(forecasts.Forecast(**plan["forecast"])):
            print(f"Forecast: {line}")
    for item in plan.get("advice", []):
        print(f"Advice: {item['line']}")
    print(f"\n{plan['trainer']} config:")
    print(json.dumps(plan["trainer_config"], indent=2))
    if plan["lora_config"]:
        print("LoraConfig:\n" + json.dumps(plan["lora_config"], indent=2))
    if plan.get("launch_command"):
        print("Launch: " + shown(plan["launch_command"]))
    if plan.get("accelerate_config"):
        import yaml

        print("accelerate config (written into the run folder):\n" + yaml.safe_dump(plan["accelerate_config"], sort_keys=False))


def _follow_run(run_dir, *, quiet: bool) -> dict:
    """Print metrics as the worker writes them; Ctrl-C asks for a graceful stop (twice: detach)."""
    import time

    seen, stopping = 0, False
    if not quiet:
        print(f"run {run_dir} (log: {run_dir / 'train.log'})")
    while True:
        try:
            status = runs.read_status(run_dir)
            metrics = runs.read_metrics(run_dir)
            for record in metrics[seen:]:
                if not quiet:
                    print(metric_line(record, status.get("total_steps")))
            seen = len(metrics)
            if status.get("state") not in runs.LIVE_STATES:
                return status
            queue.start_next()  # a queued run whose predecessor was killed still gets its turn
            time.sleep(1.0)
        except KeyboardInterrupt:
            if stopping:
                print(f"\ndetached; the run goes on. Stop it with: studio runs, or delete {run_dir / 'stop-requested'}",
                      file=sys.stderr)
                return runs.read_status(run_dir)
            stopping = True
            print("\nstopping: saving a checkpoint at the end of this step (Ctrl-C again to detach)", file=sys.stderr)
            runs.stop(run_dir)


def cmd_chat(args) -> int:
    from core.chat import engine as chat
    from core.eval import ab, metrics, report

    sampling = chat.Sampling(args.system or "", args.temperature, args.top_p, args.max_new_tokens, args.seed)
    try:
        sampling.check()
        sides = ab.sides_for(args.adapter, all_checkpoints=args.all_checkpoints)
        prompts, bad = prompt_sets.load_prompt_set(args.prompts) if args.prompts else ([], [])
        patterns = metrics.load_patterns(args.patterns)
        engine = chat.engine_for(args.model)
        if args.prompt is not None:
            keys = {label: engine.attach(path) if path else chat.BASE for label, path in sides.items()}
            messages = [{"role": "user", "content": args.prompt}]
            for streamed in engine.stream({key: messages for key in keys.values()}, sampling):  # noqa: B007 - keep the last
                pass
            panes = {label: streamed[key] for label, key in keys.items()}
            answers = {side: {"answer": pane.text.strip(), "tokens": pane.tokens, "seconds": round(pane.seconds, 3),
                              "ttft_s": pane.ttft_s and round(pane.ttft_s, 3), "tokens_per_s": round(pane.tokens_per_s, 2),
                              "error": pane.error} for side, pane in panes.items()}
            if args.json:
                print_json({"model": args.model, "adapter": args.adapter, "prompt": args.prompt,
                             "answer": answers[chat.BASE]["answer"], "answers": answers})
            for side, answer in answers.items() if not args.json else ():
                print(answer["answer"] if len(answers) == 1 else f"[{side}] {answer['error'] or answer['answer']}\n")
            return 1 if any(answer["error"] for answer in answers.values()) else 0
        for row in bad:
            print(f"skipped {row}", file=sys.stderr)
        rows = []
        for progress in ab.run_prompt_set(engine, prompts, sampling, sides, patterns):
            rows.append(progress.row)
            print(f"[{progress.done}/{progress.total}] {progress.side}: {progress.row['prompt_id']}", file=sys.stderr)
        table = metrics.aggregate(rows, patterns)
        saved = report.save_results(rows, next((path for path in sides.values() if path), None))
        if args.out:
            report.export(rows, args.out)
    except (tuned.AdapterMismatch, tuned.TunedModelError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print_json({"model": args.model, "adapter": args.adapter, "prompts": len(prompts), "results": len(rows),
                     "bad_lines": [{"line": row.line, "reason": row.reason} for row in bad], "aggregate": table, "out": args.out,
                     "saved": [str(path) for path in saved]})
    else:
        print(report.format_aggregate(table))
        print(f"\n{len(prompts)} prompts, {len(bad)} bad lines skipped; results saved to "
              + ", ".join(str(path) for path in ([args.out] if args.out else []) + saved))
    return 0


def cmd_export(args) -> int:
    """Exit 0: every step done; 1: a step failed (the manifest says which); 2: bad source."""
    try:
        plan = pipeline.make_plan(
            args.source, checkpoint=args.checkpoint, merge_dir=args.merge, gguf=args.gguf, ollama=args.ollama,
            ollama_host=args.ollama_host, ollama_quantize=args.ollama_quantize, hub=args.hub, hub_private=not args.public,
            hub_what=args.hub_what, verify=not args.no_verify, system=args.system)
    except pipeline.ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    last, failures = None, []
    for event in pipeline.run_export(plan):
        last = event
        if event.kind == "failed":
            failures.append({"step": event.step, "error": event.message})
        if event.kind != "progress" or not args.json:
            print(f"[{event.step}] {event.message}", file=sys.stderr if args.json else sys.stdout, flush=True)
    data = last.data if last else {}
    if args.json:
        print_json({"ok": not failures, "source": args.source, "export_dir": data.get("export_dir"),
                     "manifest": data.get("manifest"), "steps": data.get("steps", {}), "verify": data.get("verify"),
                     "ollama": data.get("ollama"), "errors": failures})
    elif data.get("verify"):
        report = data["verify"]
        print(f"verify ({report['runtime']}): {report['agreed']}/{report['total']} prompts give the same greedy answer, "
              f"{report['token_agreement']:.0%} of next tokens agree")
    if data.get("ollama", {}) and data["ollama"].get("run_command"):
        print(f"ready: {data['ollama']['run_command']}", file=sys.stderr if args.json else sys.stdout)
    if last is not None and last.step == "export" and last.kind == "failed" and not data:
        return 2
    return 1 if failures else 0

