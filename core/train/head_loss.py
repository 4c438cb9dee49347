"""The LM head and its cross-entropy as one pass over row chunks, on a CPU.

A causal LM's loss on a CPU went: logits for every trained position (rows x a 49,152-word
vocabulary on SmolLM2), a copy of them in fp32, log-softmax, the loss; then in the backward a
zeroed fp32 tensor of the same size, the log-softmax backward, a cast back to bf16 and the input
gradient's matmul, with the tied fp32 embedding cast to bf16 for the head at every step under
autocast. Outside the two matmuls that is about ten full passes over a rows x vocabulary tensor,
about as long as the matmuls themselves (torch.profiler, smoke recipe).

Here, chunk by chunk of rows, the logits are computed, turned into probabilities by one softmax
(in the logits' precision; PyTorch's CPU softmax accumulates in fp32), the loss read off the
target's probability, the target's 1 subtracted in place, and the input gradient's matmul run at
once; only the hidden states' gradient is kept for the backward. The frozen head weight is cast
once, not every step. The same loss and gradients (fp32: equal to the model's own within 1e-5;
under bf16 autocast the gradient is rounded where the model's own path also rounds it).

It applies where the head is a plain frozen `nn.Linear` without bias (DecodeLinear included) on a model whose logits are
exactly `lm_head(hidden)` (PLAIN_HEADS) and the model is not wrapped for several processes;
everything else, and every pass that needs the logits (evaluation), keeps the model's own loss.
Like the LoRA layers (core.train.fused_lora) it is chosen by measurement: `choose` times the
model's own head + loss and this one on CHUNK_ROWS rows at the model's shapes and precision,
alternated, keeps the numbers per machine in the workspace cache, and never takes the chunked
pass where it measured slower. STUDIO_FUSED_HEAD=on|off overrides (the suite pins on).
"""

from __future__ import annotations

import os
import statistics
import time

from core.precision import cached_for_machine, machine_key, measured_once

ENV = "STUDIO_FUSED_HEAD"  # auto (default) | on | off
CACHE_FILE = "fused_head.json"
PAIRS = 5
# Model types whose causal-LM forward computes logits as lm_head(hidden) with no scaling or capping.
PLAIN_HEADS = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "olmo2", "gemma"})
CHUNK_ROWS = 256  # rows x vocabulary of fp32/bf16 at a time (25 MB of fp32 at SmolLM2's vocabulary)


def _head_function():
    import torch

    class _HeadLoss(torch.autograd.Function):
        """Summed cross-entropy of (hidden @ weight.T) against targets (-100: ignored), weight frozen."""

        @staticmethod
        def forward(ctx, hidden, weight, targets, chunk):
            wants_grad = ctx.needs_input_grad[0]
            low = hidden.to(weight.dtype)
            grad = torch.empty_like(low) if wants_grad else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            with torch.autocast(hidden.device.type, enabled=False):
                for start in range(0, low.shape[0], chunk):
                    rows, wanted = low[start:start + chunk], targets[start:start + chunk]
                    keep = wanted != -100
                    index = wanted.clamp(min=0).unsqueeze(1)
                    logits = torch.mm(rows, weight.t())
                    probs = torch.softmax(logits, dim=-1)
                    target_p = probs.gather(1, index).squeeze(1).float()
                    total += _token_losses(logits, probs, index, target_p)[keep].sum()
                    if wants_grad:
                        # one value a row, written back: scatter_add_ on bf16 copied the whole chunk to fp32 and back
                        at = (torch.arange(index.shape[0], device=index.device), index.squeeze(1))
                        probs.index_put_(at, probs[at] - 1)
                        probs.mul_(keep.unsqueeze(1).to(probs.dtype))
                        grad[start:start + chunk] = torch.mm(probs, weight)
            ctx.save_for_backward(grad if wants_grad else torch.empty(0))
            ctx.hidden_dtype = hidden.dtype
            return total

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            return (grad * grad_output).to(ctx.hidden_dtype), None, None, None

    return _HeadLoss


def _token_losses(logits, probs, index, target_p):
    """-log p(target) per row; where p underflowed, logsumexp - logit recomputed for those rows."""
    import torch

    losses = -torch.log(target_p.clamp(min=torch.finfo(torch.float32).tiny))
    lost = (target_p < 1e-30).nonzero().squeeze(1)
    if lost.numel():
        exact = logits[lost].float()
        losses[lost] = torch.logsumexp(exact, dim=-1) - exact.gather(1, index[lost]).squeeze(1)
    return losses


_FUNCTION = None


def summed_loss(hidden, weight, targets, chunk: int = CHUNK_ROWS):
    """Summed cross-entropy over the rows of `hidden` [rows, hidden] whose target is not -100,
    through a frozen head `weight` [vocab, hidden] (already in the matmul precision)."""
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _head_function()
    return _FUNCTION.apply(hidden, weight, targets, chunk)


