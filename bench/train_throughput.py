"""Training throughput, measured side by side in one process on the embedded model with LoRA
r=16 on all linear layers over the bundled friction sample:

  (a) the studio's trainer (core.train.training: pre-tokenized labels, padding-free batches, the
      precision core.precision measured for this CPU (bf16 autocast over fp32 weights where the CPU
      has native bf16 and that is faster; the same run forced to fp32 is shown beside it, with
      the loss curves' difference against the stated tolerance), only trained positions through
      the LM head, attention one sequence at a time over the packed row (core.train.packed_attention)
      instead of transformers' block-diagonal SDPA mask, each LoRA linear one autograd node
      (core.train.fused_lora) over frozen weights kept in bf16 under autocast)
  (b) plain trl SFTTrainer as trl's docs show it: SFTConfig(output_dir=...) with its defaults
      (bf16=True, batch 8, padded batches), the same conversations as `messages` rows
  (c) a bare forward + backward + AdamW loop over the studio's own batches and model (the same
      attention), in the studio's precision (the practical limit)
  (d) plain trl configured well by hand: the studio's precision (bf16 autocast where core.precision
      measured it faster on this CPU, else fp32), padding-free batches, completion-only
      loss (prompt/completion rows), the studio's batch size, learning rate and LoRA; transformers'
      SDPA attention (flash-attention's varlen kernels are CUDA-only)

A step's time on this kind of shared 2-core machine drifts by +-15% from run to run, more than
some changes it is meant to show; so the LoRA layers are also compared pass by pass: the studio's
fused layers and peft's own on one model and one batch, alternated (`lora_layers`: the median of
the per-pair ratios and in how many pairs the fused pass was faster).
In the same run it measures the CPU's matmul peak (fp32; bf16 too where the CPU has native bf16)
and prints model FLOP utilization:
  MFU = 6 x P x trained tokens/s / peak FLOP/s,  P = weights of every linear layer a token passes
  through (decoder projections + LM head; embeddings are a lookup, no FLOPs).
6 x P per token is the usual forward (2P) + backward (4P) count; a LoRA run skips the frozen
weights' gradients (about 2P), and prompt tokens are computed but not counted as trained, so
both make this MFU conservative. It also prints MFU over every token processed, as MFU is usually
counted: 6 x (decoder weights x processed tokens/s + LM head x trained tokens/s) / peak (the studio
runs the LM head only where the loss is taken).
The large-matrix peak is not this model's ceiling: its matmuls are skinny (576 wide) and a step's
token count is small. So the run also measures the shape-matched ceiling: the FLOP/s of exactly
the matmuls a LoRA step does on frozen weights (each projection's forward and its input gradient,
at the model's own widths and the step's token count, in the precision in use), and reports
  MFU_shape = 4 x (decoder weights x processed tokens/s + LM head x trained tokens/s) / that ceiling
(4 x P: forward 2P + input gradient 2P; frozen weights take no weight gradient; the adapters'
small matmuls and attention are left out, so this too is conservative).
It prints trained tokens per second for each, the ratios a/b, a/c, a/d (`a_over_tuned_trl`), the
spread of a/c and a/d over `--repeats`, and the share of token slots that are real tokens (not
padding). The first step of each is a warm-up and not timed.
Targets on a 2-core CPU: a/b >= 20, a/c >= 0.8, a/d >= 1.2, MFU(a) >= 50%, real-token share >= 0.95.

    python bench/train_throughput.py [--steps 6] [--baseline-steps 2] [--repeats 2] [--json out.json]
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

from transformers import TrainerCallback  # noqa: E402

AUTOCAST = [False]  # the precision core.precision chose for this CPU: (c) and (d) use it too, as a careful user would


class CountingCollator:
    """Wraps a collator to count token slots, real tokens and trained tokens per batch."""

    def __init__(self, inner, pad_id: int):
        self.inner, self.pad_id, self.batches = inner, pad_id, []

    def __call__(self, features):
        batch = self.inner(features)
        ids, labels = batch["input_ids"], batch["labels"]
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else int(ids.numel())
        self.batches.append({"slots": int(ids.numel()), "real": real, "trained": int((labels[:, 1:] != -100).sum())})
        return batch


class StepTimer(TrainerCallback):
    def __init__(self):
        self.durations, self._start, self.losses = [], None, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)


def summarize(name: str, durations: list[float], batches: list[dict], grad_accum: int = 1) -> dict:
    """Tokens per second over the timed steps (all but the first)."""
    timed = durations[1:]
    per_step = [batches[i * grad_accum:(i + 1) * grad_accum] for i in range(len(durations))][1:]
    trained = sum(b["trained"] for step in per_step for b in step)
    slots = sum(b["slots"] for step in per_step for b in step)
    real = sum(b["real"] for step in per_step for b in step)
    seconds = sum(timed)
    return {"name": name, "steps_timed": len(timed), "seconds": round(seconds, 2),
            "trained_tokens_per_s": round(trained / seconds, 1) if seconds else None,
            "processed_tokens_per_s": round(real / seconds, 1) if seconds else None,
            "real_token_share": round(real / slots, 3) if slots else None, "s_per_step": round(seconds / max(1, len(timed)), 2)}


def studio_run(recipe, steps: int, out: str, precision: str | None = None) -> tuple[dict, list]:
    """(a): the studio's own trainer with its own precision choice (core.precision), or with
    `precision` (fp32 | bf16) forced through STUDIO_CPU_PRECISION."""
    from core import precision as precision_policy
    from core.train import training, training_data

    saved = os.environ.get(precision_policy.ENV)
    if precision:
        os.environ[precision_policy.ENV] = precision
    try:
        result = _studio_run(recipe, steps, out, training, training_data)
    finally:
        if saved is None:
            os.environ.pop(precision_policy.ENV, None)
        else:
            os.environ[precision_policy.ENV] = saved
    if precision:
        result[0]["name"] = f"(a) studio train, {precision} forced"
    return result


def _studio_run(recipe, steps, out, training, training_data) -> tuple[dict, list]:

    recipe.training.max_steps, recipe.data.eval_split, recipe.training.save_steps = steps, 0.0, 10**6
    tokenizer = training.load_tokenizer(recipe.model.name)
    prepared = training_data.prepare(recipe, tokenizer)
    model = training.load_policy_model(recipe)
    timer = StepTimer()
    trainer = training.build_trainer(recipe, Path(out), tokenizer=tokenizer, model=model, prepared=prepared, callbacks=[timer])
    counter = CountingCollator(trainer.data_collator, tokenizer.pad_token_id)
    trainer.data_collator = counter
    trainer.train()
    summary = summarize("(a) studio train", timer.durations, counter.batches)
    summary["losses"] = timer.losses
    summary["first_step_s"] = round(timer.durations[0], 2)  # the warm-up, not timed
    return summary, prepared.train


def trl_defaults_run(recipe, steps: int, out: str) -> dict:
    """What a user copies from trl's SFT quick start, with LoRA as in the peft section."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from core import models
    from core.train import training_data

    examples, _ = training_data.load_examples(recipe)
    dataset = Dataset.from_list([{"messages": e.messages} for e in examples])
    path = models.resolve(recipe.model.name).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    timer = StepTimer()
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(path), train_dataset=dataset, processing_class=tokenizer,
                         # use_cpu=True is what transformers' own error asks for on a CPU; bf16 stays at trl's default.
                         args=SFTConfig(output_dir=out, max_steps=steps, report_to="none", save_strategy="no", use_cpu=True),
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
                         callbacks=[timer])
    counter = CountingCollator(trainer.data_collator, tokenizer.pad_token_id)
    trainer.data_collator = counter
    trainer.train()
    summary = summarize(f"(b) trl defaults (bf16={trainer.args.bf16}, batch {trainer.args.per_device_train_batch_size})",
                        timer.durations, counter.batches, trainer.args.gradient_accumulation_steps)
    return summary


