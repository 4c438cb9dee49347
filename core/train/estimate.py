"""Forecast: what a run will need before it starts. Parameters, peak memory per process split into
its parts, whether it fits this machine (or each Hugging Face Jobs flavor), time as a range, cost
per flavor, and the changes that would make a run fit that does not.

Where each number comes from:
- Parameters: the model built on PyTorch's meta device from its config (accelerate's
  `init_empty_weights`, what `accelerate estimate-memory` does) with peft's LoRA put on it: exact
  counts, no weights read or allocated.
- Weights: those counts at the run's dtype; 4-bit (QLoRA) as bitsandbytes stores NF4: half a byte a
  weight plus its blockwise absmax (blocks of 64, double-quantized: one byte a block, and one fp32
  a 256 blocks), norms and embeddings left in 16 bits.
- Ours, from the architecture's shapes: gradients and AdamW's two fp32 states for what trains; the
  activations saved for the backward pass per token and layer (norms, projections, attention,
  the gated MLP), with gradient checkpointing only each layer's input plus one layer; the logits
  over the vocabulary (in fp32 for the loss, and their gradient); GRPO's KV cache while it generates.
- The runtime (Python, torch, transformers, trl loaded; the CUDA context on a GPU): measured once
  per machine by `calibrate`, else a typical value.
- Speed: `calibrate` times a few real training steps of the run's shape on this machine (forward,
  backward and the optimizer, on the run's model, tuning and precision; for GRPO also generation),
  cached per machine, model, precision and shape; without it, the FLOP count (6 x weights on the
  path x tokens) against a typical share of the matmul peak. Time is a range: the measured rate
  +-20%.
This module reads recipes and model configs; it trains nothing and knows nothing about the UI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core import models
from core.recipes import PREFERENCE, Recipe
from core.train.trainer_configs import lora_config

GB = 1024**3
ADAM_STATE_BYTES = 8  # AdamW: exp_avg and exp_avg_sq, fp32, per trainable weight
RUNTIME_BYTES = {"cpu": int(0.9 * GB), "cuda": int(0.6 * GB)}  # typical when not measured (calibrate measures it)
CPU_MFU, GPU_MFU = 0.25, 0.35  # share of the matmul peak a training step reaches when nothing was measured
TIME_SPREAD = 0.2  # the range around the expected time
# A Jobs flavor's matmul peak, for its time: dense bf16/fp16 tensor-core TFLOP/s from NVIDIA's data
# sheets (no card was measured for this table), and for CPU flavors fp32 FLOP/s a vCPU (a hyperthread
# of an AVX-512 server core: half the 167 GFLOP/s a core this project's 2-core Xeon measured).
GPU_PEAK_TFLOPS = {"T4": 65, "L4": 121, "A10G": 70, "A10": 125, "L40S": 362, "A100": 312, "H100": 989, "H200": 989}
UNKNOWN_GPU_TFLOPS = 65  # a card missing from the table is taken as the slowest one listed
VCPU_FLOPS = 80e9


@dataclass
class Shape:
    """A model's size and the shapes that set its activations."""

    total: int
    trainable: int
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int
    vocab: int
    linear: int  # weights inside the transformer layers' linear projections (what 4-bit quantizes)
    path: int  # weights every token passes through (linear projections and the output head)


def model_shape(recipe: Recipe) -> Shape:
    """Exact parameter counts of the run's model (and its LoRA adapter) from its config, on the meta
    device: nothing is downloaded but the config, nothing allocated."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(_config_source(recipe.model.name), trust_remote_code=recipe.model.trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=recipe.model.trust_remote_code)
    text = getattr(config, "text_config", None) or config
    head = model.get_output_embeddings()
    total = sum(p.numel() for p in model.parameters())
    if head is not None and getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)):
        total -= head.weight.numel()  # tied to the input embeddings (the meta model leaves them untied)
    layers_linear = sum(m.weight.numel() for name, m in model.named_modules()
                        if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}")
    path = layers_linear + (head.weight.numel() if head is not None else 0)
    trainable = total if recipe.training.tuning == "full" else _lora_trainable(model, recipe)
    hidden = text.hidden_size
    heads = getattr(text, "num_attention_heads", 1) or 1
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    return Shape(total=total, trainable=trainable, layers=text.num_hidden_layers, hidden=hidden,
                 intermediate=getattr(text, "intermediate_size", 4 * hidden), kv_dim=kv_heads * head_dim,
                 vocab=text.vocab_size, linear=layers_linear, path=path)


def _config_source(name: str) -> str:
    if models.is_embedded(name):  # the converted folder, else the tokenizer folder made from the GGUF holds no config
        folder = models.workspace().models / models.EMBEDDED_FOLDER
        return str(folder if (folder / "config.json").is_file() else models.embedded_model_dir())
    return models.resolve(name).path


def _lora_trainable(model, recipe: Recipe) -> int:
    """peft's own count: the adapter put on the meta model as a run puts it."""
    from peft import get_peft_model

    adapted = get_peft_model(model, lora_config(recipe))
    return sum(p.numel() for p in adapted.parameters() if p.requires_grad)