def _inner_model(model):
    """The transformers causal LM inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def applies(model) -> bool:
    """True where the model's loss can go through summed_loss: a plain frozen bias-free head on a
    PLAIN_HEADS model, not wrapped for several processes."""
    import torch

    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return False
    inner = _inner_model(model)
    config = getattr(inner, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEADS or not hasattr(inner, "get_output_embeddings"):
        return False
    if getattr(config, "final_logit_softcapping", None) or getattr(inner, "base_model", inner) is inner:
        return False
    head = inner.get_output_embeddings()
    # nn.Linear or the studio's DecodeLinear (the same product); a quantized weight is not a float tensor
    return (isinstance(head, torch.nn.Linear) and head.bias is None and not head.weight.requires_grad
            and head.weight.dtype in (torch.float32, torch.bfloat16) and head.weight.device.type == "cpu")


def _matmul_weight(head, dtype):
    """The frozen head weight in `dtype`, cast once and kept while the weight is unchanged."""
    weight = head.weight
    if weight.dtype == dtype:
        return weight.detach()
    key = (weight.data_ptr(), weight._version, dtype)
    cached = getattr(head, "_studio_head_copy", None)
    if cached is None or cached[0] != key:
        cached = (key, weight.detach().to(dtype))
        head._studio_head_copy = cached
    return cached[1]


def causal_lm_loss(model, inputs: dict, num_items_in_batch=None):
    """The model's causal-LM loss (mean over trained tokens, or the sum over num_items_in_batch)
    through the decoder and summed_loss: what model(**inputs).loss computes, without logits."""
    import torch
    import torch.nn.functional as F

    inner = _inner_model(model)
    labels = inputs["labels"]
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    decoder_inputs = {key: inputs[key] for key in ("input_ids", "attention_mask", "position_ids", "inputs_embeds")
                      if inputs.get(key) is not None}
    hidden = inner.base_model(**decoder_inputs, use_cache=False).last_hidden_state
    positions = (targets != -100).any(dim=0).nonzero().squeeze(-1)
    hidden, targets = hidden[:, positions], targets[:, positions]
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else inner.get_output_embeddings().weight.dtype
    weight = _matmul_weight(inner.get_output_embeddings(), dtype)  # frozen: cast once, not every step
    total = summed_loss(hidden.reshape(-1, hidden.shape[-1]), weight, targets.reshape(-1))
    if num_items_in_batch is None:
        return total / (targets != -100).sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _head_dtype(model, autocast: str | None):
    import torch

    return torch.bfloat16 if autocast == "bfloat16" else _inner_model(model).get_output_embeddings().weight.dtype


def choose(model, autocast: str | None = None, *, timer=None) -> dict:
    """Whether `model`'s loss goes through summed_loss on this machine, in the run's precision
    (`autocast`: "bfloat16" or None): {"fused", "why", "speedup", "cached"}."""
    if not applies(model):
        return {"fused": False, "why": "the model's own head and loss (not a plain frozen head)", "speedup": None, "cached": False}
    wanted = os.environ.get(ENV, "auto").strip().lower()
    if wanted in ("on", "off"):
        return {"fused": wanted == "on", "why": f"{'chunked' if wanted == 'on' else 'the model'}'s head and loss: set by {ENV}",
                "speedup": None, "cached": False}
    weight = _inner_model(model).get_output_embeddings().weight
    key = f"{machine_key()} {weight.dtype} autocast {autocast} head {tuple(weight.shape)}"
    timings, cached = measured_once(CACHE_FILE, key, lambda: (timer or measure)(model, autocast))
    speedup = float(timings["speedup"])
    why = (f"chunked head and loss: measured {speedup:.2f}x the model's own on this machine" if speedup >= 1.0 else
           f"the model's own head and loss: the chunked pass measured {speedup:.2f}x (slower) on this machine")
    return {"fused": speedup >= 1.0, "why": why, "speedup": speedup, "cached": cached, "timings": timings}


def cached_choice() -> dict | None:
    """What this machine chose (the override, else the first measurement kept for it), without
    measuring: {"fused", "speedup"}; None when nothing was measured here yet."""
    wanted = os.environ.get(ENV, "auto").strip().lower()
    if wanted in ("on", "off"):
        return {"fused": wanted == "on", "speedup": None}
    speedup = cached_for_machine(CACHE_FILE, "speedup")
    return None if speedup is None else {"fused": speedup >= 1.0, "speedup": speedup}


def measure(model, autocast: str | None, pairs: int = PAIRS) -> dict:
    """Seconds of the head's forward + backward with its loss over CHUNK_ROWS random hidden rows:
    the model's own way (linear under the run's autocast, logits in fp32, cross-entropy) and
    summed_loss, alternated `pairs` times after a warm-up; the median per-pair ratio is the speedup."""
    import torch
    import torch.nn.functional as F

    head = _inner_model(model).get_output_embeddings()
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(CHUNK_ROWS, head.in_features, generator=generator, requires_grad=True)
    targets = torch.randint(0, head.out_features, (CHUNK_ROWS,), generator=generator)
    weight = _matmul_weight(head, _head_dtype(model, autocast))
    times: dict[str, list] = {"model": [], "chunked": []}

    def one_pass(chunked: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast == "bfloat16"):
            if chunked:
                loss = summed_loss(hidden, weight, targets)
            else:
                loss = F.cross_entropy(head(hidden).float(), targets, reduction="sum")
        loss.backward()
        hidden.grad = None
        return time.perf_counter() - started

    for index in range(pairs + 1):
        for name in times:
            seconds = one_pass(name == "chunked")
            if index:
                times[name].append(seconds)
    speedup = statistics.median(m / c for m, c in zip(times["model"], times["chunked"]))
    return {"speedup": round(speedup, 3), "model_s": round(statistics.median(times["model"]), 5),
            "chunked_s": round(statistics.median(times["chunked"]), 5), "pairs": pairs, "rows": CHUNK_ROWS}