def trl_tuned_run(recipe, steps: int, out: str) -> dict:
    """What a careful user configures by hand in trl: fp32 on this CPU, padding-free batches and
    loss on the completion only (prompt/completion rows: the last assistant turn is the completion)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from core import models
    from core.train import training_data

    examples, _ = training_data.load_examples(recipe)
    rows = [{"prompt": e.messages[:-1], "completion": e.messages[-1:]} for e in examples
            if e.messages and e.messages[-1]["role"] == "assistant"]
    path = models.resolve(recipe.model.name).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    timer = StepTimer()
    config = SFTConfig(output_dir=out, max_steps=steps, report_to="none", save_strategy="no", use_cpu=True, bf16=AUTOCAST[0],
                       padding_free=True, completion_only_loss=True, max_length=None,  # trl: padding-free does not truncate
                       per_device_train_batch_size=recipe.training.batch_size, learning_rate=recipe.training.learning_rate,
                       logging_steps=10**6)
    lora = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(path), train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, args=config, peft_config=lora, callbacks=[timer])
    counter = CountingCollator(trainer.data_collator, tokenizer.pad_token_id)
    trainer.data_collator = counter
    trainer.train()
    name = "bf16 autocast" if AUTOCAST[0] else "fp32"
    return summarize(f"(d) trl tuned ({name}, padding-free, completion-only)", timer.durations, counter.batches)


def matmul_peak(dtype_name: str, seconds: float = 2.0) -> float:
    """Best FLOP/s of torch.mm over a few training-shaped products (tokens x hidden x 3*hidden and
    a square), with the threads torch uses; the ceiling MFU is measured against."""
    import torch

    dtype = getattr(torch, dtype_name)
    best = 0.0
    for m, k, n in ((2048, 576, 1536), (1024, 1024, 1024), (2048, 1536, 576)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        torch.mm(a, b)
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            torch.mm(a, b)
            count += 1
        best = max(best, 2 * m * k * n * count / (time.perf_counter() - start))
    return best


def projection_shapes(recipe) -> tuple[list[tuple[int, int]], tuple[int, int], int]:
    """(in, out) of one decoder layer's projections, the LM head's, and the layer count."""
    from transformers import AutoConfig

    from core import models

    config = AutoConfig.from_pretrained(models.resolve(recipe.model.name).path)
    hidden, inter, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * head_dim
    layer = [(hidden, heads * head_dim), (hidden, kv), (hidden, kv), (heads * head_dim, hidden),
             (hidden, inter), (hidden, inter), (inter, hidden)]
    return layer, (hidden, config.vocab_size), config.num_hidden_layers


def shape_ceiling(recipe, tokens: int, head_tokens: int, dtype_name: str, seconds: float = 2.0) -> float:
    """FLOP/s of the matmuls a LoRA step runs on its frozen weights, at the model's shapes: for each
    projection, forward (x @ W.T) and the input gradient (dy @ W) over `tokens` rows (the LM head
    over `head_tokens`, the trained positions), in `dtype_name`, with the threads torch uses."""
    import torch
    import torch.nn.functional as F

    dtype = getattr(torch, dtype_name)
    layer, head, _ = projection_shapes(recipe)
    work = [(tokens, fan_in, fan_out) for fan_in, fan_out in layer] + [(max(head_tokens, 1), *head)]
    tensors = [(torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype), torch.randn(m, n, dtype=dtype))
               for m, k, n in work]
    flops_per_pass = sum(4 * m * k * n for m, k, n in work)

    def one_pass():
        for x, weight, grad in tensors:
            F.linear(x, weight)
            torch.mm(grad, weight)

    one_pass()
    start, passes = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        one_pass()
        passes += 1
    return flops_per_pass * passes / (time.perf_counter() - start)


def linear_params(recipe) -> int:
    """P in the MFU formula: decoder linear weights plus the LM head."""
    from transformers import AutoConfig

    from core import models

    config = AutoConfig.from_pretrained(models.resolve(recipe.model.name).path)
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * head_dim
    per_layer = hidden * heads * head_dim * 2 + hidden * kv * 2 + 3 * hidden * inter
    return layers * per_layer + hidden * config.vocab_size


def head_params(recipe) -> int:
    from transformers import AutoConfig

    from core import models

    config = AutoConfig.from_pretrained(models.resolve(recipe.model.name).path)
    return config.hidden_size * config.vocab_size


def bare_loop(recipe, samples, steps: int) -> dict:
    """Forward + backward + AdamW over the same padding-free batches, no trainer at all: the same
    computation as (a) (trained positions only through the LM head), so a/c is the trainer's cost."""
    import torch
    from peft import get_peft_model
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.train import trainer_configs, training, training_data

    tokenizer = training.load_tokenizer(recipe.model.name)
    model = get_peft_model(training.load_policy_model(recipe), trainer_configs.lora_config(recipe))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.training.learning_rate)
    collate = CountingCollator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True),
                               tokenizer.pad_token_id)
    rows = training_data.sft_dataset(samples)
    size, durations = recipe.training.batch_size, []
    for step in range(steps):
        batch = collate([rows[(step * size + i) % len(rows)] for i in range(size)])
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST[0]):  # the studio's precision, for a fair a/c
            loss = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                         use_cache=False, **training.trained_positions(batch["labels"])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        durations.append(time.perf_counter() - start)
    return summarize("(c) bare forward+backward loop", durations, collate.batches)