@dataclass
class Tokens:
    """The run's token shape, from the dry run's counts: the mean and longest sequence a step sees,
    sequences per micro-batch, optimizer steps, and trained sequences per step."""

    mean: float
    longest: int
    per_batch: int
    steps: int
    per_step: int  # sequences in one optimizer step (batch x grad accumulation; x2 for DPO's pairs)
    generated: int = 0  # GRPO: completion tokens generated a step


def tokens_of(plan: dict, recipe: Recipe) -> Tokens:
    t, stats = recipe.training, plan.get("train_tokens") or {}
    steps = max(int(plan.get("total_steps") or 0), 1)
    if plan["method"] in PREFERENCE:  # chosen and rejected (KTO: the reply and its KL reply): two sequences an example
        return Tokens(float(stats.get("mean_length") or 0), min(int(stats.get("max_length") or 0), recipe.data.max_length),
                      2 * t.batch_size, steps, 2 * t.batch_size * t.grad_accum)
    if plan["method"] == "grpo":  # each sequence: its prompt and a completion of up to max_completion_length
        g = recipe.grpo
        mean = float(stats.get("mean_prompt_tokens") or 64) + g.max_completion_length
        longest = int(stats.get("max_prompt_tokens") or 64) + g.max_completion_length
        return Tokens(mean, longest, t.batch_size, steps, t.batch_size * t.grad_accum,
                      generated=t.batch_size * t.grad_accum * g.max_completion_length)
    return Tokens(float(stats.get("mean_length") or 0), min(int(stats.get("max_length") or 0), recipe.data.max_length),
                  t.batch_size, steps, t.batch_size * t.grad_accum)


@dataclass
class Memory:
    weights: int
    adapter: int
    gradients: int
    optimizer: int
    activations: int
    runtime: int
    other: int = 0  # measured by the calibration beyond the parts above (allocator, oneDNN buffers, the trainer)

    @property
    def total(self) -> int:
        return sum(asdict(self).values())


def memory(shape: Shape, tokens: Tokens, recipe: Recipe, *, device: str, element_bytes: int,
           runtime: int | None = None) -> Memory:
    """Peak memory of one training process, by part (bytes)."""
    t = recipe.training
    if t.tuning == "qlora":  # NF4: 0.5 B a weight + absmax (1 B a 64-block, fp32 a 256 blocks); the rest in 16 bits
        weights = int(shape.linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + (shape.total - shape.linear) * 2)
    else:
        weights = shape.total * (4 if device == "cpu" or t.tuning == "full" else element_bytes)
    adapter = 0 if t.tuning == "full" else shape.trainable * 4
    gradients = shape.trainable * 4
    optimizer = shape.trainable * ADAM_STATE_BYTES
    activations = activation_bytes(shape, tokens, recipe, element_bytes=element_bytes)
    if device == "cpu" and element_bytes == 2 and t.tuning != "qlora":
        activations += shape.path * 2  # CPU autocast: a bf16 copy of every fp32 weight it multiplies, for the step
    return Memory(weights, adapter, gradients, optimizer, activations, runtime or RUNTIME_BYTES[device])


def activation_bytes(shape: Shape, tokens: Tokens, recipe: Recipe, *, element_bytes: int) -> int:
    """What the backward pass keeps for the largest micro-batch, plus the logits."""
    batch_tokens = tokens.per_batch * max(tokens.longest, 1)
    h, inter, kv = shape.hidden, shape.intermediate, shape.kv_dim
    per_layer = (10 * h + 4 * kv + 5 * inter) * element_bytes  # a token's saved tensors in one layer (see the docstring)
    if recipe.training.gradient_checkpointing:
        layers = shape.layers * h * element_bytes + per_layer  # every layer's input, one layer recomputed
    else:
        layers = shape.layers * per_layer
    logits = shape.vocab * (element_bytes + 4 + 4)  # the logits, their fp32 copy for the loss, its gradient
    total = batch_tokens * (layers + logits)
    if tokens.generated:  # GRPO: the KV cache of the generation batch (keys and values, every layer)
        total += tokens.per_batch * tokens.longest * shape.layers * 2 * kv * element_bytes
    return int(total)


