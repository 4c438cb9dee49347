"""Memory of the Chat tab's two panes: base + adapter in one model vs the base model alone.

Each measurement runs in a fresh process, side by side in one invocation:
  base      the base model alone answers one prompt
  engine    core.chat.engine.ChatEngine with a LoRA adapter attached; base and tuned panes answer at once
  two       (for scale) the base model plus a second, merged copy: what holding two models costs
Printed: peak resident memory of each process, the part above the process's memory before the
model loaded (torch and libraries), and the ratios engine/base (target <= 1.2x) and two/base.
On CUDA the GPU's peak allocated memory is compared as well.

    python bench/chat_memory.py [--model embedded] [--rank 16] [--tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTION = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_adapter(model: str, out: Path, rank: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from core import models

    torch.manual_seed(0)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(models.load_model(model), lora).save_pretrained(out)


def measure(kind: str, model: str, adapter: str, tokens: int) -> dict:
    import peft  # noqa: F401
    import torch  # noqa: F401  (libraries first: the floor is what a process costs before any model)
    import transformers  # noqa: F401

    from core import models
    from core.chat import engine as chat

    floor = rss_mb()
    cuda = torch.cuda.is_available()
    settings = chat.Sampling(max_new_tokens=tokens)
    engine = chat.ChatEngine(model)
    if kind == "engine":
        side = engine.attach(adapter)
        final = list(engine.stream({chat.BASE: QUESTION, side: QUESTION}, settings))[-1]
    elif kind == "two":
        from peft import PeftModel

        merged = PeftModel.from_pretrained(models.load_model(model), adapter).merge_and_unload()
        with tempfile.TemporaryDirectory() as folder:
            merged.save_pretrained(folder)
            del merged
            side = engine.attach(folder)
            final = list(engine.stream({chat.BASE: QUESTION, side: QUESTION}, settings))[-1]
    else:
        final = list(engine.stream({chat.BASE: QUESTION}, settings))[-1]
    return {"kind": kind, "floor_mb": round(floor, 1), "peak_mb": round(peak_mb(), 1),
            "model_mb": round(peak_mb() - floor, 1), "tokens": sum(p.tokens for p in final.values()),
            "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode != 0:
        raise SystemExit(f"measurement {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank of the adapter (all linear layers)")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per pane")
    parser.add_argument("--measure", choices=["base", "engine", "two"], help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    parser.add_argument("--make-adapter", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_adapter:
        make_adapter(args.model, Path(args.make_adapter), args.rank)
        print("{}")
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.model, args.adapter, args.tokens)))
        return
    with tempfile.TemporaryDirectory() as folder:
        adapter = str(Path(folder) / "adapter")
        run_child("--model", args.model, "--rank", str(args.rank), "--make-adapter", adapter)
        adapter_mb = sum(f.stat().st_size for f in Path(adapter).iterdir()) / 2**20
        common = ["--model", args.model, "--adapter", adapter, "--tokens", str(args.tokens)]
        results = {kind: run_child("--measure", kind, *common) for kind in ("base", "engine", "two")}
    print(f"model {args.model}, LoRA rank {args.rank} on all linear layers ({adapter_mb:.1f} MB on disk), "
          f"{args.tokens} new tokens per pane")
    print(f"{'':8}{'peak RSS MB':>12}{'above floor MB':>16}{'GPU peak MB':>13}")
    for kind, row in results.items():
        print(f"{kind:8}{row['peak_mb']:>12}{row['model_mb']:>16}{str(row['gpu_peak_mb'] or '-'):>13}")
    base, engine, two = (results[k] for k in ("base", "engine", "two"))
    ratio = engine["model_mb"] / base["model_mb"]
    print(f"\nbase+adapter / base alone: {ratio:.2f}x model memory, {engine['peak_mb'] / base['peak_mb']:.2f}x "
          f"whole process (target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})")
    print(f"two full models / base alone: {two['model_mb'] / base['model_mb']:.2f}x model memory (what the adapter switch avoids)")
    if base["gpu_peak_mb"]:
        print(f"GPU: base+adapter / base alone: {engine['gpu_peak_mb'] / base['gpu_peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