def _pair_model_and_batch(recipe, samples):
    """A LoRA model as the studio trains it (bf16 frozen weights under autocast) and one padding-free batch."""
    from peft import get_peft_model
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.precision import lean_adapters
    from core.train import trainer_configs, training, training_data

    tokenizer = training.load_tokenizer(recipe.model.name)
    model = get_peft_model(training.load_policy_model(recipe), trainer_configs.lora_config(recipe))
    model.train()
    if AUTOCAST[0]:
        lean_adapters(model)
    rows = training_data.sft_dataset(samples)
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(
        [rows[i % len(rows)] for i in range(recipe.training.batch_size)])
    return model, batch


def _alternated(model, batch, variants: dict, pairs: int) -> dict:
    """Forward + backward of `batch` under each variant ({name: (setup, loss_fn)}), alternated pass
    by pass, so a drift in the machine's speed hits them alike; the first round warms up."""
    import torch

    times: dict[str, list] = {name: [] for name in variants}
    losses: dict[str, float] = {}
    for index in range(pairs + 1):
        for name, (setup, loss_fn) in variants.items():
            setup()
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST[0]):
                loss = loss_fn()
            loss.backward()
            model.zero_grad(set_to_none=True)
            if index:
                times[name].append(time.perf_counter() - start)
            losses[name] = loss.item()
    return {"times": times, "losses": losses}


