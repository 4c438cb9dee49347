"""Two training processes (accelerate launch, gloo on CPU) against one, on the same cores, side by side.

Both runs go through the studio's own launcher (core.train.runs.start: the worker, or accelerate
launch with the run folder's config file) on the smoke recipe's model and data, with the same
global batch: 1 process x batch B against 2 processes x batch B/2. It prints, for each, input
tokens per second over the timed steps (the first step is a warm-up and not counted, and neither is
process start-up), the wall time including start-up, the final train loss, and the ratio 2p/1p,
with the machine's load average (on a shared 2-core machine expect no speed-up, as each process
gets one core and they exchange gradients every step: the point of the 2-process path is
correctness, and GPUs).

    python bench/distributed_speed.py [--steps 6] [--batch 4] [--model embedded|tiny|PATH] [--json out.json]

`--model tiny` trains a random 2-layer Llama with the embedded model's tokenizer: the launcher and
gradient exchange dominate, which is the overhead a 2-process run adds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(recipe, label: str) -> dict:
    """One run through the studio's launcher; tokens/s between the first and the last logged step."""
    from core.train import runs

    load_before = _load()
    started = time.monotonic()
    run = runs.start(recipe)
    status = runs.wait(run, timeout=3600)
    wall = time.monotonic() - started
    if status.get("state") != "completed":
        raise SystemExit(f"{label}: the run ended {status.get('state')}: {status.get('error')}\n{runs.tail_log(run, 30)}")
    train = [m for m in runs.read_metrics(run) if m.get("split") == "train" and m.get("tokens_seen")]
    first, last = train[0], train[-1]
    tokens = last["tokens_seen"] - first["tokens_seen"]
    seconds = last["elapsed"] - first["elapsed"]
    return {"label": label, "processes": recipe.training.num_processes, "per_process_batch": recipe.training.batch_size,
            "global_batch": recipe.training.batch_size * recipe.training.num_processes, "steps": last["step"],
            "timed_steps": last["step"] - first["step"], "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
            "wall_s_with_startup": round(wall, 1), "final_loss": last.get("loss"), "load_before": load_before,
            "load_after": _load(), "run_dir": str(run)}


def tiny_model(folder: Path) -> str:
    """A random 2-layer Llama with the embedded tokenizer (as the test suite builds it)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.models import embedded_model_dir

    if not (folder / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=4, help="global batch (the 2-process run uses half per process)")
    parser.add_argument("--model", default="embedded", help="model to train (default: the embedded SmolLM2-135M)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as one JSON object")
    args = parser.parse_args(argv)
    if args.batch % 2:
        parser.error("--batch must be even (it is split over 2 processes)")
    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-bench-"))

    from core import recipes
    from core.workspace import workspace

    model = tiny_model(workspace().models / "bench-tiny-llama") if args.model == "tiny" else args.model
    overrides = [f"model.name={model}", f"training.max_steps={args.steps}", "data.eval_split=0",
                 "training.save_steps=100000", "training.eval_steps=null", "training.logging_steps=1"]
    one = recipes.load("configs/smoke-cpu.yaml", overrides + [f"training.batch_size={args.batch}"])
    two = recipes.load("configs/smoke-cpu.yaml", overrides + [f"training.batch_size={args.batch // 2}",
                                                              "training.num_processes=2", "training.distributed=ddp"])
    results = [measure(one, "1 process"), measure(two, "2 processes (gloo)")]
    ratio = (results[1]["tokens_per_s"] / results[0]["tokens_per_s"]
             if results[0]["tokens_per_s"] and results[1]["tokens_per_s"] else None)
    report = {"model": args.model, "steps": args.steps, "global_batch": args.batch, "cpu_count": os.cpu_count(),
              "runs": results, "ratio_2p_over_1p": round(ratio, 3) if ratio else None}
    print(f"{'run':22} {'tokens/s':>9} {'wall s':>8} {'final loss':>11} {'load before':>16}")
    for r in results:
        print(f"{r['label']:22} {r['tokens_per_s'] or 0:>9.1f} {r['wall_s_with_startup']:>8.1f} "
              f"{r['final_loss'] or 0:>11.4f} {r['load_before']:>16}")
    print(f"2 processes / 1 process tokens/s: {report['ratio_2p_over_1p']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