@dataclass
class Speed:
    tokens_per_s: float  # trained tokens a second, forward + backward + optimizer
    generated_per_s: float | None = None  # GRPO: completion tokens generated a second
    measured: bool = False
    how: str = ""
    load_s: float = 0.0  # loading the model (measured with the speed)
    peak_bytes: int = 0  # the calibration process's peak resident memory (0: not measured)
    at: tuple[int, int] = (0, 0)  # the calibration's batch: rows x tokens


def typical_speed(shape: Shape, *, peak_flops: float, device: str) -> Speed:
    """From the FLOP count alone (6 x weights on the path per trained token) at a typical share of
    the matmul peak; said to be typical, not measured."""
    share = CPU_MFU if device == "cpu" else GPU_MFU
    rate = peak_flops * share / (6 * shape.path)
    return Speed(rate, rate * 4, False, f"FLOP count at {share:.0%} of a {peak_flops / 1e12:.2f} TFLOP/s matmul peak")


def seconds(tokens: Tokens, speed: Speed, method: str) -> float:
    """Expected wall time of the training steps."""
    trained = tokens.steps * tokens.per_step * tokens.mean
    rate = speed.tokens_per_s * (0.75 if method in ("dpo", "kto") else 1.0)  # DPO, KTO: the reference's forward pass on top
    time = trained / max(rate, 1e-9)
    if tokens.generated and speed.generated_per_s:
        time += tokens.steps * tokens.generated / speed.generated_per_s
    return time


@dataclass
class Flavor:
    name: str
    memory_bytes: int  # VRAM for a GPU flavor, else RAM
    gpu: bool
    per_hour: float
    label: str = ""
    peak_flops: float = UNKNOWN_GPU_TFLOPS * 1e12  # its matmul peak (GPU_PEAK_TFLOPS, VCPU_FLOPS)


def flavor_peak(accelerator: str | None, vcpus: int) -> float:
    """FLOP/s of a Jobs flavor: its GPU's from the table, else its vCPUs'."""
    if accelerator:
        return GPU_PEAK_TFLOPS.get(accelerator.upper(), UNKNOWN_GPU_TFLOPS) * 1e12
    return max(vcpus, 1) * VCPU_FLOPS


@dataclass
class Forecast:
    parameters: dict
    memory: dict
    peak_bytes: int
    machine: dict
    fits: bool
    seconds: float
    seconds_range: tuple[float, float]
    speed: dict
    flavors: list[dict] = field(default_factory=list)
    flavors_note: str = ""
    suggestions: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def fits(peak: int, available: int) -> bool:
    return peak <= available * 0.9  # a tenth kept for the system and fragmentation


def human_bytes(value: float) -> str:
    return f"{value / GB:.1f} GB" if value >= GB / 10 else f"{value / 1024**2:.0f} MB"


def human_time(value: float) -> str:
    value = max(value, 1)
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def cost_rows(peak: int, flavors: list[Flavor], seconds_on, *, needs_gpu: bool, time_limit_s: float | None = None) -> list[dict]:
    """Each flavor with whether the run fits it, its time (`seconds_on(flavor)`: expected seconds)
    as a range, whether that passes the job's time limit, and what it would cost (cheapest that
    fits first)."""
    rows = []
    for flavor in flavors:
        ok = fits(peak, flavor.memory_bytes) and (flavor.gpu or not needs_gpu)
        expected = seconds_on(flavor)
        spread = (expected * (1 - TIME_SPREAD), expected * (1 + TIME_SPREAD))
        low, high = (flavor.per_hour * s / 3600 for s in spread)
        rows.append({"flavor": flavor.name, "memory": human_bytes(flavor.memory_bytes), "memory_bytes": flavor.memory_bytes,
                     "gpu": flavor.gpu, "fits": ok, "seconds": round(expected, 1),
                     "time": f"{human_time(spread[0])} to {human_time(spread[1])}",
                     "over_time_limit": bool(time_limit_s and spread[0] > time_limit_s),
                     "per_hour": flavor.per_hour, "cost_low": round(low, 4), "cost_high": round(high, 4)})
    return sorted(rows, key=lambda row: (not row["fits"], row["over_time_limit"], row["cost_high"]))