def _compared(new: str, old: str, found: dict, pairs: int, tokens: int) -> dict:
    import statistics

    times, losses = found["times"], found["losses"]
    ratios = [o / n for n, o in zip(times[new], times[old])]
    return {"pairs": pairs, "tokens": tokens,
            f"{new}_s_median": round(statistics.median(times[new]), 3), f"{old}_s_median": round(statistics.median(times[old]), 3),
            f"{old}_over_{new}_median": round(statistics.median(ratios), 3), f"{old}_over_{new}_spread": spread(ratios),
            f"{new}_faster_in": sum(r > 1 for r in ratios),
            "loss_relative_difference": round(abs(losses[new] - losses[old]) / abs(losses[old]), 5)}


def paired_layers(recipe, samples, pairs: int = 8) -> dict:
    """The studio's LoRA layers (core.train.fused_lora) against peft's own, on one model and one
    batch, alternated pass by pass: the median of the per-pair time ratios, and whether the losses agree."""
    from core.train import fused_lora, training

    model, batch = _pair_model_and_batch(recipe, samples)

    def model_loss():
        return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                     use_cache=False, **training.trained_positions(batch["labels"])).loss
    found = _alternated(model, batch, {"fused": (lambda: fused_lora.use_for(model), model_loss),
                                       "peft": (lambda: fused_lora.restore(model), model_loss)}, pairs)
    return _compared("fused", "peft", found, pairs, int(batch["input_ids"].numel()))


