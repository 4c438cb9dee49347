"""The offline general-skills probe's time for base + tuned on the embedded model, as the
evaluation after training runs it (core.eval.benchmarks.evaluate through lm-evaluation-harness):
model load, the base's pass over every item, then a tuned adapter's. Target (issue #26): under
2 minutes for base and tuned on 2 cores. Beside it, what a person would write by hand for the same
items: plain transformers, one batched forward (16 a batch, padded to the longest) over every
multiple-choice item's prompt + choice, per side; the ratio shows what the harness costs or saves
(it sorts requests by length, so its batches carry less padding).

    python bench/probe_time.py [--limit N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def zero_adapter(folder: Path) -> Path:
    """A LoRA adapter on every linear layer with B = 0: the tuned side costs what a real one does."""
    from peft import LoraConfig, get_peft_model

    from core import models

    get_peft_model(models.load_model("embedded"), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")).save_pretrained(folder)
    return folder


def plain_seconds(limit: int | None) -> tuple[float, int]:
    """Plain transformers over the multiple-choice sequences (prompt + each choice), 16 a batch;
    and how many sequences that was."""
    import torch

    from core import models

    tokenizer, model = models.load_tokenizer("embedded"), models.load_model("embedded").eval()
    texts = []
    for part in ("arithmetic", "facts", "reading"):
        rows = [json.loads(line) for line in (ROOT / "assets/benchmarks/studio_probe" / f"{part}.jsonl").read_text().splitlines()]
        for row in rows[:limit]:
            texts += [f"Question: {row['question']}\nAnswer: {choice}" for choice in row["choices"]]
    tokenizer.padding_side = "right"
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), 16):
            batch = tokenizer(texts[i:i + 16], return_tensors="pt", padding=True)
            model(**batch)
    return time.perf_counter() - start, len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="at most N items per task (default: all)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()

    from core.eval import benchmarks

    with tempfile.TemporaryDirectory() as scratch:
        adapter = zero_adapter(Path(scratch) / "adapter")
        start = time.perf_counter()
        result = benchmarks.evaluate("embedded", [("tuned", adapter)], ["studio_probe"], limit=args.limit, say=lambda _: None)
        total = time.perf_counter() - start
    items = sum(line["n"] for line in result["rows"][0]["changes"].values())
    plain, sequences = plain_seconds(args.limit)
    numbers = {"cpu_count": os.cpu_count(), "items": items, "limit": args.limit, "base_and_tuned_s": round(total, 1),
               "target_s": 120, "within_target": total < 120,
               "plain_transformers_mc_s_one_side": round(plain, 2), "mc_sequences_one_side": sequences,
               "ratio_to_plain_both_sides": round(total / (2 * plain), 2),
               "scores": {task: {"base": line["base"], "tuned": line["tuned"]} for task, line in result["rows"][0]["changes"].items()}}
    print(f"studio_probe, {items} items, base + tuned (embedded model, zero LoRA): {total:.1f} s "
          f"(target under 120 s: {'yes' if total < 120 else 'NO'})")
    print(f"plain transformers, batched forwards over the {sequences} multiple-choice sequences: {plain:.2f} s a side; "
          f"the whole probe (model loads and the format part's generation included) takes "
          f"{numbers['ratio_to_plain_both_sides']}x that for both sides")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
