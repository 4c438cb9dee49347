"""Speed of the Chat tab and the A/B runner against plain transformers `generate`, side by side.

One process, one model, the same greedy settings for every measurement:
  plain       `model.generate` on one prompt (a plain copy of the base model): tokens/s, TTFT
  sequential  two plain generations one after the other (base, then tuned through peft): what a
              pair of panes costs without batching; its tokens/s is the reference for the pair
  pair        core.chat.engine's base + tuned panes (one batch, per-row adapter scale; the engine
              decodes in its own thread with the thread count it measured, core.chat.cpu_threads):
              tokens/s for the pair and per pane, TTFT per pane; `pair_ratio` = pair tokens/s / sequential tokens/s
  decode_linear  one decoding step's matmuls over the model's weights for 1 and 2 rows: F.linear vs
              core.decode_linear (weight @ rows.T), and the weights' bytes over the time to read
              that many bytes (the memory's limit for a step)
  ab          a prompt set (both sides) through core.eval.ab.run_prompt_set (batched, in a worker
              thread as the Chat tab runs it) vs
              one-at-a-time plain generation of the same answers; `ab_speedup` = plain wall / batched
              wall, and `greedy_identical` compares every answer's token ids
  decode_path  the rows up to which the engine takes core.decode_linear at each thread count, as
              measured on this machine (0: F.linear everywhere); `cpu` names the machine
Targets (issue #15): pair_ratio >= 1.3, ab_speedup >= 3, greedy_identical true.
The machine's load (`uptime`) is printed with the results; read ratios, not absolute numbers.

    python bench/chat_speed.py [--model embedded] [--tokens 32] [--prompts 20]
                               [--baseline-prompts N] [--repeats 2] [--json FILE]
`--baseline-prompts N` times the plain one-at-a-time A/B on the first N prompts only and scales
its wall time to the whole set (said so in the output); the default times all of them.
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
QUESTION = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if os.path.exists("/proc/loadavg") else "?"


def make_adapter(model, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(out)
    return out


class _FirstToken:
    """A streamer that records when the first generated token arrived."""

    def __init__(self):
        self.prompt_seen, self.first = False, None

    def put(self, value):
        if self.prompt_seen and self.first is None:
            self.first = time.perf_counter()
        self.prompt_seen = True

    def end(self):
        pass


DEFAULT_THREADS: list[int] = []  # torch's own thread count at start: what a plain script decodes with


def plain_generate(model, tokenizer, messages, tokens: int, eos: bool = True) -> dict:
    import torch

    if DEFAULT_THREADS:
        torch.set_num_threads(DEFAULT_THREADS[0])  # the engine may have chosen another count; plain gets torch's own
    from transformers.generation.streamers import BaseStreamer

    streamer = type("FirstToken", (_FirstToken, BaseStreamer), {})()
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    start = time.perf_counter()
    with torch.inference_mode():
        extra = {} if eos else {"min_new_tokens": tokens}
        output = model.generate(**inputs, max_new_tokens=tokens, do_sample=False, streamer=streamer,
                                pad_token_id=tokenizer.pad_token_id, **extra)
    seconds = time.perf_counter() - start
    ids = output[0, inputs["input_ids"].shape[1]:].tolist()
    return {"ids": ids, "seconds": seconds, "ttft_s": streamer.first - start, "tokens_per_s": len(ids) / seconds}


def bench_decode_linear(model, rows_list=(1, 2), repeats: int = 5) -> dict:
    """One decoding step's matmuls over every linear layer of `model`, with F.linear and with
    core.decode_linear's forward, at this thread's thread count; and the machine's limit
    for it: the weights' bytes over the time to read a buffer as large (torch.sum over it)."""
    import torch
    import torch.nn.functional as F

    from core.decode_linear import DecodeLinear

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    size = sum(m.weight.numel() * m.weight.element_size() for m in layers)

    def best_of(step) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return min(times)

    def sweep(rows: int, forward) -> float:
        inputs = {m.in_features: torch.randn(rows, m.in_features, dtype=m.weight.dtype) for m in layers}
        return best_of(lambda: [forward(m, inputs[m.in_features]) for m in layers])

    buffer = torch.ones(size // 4)
    result = {"weights_mb": round(size / 2**20), "read_gb_per_s": round(size / best_of(buffer.sum) / 1e9, 1)}
    with torch.inference_mode():
        for rows in rows_list:
            plain = sweep(rows, lambda m, x: F.linear(x, m.weight, m.bias))
            ours = sweep(rows, DecodeLinear.forward)  # the decoding forward on the plain model's own layers
            result[f"rows_{rows}"] = {"f_linear_ms": round(plain * 1e3, 1), "decode_linear_ms": round(ours * 1e3, 1),
                                      "speedup": round(plain / ours, 2), "decode_linear_gb_per_s": round(size / ours / 1e9, 1)}
    return result


def bench_pair(engine, tuned_side, plain_base, plain_tuned, tokens: int, repeats: int) -> dict:
    from core.chat.engine import BASE, Sampling

    best: dict = {}
    for _ in range(repeats):
        one = plain_generate(plain_base, engine.tokenizer, QUESTION, tokens, eos=False)
        two = plain_generate(plain_tuned, engine.tokenizer, QUESTION, tokens, eos=False)
        start = time.perf_counter()
        panes = list(engine.stream({BASE: QUESTION, tuned_side: QUESTION}, Sampling(max_new_tokens=tokens)))[-1]
        pair_s = time.perf_counter() - start
        pair_tokens = panes[BASE].tokens + panes[tuned_side].tokens
        sequential = (len(one["ids"]) + len(two["ids"])) / (one["seconds"] + two["seconds"])
        result = {
            "plain_tokens_per_s": round(one["tokens_per_s"], 2), "plain_ttft_s": round(one["ttft_s"], 3),
            "sequential_tokens_per_s": round(sequential, 2),
            "pair_tokens_per_s": round(pair_tokens / pair_s, 2),
            "pane_tokens_per_s": {"base": round(panes[BASE].tokens_per_s, 2), "tuned": round(panes[tuned_side].tokens_per_s, 2)},
            "pane_ttft_s": {"base": round(panes[BASE].ttft_s, 3), "tuned": round(panes[tuned_side].ttft_s, 3)},
            "pair_tokens": pair_tokens,
        }
        result["pair_ratio"] = round(result["pair_tokens_per_s"] / result["sequential_tokens_per_s"], 2)
        result["pane_over_plain"] = round(min(result["pane_tokens_per_s"].values()) / result["plain_tokens_per_s"], 2)
        best.setdefault("repeats", []).append(result)
        print(f"pair repeat: ratio {result['pair_ratio']} (load {load()})", file=sys.stderr, flush=True)
    ratios = [r["pair_ratio"] for r in best["repeats"]]
    return {**best["repeats"][-1], "pair_ratio_spread": [min(ratios), max(ratios)]}


def bench_ab(engine, adapter: Path, plain_base, plain_tuned, prompts, tokens: int, baseline: int) -> dict:
    import threading

    from core.chat.engine import BASE, Sampling
    from core.eval import ab

    rows: list = []

    def batched():  # in a worker thread, as the Chat tab's A/B runs (a gradio handler thread)
        rows.extend(p.row for p in ab.run_prompt_set(engine, prompts, Sampling(max_new_tokens=tokens),
                                                     {BASE: None, "tuned": str(adapter)}))

    start = time.perf_counter()
    worker = threading.Thread(target=batched)
    worker.start()
    worker.join()
    batched_s = time.perf_counter() - start
    print(f"A/B batched: {batched_s:.1f} s for {len(rows)} answers (load {load()})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    plain = {}
    for prompt in prompts[:baseline]:
        for side, model in ((BASE, plain_base), ("tuned", plain_tuned)):
            plain[side, prompt.id] = plain_generate(model, engine.tokenizer, prompt.messages, tokens)["ids"]
    plain_s = (time.perf_counter() - start) * len(prompts) / baseline
    compared = identical = 0
    for row in rows:
        ids = plain.get((row["side"], row["prompt_id"]))
        if ids is not None:
            compared += 1
            identical += row["tokens"] == len(ids) and row["answer"] == engine.tokenizer.decode(ids, skip_special_tokens=True)
    return {"prompts": len(prompts), "answers": len(rows), "ab_batched_wall_s": round(batched_s, 1),
            "ab_plain_wall_s": round(plain_s, 1), "plain_timed_prompts": baseline,
            "ab_speedup": round(plain_s / batched_s, 2), "greedy_identical": compared > 0 and identical == compared,
            "greedy_compared": compared, "greedy_identical_count": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per answer")
    parser.add_argument("--prompts", type=int, default=20, help="prompts in the A/B (from the bundled sets)")
    parser.add_argument("--baseline-prompts", type=int, default=None, help="time plain one-at-a-time on this many")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-ab", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import torch
    from peft import PeftModel

    from core import models
    from core.chat.engine import ChatEngine
    from core.eval import prompts as prompts_mod

    DEFAULT_THREADS.append(torch.get_num_threads())
    engine = ChatEngine(args.model)
    plain_base = models.load_model(args.model).eval()
    with tempfile.TemporaryDirectory() as scratch:
        adapter = make_adapter(models.load_model(args.model), Path(scratch) / "adapter")
        plain_tuned = PeftModel.from_pretrained(models.load_model(args.model), str(adapter)).eval()
        tuned_side = engine.attach(adapter)
        plain_generate(plain_base, engine.tokenizer, QUESTION, 2)  # warm-up
        results = {"model": args.model, "tokens": args.tokens, "threads": DEFAULT_THREADS[0],
                   "engine_threads": engine.threads,
                   "attn_implementation": engine.base.config._attn_implementation, "load_before": load()}
        results["decode_linear"] = bench_decode_linear(plain_base)  # in this (main) thread, torch's own thread count
        from core import decode_linear
        from core.precision import machine_key

        # What the engine chose on this machine (studio system prints the same), beside both paths' times.
        results["cpu"] = machine_key()
        results["decode_path"] = {threads: decode_linear.rows_limit(threads) for threads in sorted({DEFAULT_THREADS[0], 1})}
        results.update(bench_pair(engine, tuned_side, plain_base, plain_tuned, args.tokens, args.repeats))
        if not args.skip_ab:
            pool = [p for path in prompts_mod.bundled_prompt_sets() for p in prompts_mod.load_prompt_set(path)[0]]
            prompts = pool[: args.prompts]
            results.update(bench_ab(engine, adapter, plain_base, plain_tuned, prompts, args.tokens,
                                    min(args.baseline_prompts or len(prompts), len(prompts))))
    results["load_after"] = load()
    for key, value in results.items():
        print(f"{key:>26}  {value}")
    print(f"pair of panes vs two sequential plain generations: {results['pair_ratio']}x (target >= 1.3)")
    if "ab_speedup" in results:
        scaled = "" if results["plain_timed_prompts"] == results["prompts"] else \
            f" (plain timed on {results['plain_timed_prompts']} prompts, scaled)"
        print(f"A/B of {results['prompts']} prompts: {results['ab_speedup']}x faster than one at a time{scaled} "
              f"(target >= 3); greedy identical: {results['greedy_identical']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