def paired_head(recipe, samples, pairs: int = 8) -> dict:
    """The LM head and its loss chunk by chunk (core.train.head_loss) against the model's own head
    and cross-entropy (as the studio ran it before: trained positions only), one model and batch,
    the studio's LoRA layers in both, alternated pass by pass."""
    from core.train import fused_lora, head_loss, training

    model, batch = _pair_model_and_batch(recipe, samples)
    fused_lora.use_for(model)
    inputs = {key: batch[key] for key in ("input_ids", "position_ids", "labels")}

    def model_loss():
        return model(**inputs, use_cache=False, **training.trained_positions(batch["labels"])).loss
    found = _alternated(model, batch, {"chunked": (lambda: None, lambda: head_loss.causal_lm_loss(model, inputs)),
                                       "model": (lambda: None, model_loss)}, pairs)
    return _compared("chunked", "model", found, pairs, int(batch["input_ids"].numel()))


def paired_norm(recipe, samples, pairs: int = 8) -> dict:
    """RMSNorm as one autograd node (core.train.fused_norm) against transformers' own norm, one
    model and batch, the studio's LoRA layers and head loss in both, alternated pass by pass."""
    from core.train import fused_lora, fused_norm, head_loss

    model, batch = _pair_model_and_batch(recipe, samples)
    fused_lora.use_for(model)
    norms = [m for m in model.modules() if type(m).__name__ in fused_norm.NORMS]
    inputs = {key: batch[key] for key in ("input_ids", "position_ids", "labels")}

    def transformers_own():
        for norm in norms:
            vars(norm).pop("forward", None)

    def loss():
        return head_loss.causal_lm_loss(model, inputs)
    found = _alternated(model, batch, {"studio": (lambda: fused_norm.use_for(model), loss),
                                       "transformers": (transformers_own, loss)}, pairs)
    return _compared("studio", "transformers", found, pairs, int(batch["input_ids"].numel()))


def cpu_bf16_support() -> str:
    """Whether this CPU computes bf16 natively: where it does, trl's bf16 default costs far less."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return ", ".join(native) if native else "none (bf16 is emulated: expect the 30x slow-down)"


def spread(values: list[float]) -> list[float]:
    return [round(min(values), 3), round(max(values), 3)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="configs/smoke-cpu.yaml")
    parser.add_argument("--steps", type=int, default=6, help="steps for (a) and (c), the first is a warm-up")
    parser.add_argument("--baseline-steps", type=int, default=2, help="steps for (b); each is slow on a CPU")
    parser.add_argument("--repeats", type=int, default=2, help="repeat (a), (c) and (d) to show the ratios' spread")
    parser.add_argument("--set", action="append", default=[], help="recipe override FIELD=VALUE (repeatable)")
    parser.add_argument("--layer-pairs", type=int, default=8, help="pairs of passes for the LoRA-layer comparison")
    parser.add_argument("--skip-defaults", action="store_true", help="skip (b), trl's defaults (slow on CPUs without bf16)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    from core import recipes

    def fresh():
        return recipes.load(args.recipe, ["lora.r=16", "lora.alpha=32", "lora.target_modules=[all-linear]", *args.set])

    bf16 = cpu_bf16_support()
    peak = {"float32": matmul_peak("float32")}
    if not bf16.startswith("none") and bf16 != "unknown":
        peak["bfloat16"] = matmul_peak("bfloat16")
    from core import precision as precision_policy

    choice = precision_policy.cpu_choice()
    AUTOCAST[0] = choice["autocast"] == "bfloat16"
    runs: dict[str, list] = {"a": [], "c": [], "d": [], "a32": []}
    ceiling_dtype = "bfloat16" if AUTOCAST[0] else "float32"
    ceilings: dict[str, list] = {"a": [], "c": []}  # measured right after each run: the machine's speed drifts

    def ceiling_after(key: str, row: dict) -> None:
        ceilings[key].append(shape_ceiling(fresh(), int(row["processed_tokens_per_s"] * row["s_per_step"]),
                                           int(row["trained_tokens_per_s"] * row["s_per_step"]), ceiling_dtype))

    with tempfile.TemporaryDirectory() as out:
        for repeat in range(args.repeats):
            a, samples = studio_run(fresh(), args.steps, f"{out}/a{repeat}")
            runs["a"].append(a)
            ceiling_after("a", a)
            if choice["autocast"]:  # the studio chose bf16 autocast here: the same run in fp32, for speed and loss
                runs["a32"].append(studio_run(fresh(), args.steps, f"{out}/a32{repeat}", precision="fp32")[0])
            runs["c"].append(bare_loop(fresh(), samples, args.steps))
            ceiling_after("c", runs["c"][-1])
            runs["d"].append(trl_tuned_run(fresh(), args.steps, f"{out}/d{repeat}"))
        b = None if args.skip_defaults else trl_defaults_run(fresh(), args.baseline_steps, out + "/b")
    layers = paired_layers(fresh(), samples, args.layer_pairs)
    head_pairs = paired_head(fresh(), samples, args.layer_pairs)
    norm_pairs = paired_norm(fresh(), samples, args.layer_pairs)
    peak["float32_after"] = matmul_peak("float32")  # the load may change during the run: show both ends
    params = linear_params(fresh())
    head = head_params(fresh())

    def processed_flops(row: dict) -> float:
        """6 x decoder weights x every token processed + 6 x LM head x trained tokens (the head
        runs only where the loss is taken)."""
        return 6 * ((params - head) * row["processed_tokens_per_s"] + head * row["trained_tokens_per_s"])

    rate = {key: [r["trained_tokens_per_s"] for r in rows] for key, rows in runs.items()}
    a_last = runs["a"][-1]
    step_tokens = int(a_last["processed_tokens_per_s"] * a_last["s_per_step"])
    step_trained = int(a_last["trained_tokens_per_s"] * a_last["s_per_step"])
    ceiling = ceilings["a"][-1]

    best_ceiling = max(value for values in ceilings.values() for value in values)

    def shape_flops(row: dict) -> float:
        """4 x (decoder weights x processed tokens/s + LM head x trained tokens/s): what the frozen
        weights' matmuls of a LoRA step compute."""
        return 4 * ((params - head) * row["processed_tokens_per_s"] + head * row["trained_tokens_per_s"])
    precision_check = None
    if runs["a32"]:
        pairs = [(x, y) for x, y in zip(runs["a"][-1]["losses"], runs["a32"][-1]["losses"])]
        relative = [abs(x - y) / y for x, y in pairs if y]
        precision_check = {"choice": choice["why"], "autocast_over_fp32": spread([x / y for x, y in zip(rate["a"], rate["a32"])]),
                           "loss_mean_relative_difference": round(sum(relative) / max(1, len(relative)), 4),
                           "loss_max_relative_difference": round(max(relative, default=0.0), 4),
                           "tolerance": precision_policy.LOSS_TOLERANCE, "fp32": runs["a32"][-1]}
    a, c, d = (runs[key][-1] for key in "acd")
    fp32_peak = max(peak["float32"], peak["float32_after"])
    if AUTOCAST[0] and "bfloat16" in peak:  # the matmuls run in bf16: MFU against the bf16 peak
        fp32_peak = max(fp32_peak, peak["bfloat16"])
    results = {"a": a, "b": b, "c": c, "d": d, "threads": torch.get_num_threads(),
               "a_over_b": round(a["trained_tokens_per_s"] / b["trained_tokens_per_s"], 2) if b else None,
               # the most a/b can be on this CPU: the studio at 100% of the peak (6 x P per trained token)
               "a_over_b_ceiling": round(fp32_peak / (6 * params * b["trained_tokens_per_s"]), 2) if b else None,
               "a_over_c": round(a["trained_tokens_per_s"] / c["trained_tokens_per_s"], 3),
               "a_over_tuned_trl": round(a["trained_tokens_per_s"] / d["trained_tokens_per_s"], 3),
               "a_over_c_spread": spread([x / y for x, y in zip(rate["a"], rate["c"])]),
               "a_over_tuned_trl_spread": spread([x / y for x, y in zip(rate["a"], rate["d"])]),
               "peak_gflops": {k: round(v / 1e9, 1) for k, v in peak.items()},
               "linear_params": params, "mfu_formula": ("6 * linear_params * trained_tokens_per_s / matmul peak of the precision in use "
                               "(fp32, or bf16 under autocast)"),
               "mfu_a": round(6 * params * a["trained_tokens_per_s"] / fp32_peak, 3),
               "mfu_c": round(6 * params * c["trained_tokens_per_s"] / fp32_peak, 3),
               "mfu_a_spread": spread([6 * params * x / fp32_peak for x in rate["a"]]),
               "mfu_a_processed": round(processed_flops(a) / fp32_peak, 3),
               "mfu_c_processed": round(processed_flops(c) / fp32_peak, 3),
               "shape_ceiling": {"gflops": round(ceiling / 1e9, 1), "dtype": ceiling_dtype, "tokens_per_step": step_tokens,
                                 "trained_tokens_per_step": step_trained,
                                 "share_of_large_matrix_peak": round(ceiling / fp32_peak, 3)},
               "shape_ceilings_gflops": {key: [round(x / 1e9, 1) for x in values] for key, values in ceilings.items()},
               # each run against the ceiling measured right after it
               "mfu_a_shape": round(shape_flops(a) / ceiling, 3), "mfu_c_shape": round(shape_flops(c) / ceilings["c"][-1], 3),
               "mfu_a_shape_spread": spread([shape_flops(r) / x for r, x in zip(runs["a"], ceilings["a"])]),
               "mfu_c_shape_spread": spread([shape_flops(r) / x for r, x in zip(runs["c"], ceilings["c"])]),
               # the conservative reading: every run against the highest ceiling measured in the whole bench
               "mfu_a_shape_vs_best": spread([shape_flops(r) / best_ceiling for r in runs["a"]]),
               "mfu_c_shape_vs_best": spread([shape_flops(r) / best_ceiling for r in runs["c"]]),
               "mfu_shape_formula": ("4 * (decoder weights * processed tokens/s + LM head * trained tokens/s) / FLOP/s of the "
                                     "same frozen-weight matmuls at the model's shapes and the step's token count"),
               "lora_layers": layers, "head_loss": head_pairs, "rms_norm": norm_pairs,
               "real_token_share_a": a["real_token_share"], "cpu_bf16": bf16, "precision": precision_check or choice["why"],
               "load": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None}
    for row in (a, runs["a32"][-1] if runs["a32"] else None, b, c, d):
        if row:
            print(f"{row['name']:55} {row['trained_tokens_per_s']:>9} trained tok/s  {row['s_per_step']:>7} s/step  "
                  f"real-token share {row['real_token_share']}")
    print(f"native bf16 on this CPU: {bf16}; matmul peak GFLOP/s {results['peak_gflops']} ({results['threads']} threads)")
    print(f"a/b = {results['a_over_b']}  (target >= 20; at 100% of the matmul peak the studio would reach "
          f"{results['a_over_b_ceiling']})")
    print(f"a/c = {results['a_over_c']}  spread {results['a_over_c_spread']}  (target >= 0.8)")
    print(f"a/d = {results['a_over_tuned_trl']}  spread {results['a_over_tuned_trl_spread']}  (target >= 1.2)")
    print(f"MFU(a) = {results['mfu_a']}  spread {results['mfu_a_spread']}, MFU(c) = {results['mfu_c']}  "
          f"({results['mfu_formula']}, P = {params:,}; target >= 0.5)")
    print(f"MFU over every token processed (prompt tokens too, as MFU is usually counted): (a) {results['mfu_a_processed']}, "
          f"(c) {results['mfu_c_processed']}  (6 * (decoder weights * processed tokens/s + LM head * trained tokens/s) "
          f"/ the same peak)")
    sc = results["shape_ceiling"]
    print(f"shape-matched ceiling: {sc['gflops']} GFLOP/s in {sc['dtype']} for the model's own matmuls at {sc['tokens_per_step']} "
          f"tokens a step ({sc['share_of_large_matrix_peak']:.0%} of the large-matrix peak); MFU_shape (a) = "
          f"{results['mfu_a_shape']} spread {results['mfu_a_shape_spread']}, (c) = {results['mfu_c_shape']} spread "
          f"{results['mfu_c_shape_spread']}  (goal >= 0.5; each run against the ceiling measured right after it: "
          f"{results['shape_ceilings_gflops']} GFLOP/s)")
    print(f"MFU_shape against the highest ceiling of the whole bench ({best_ceiling / 1e9:.1f} GFLOP/s; the conservative reading): "
          f"(a) {results['mfu_a_shape_vs_best']}, (c) {results['mfu_c_shape_vs_best']}")
    print(f"LoRA layers, fused (core.train.fused_lora) vs peft's, same batch of {layers['tokens']} tokens, forward + backward "
          f"alternated {layers['pairs']} times: peft/fused median {layers['peft_over_fused_median']} spread "
          f"{layers['peft_over_fused_spread']} (fused faster in {layers['fused_faster_in']}/{layers['pairs']}; medians "
          f"{layers['fused_s_median']} s vs {layers['peft_s_median']} s; losses differ by {layers['loss_relative_difference']:.3%})")
    print(f"LM head and loss, chunked (core.train.head_loss) vs the model's own, same batch, whole forward + backward "
          f"alternated {head_pairs['pairs']} times: model/chunked median {head_pairs['model_over_chunked_median']} spread "
          f"{head_pairs['model_over_chunked_spread']} (chunked faster in {head_pairs['chunked_faster_in']}/{head_pairs['pairs']}; medians "
          f"{head_pairs['chunked_s_median']} s vs {head_pairs['model_s_median']} s; "
          f"losses differ by {head_pairs['loss_relative_difference']:.3%})")
    print(f"RMSNorm as one node (core.train.fused_norm) vs transformers' own, same batch, alternated {norm_pairs['pairs']} "
          f"times: transformers/studio median {norm_pairs['transformers_over_studio_median']} spread "
          f"{norm_pairs['transformers_over_studio_spread']} (faster in {norm_pairs['studio_faster_in']}/{norm_pairs['pairs']}; "
          f"losses differ by {norm_pairs['loss_relative_difference']:.3%})")
    print(f"real-token share (a) = {results['real_token_share_a']}  (target >= 0.95); load {results['load']}")
    if precision_check:
        print(f"precision: {choice['why']}; (a) vs the same run in fp32: {precision_check['autocast_over_fp32']}x tokens/s; "
              f"loss differs by {precision_check['loss_mean_relative_difference']:.2%} on average "
              f"(max {precision_check['loss_max_relative_difference']:.2%}; tolerance {precision_check['tolerance']:.0%})")
    else:
        print(f"precision: {choice['why']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
