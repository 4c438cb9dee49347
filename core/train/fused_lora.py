"""A LoRA linear layer's training pass as one autograd node, on a CPU.

peft computes a LoRA layer as `base(x) + lora_B(lora_A(dropout(x))) * scaling`: under CPU
bf16 autocast that is two casts of the input (base and lora_A each cast it), a cast of each
adapter matrix, a scaling multiply and an add over the whole output, and as many autograd nodes,
each with its own cast or multiply in the backward pass. On the embedded model (frozen weights
already bf16, core.precision.lean_adapters) those casts and element-wise passes were about a
sixth of a LoRA step (a dispatch-level profile of a smoke-recipe step), more than the adapters'
matmuls themselves.

Here the same arithmetic is one node: forward `x W^T + (s x A^T) B^T` (the adapter's product
accumulated into the base output in place), backward the input gradient `g W + (s g B) A` and
the adapters' gradients `g^T (s x A^T)`, `(s g B)^T x`. The input is cast to the compute dtype
once per tensor, however many layers read it (q, k and v read the same normed hidden states):
that cast is an ordinary autograd op shared by them, so the backward pass also casts the summed
gradient back once. Adapter weights, their gradients and the optimizer stay in their own dtype
(fp32). LoRA dropout (nn.Dropout on the adapter's input, 0.05 in a recipe by default) is drawn as
a scaled keep-mask that the backward reuses. Anything this does not cover (DoRA and other variants,
an adapter bias, several adapters, merged or disabled adapters as in DPO's reference pass,
inference) takes peft's own path.

The gain is small and machine-dependent (alternated pass by pass with peft's: median 1.03-1.14x on
a 2-core AMX Xeon, 1.02x on a 2-core AMD EPYC), so it is chosen by measurement, as core.precision and
core.decode_linear choose theirs: `choose(model)` times one decoder layer's LoRA linears both ways
on this machine (forward + backward over MEASURE_TOKENS rows, alternated, in the precision the run
uses), keeps the numbers in the workspace's cache/ per machine and shapes, and the fused pass is
taken only where it was not slower. STUDIO_FUSED_LORA=on|off overrides (the test suite pins on).

It knows nothing of trainers or recipes: `use_for(model)` switches a peft model's LoRA linears.
"""

from __future__ import annotations

import os
import statistics
import time
import types

import torch
from torch import nn

from core.decode_linear import DecodeLinear
from core.precision import cached_for_machine, machine_key, measured_once

ENV = "STUDIO_FUSED_LORA"  # auto (default) | on | off
CACHE_FILE = "fused_lora_v2.json"  # v2: measurements before the fix for DecodeLinear bases compared peft with itself
MEASURE_TOKENS = 512
PAIRS = 7

_shared_cast: list = [None, -1, None]  # (source tensor, its version, the cast): the last input cast


class _LoraLinear(torch.autograd.Function):
    """y = x W^T [+ bias] + (s dropout(x) A^T) B^T for a frozen W (and bias) and trainable A, B."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, dropout: float = 0.0):
        dtype = x.dtype
        weight = weight if weight.dtype == dtype else weight.to(dtype)
        a, b = lora_a.to(dtype), lora_b.to(dtype)
        rows = x.reshape(-1, x.shape[-1])
        keep = None
        if dropout:  # as nn.Dropout: each input kept with probability 1 - p and scaled by 1 / (1 - p)
            keep = torch.empty_like(rows).bernoulli_(1.0 - dropout).div_(1.0 - dropout)
        dropped = rows if keep is None else rows * keep
        down = torch.mm(dropped, a.t()).mul_(scaling)  # [tokens, r]: small
        out = torch.mm(rows, weight.t()) if bias is None else torch.addmm(bias.to(dtype), rows, weight.t())
        out.addmm_(down, b.t())
        ctx.save_for_backward(dropped, down, weight, a, b, keep)
        ctx.scaling, ctx.shape, ctx.adapter_dtypes = scaling, x.shape, (lora_a.dtype, lora_b.dtype)
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        dropped, down, weight, a, b, keep = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1]).to(dropped.dtype)
        up = torch.mm(grad, b).mul_(ctx.scaling)  # [tokens, r]
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            if keep is None:
                grad_x = torch.mm(grad, weight).addmm_(up, a)
            else:
                grad_x = torch.mm(grad, weight).add_(torch.mm(up, a).mul_(keep))
            grad_x = grad_x.view(ctx.shape)
        if ctx.needs_input_grad[3]:
            grad_a = torch.mm(up.t(), dropped).to(ctx.adapter_dtypes[0])
        if ctx.needs_input_grad[4]:
            grad_b = torch.mm(grad.t(), down).to(ctx.adapter_dtypes[1])
        return grad_x, None, None, grad_a, grad_b, None, None


def _compute_input(x, dtype):
    """x in the compute dtype, cast once for all the layers that read the same tensor."""
    if x.dtype == dtype:
        return x
    source, version, cast = _shared_cast
    if source is x and version == x._version and cast.requires_grad == (x.requires_grad and torch.is_grad_enabled()):
        return cast
    cast = x.to(dtype)
    _shared_cast[:] = [x, x._version, cast]
    return cast


def _adapter(layer, x, args, kwargs):
    """(the one active plain LoRA adapter, its dropout probability in this pass) when this call can
    take the fused path, else None."""
    if args or kwargs or not torch.is_grad_enabled() or x.device.type != "cpu":
        return None
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
        return None
    base, lora_a, lora_b = layer.get_base_layer(), layer.lora_A[name], layer.lora_B[name]
    # DecodeLinear (core.decode_linear, on machines that decode a few rows faster) computes F.linear for a pass with gradients
    if type(base) not in (nn.Linear, DecodeLinear) or base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    if lora_a.bias is not None or lora_b.bias is not None:
        return None
    dropout = layer.lora_dropout[name]
    if isinstance(dropout, nn.Identity):
        return name, 0.0
    if type(dropout) is nn.Dropout:
        return name, float(dropout.p) if dropout.training else 0.0
    return None


def _forward(self, x, *args, **kwargs):
    found = _adapter(self, x, args, kwargs)
    if found is None:
        return type(self).forward(self, x, *args, **kwargs)
    name, dropout = found
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    base = self.get_base_layer()
    with torch.autocast("cpu", enabled=False):
        return _LoraLinear.apply(_compute_input(x, dtype), base.weight, base.bias, self.lora_A[name].weight,
                                 self.lora_B[name].weight, float(self.scaling[name]), dropout)


def _lora_linears(model) -> list:
    from peft.tuners.lora import Linear as LoraLinear

    return [module for module in model.modules() if type(module) is LoraLinear]


def use_for(model) -> int:
    """Give every peft LoRA linear of `model` the fused training pass; how many it changed."""
    layers = _lora_linears(model)
    for module in layers:
        module.forward = types.MethodType(_forward, module)
    return len(layers)


def choose(model, autocast: str | None = None, *, timer=None) -> dict:
    """Whether `model`'s LoRA linears train through the fused pass on this machine, in the run's
    precision (`autocast`: "bfloat16" or None): {"fused", "why", "speedup", "cached"}; applies it."""
    wanted = os.environ.get(ENV, "auto").strip().lower()
    layers = _lora_linears(model)
    if not layers:
        return {"fused": False, "why": "no LoRA linear layers", "speedup": None, "cached": False}
    if wanted in ("on", "off"):
        found = {"fused": wanted == "on", "why": f"{'fused' if wanted == 'on' else 'peft'} LoRA layers: set by {ENV}",
                 "speedup": None, "cached": False}
    else:
        found = _measured(layers, autocast, timer)
    if found["fused"]:
        use_for(model)
    return found


def cached_choice() -> dict | None:
    """What this machine chose (the override, else the first measurement kept for it), without
    measuring: {"fused", "speedup"}; None when nothing was measured here yet."""
    wanted = os.environ.get(ENV, "auto").strip().lower()
    if wanted in ("on", "off"):
        return {"fused": wanted == "on", "speedup": None}
    speedup = cached_for_machine(CACHE_FILE, "speedup")
    return None if speedup is None else {"fused": speedup >= 1.0, "speedup": speedup}


def _measured(layers: list, autocast: str | None, timer) -> dict:
    sample = layers[:7]  # one decoder layer's projections in a transformers model
    shapes = [tuple(layer.get_base_layer().weight.shape) for layer in sample]
    key = (f"{machine_key()} {sample[0].get_base_layer().weight.dtype} autocast {autocast} r "
           f"{sample[0].lora_A[sample[0].active_adapters[0]].weight.shape[0]} shapes {shapes}")
    timings, cached = measured_once(CACHE_FILE, key, lambda: (timer or measure)(sample, autocast))
    speedup = float(timings["speedup"])
    if speedup >= 1.0:
        why = f"fused LoRA layers: measured {speedup:.2f}x peft's on this machine"
    else:
        why = f"peft's LoRA layers: the fused pass measured {speedup:.2f}x (slower) on this machine"
    return {"fused": speedup >= 1.0, "why": why, "speedup": speedup, "cached": cached, "timings": timings}


def measure(layers: list, autocast: str | None, pairs: int = PAIRS) -> dict:
    """Seconds of a forward + backward through `layers` (each on its own input of MEASURE_TOKENS
    rows), peft's pass and the fused one alternated `pairs` times after a warm-up; the median of
    the per-pair ratios is the speedup. The adapters' gradients are cleared afterwards."""
    inputs = [torch.randn(MEASURE_TOKENS, layer.in_features, requires_grad=True) for layer in layers]
    times: dict[str, list] = {"peft": [], "fused": []}

    def one_pass(fused: bool) -> float:
        for layer in layers:
            if fused:
                layer.forward = types.MethodType(_forward, layer)
            else:
                vars(layer).pop("forward", None)
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast == "bfloat16"):
            total = sum(layer(x).float().square().mean() for layer, x in zip(layers, inputs))
        total.backward()
        return time.perf_counter() - started

    try:
        for index in range(pairs + 1):
            for name in times:
                seconds = one_pass(name == "fused")
                if index:
                    times[name].append(seconds)
    finally:
        for layer in layers:
            vars(layer).pop("forward", None)
            for parameter in layer.parameters():
                parameter.grad = None
    speedup = statistics.median(p / f for p, f in zip(times["peft"], times["fused"]))
    return {"speedup": round(speedup, 3), "peft_s": round(statistics.median(times["peft"]), 5),
            "fused_s": round(statistics.median(times["fused"]), 5), "pairs": pairs, "tokens": MEASURE_TOKENS}


def restore(model) -> int:
    """Undo use_for: peft's own forward again (benches compare the two on the same batch)."""
    changed = 0
    for module in model.modules():
        if vars(module).get("forward") is not None and getattr(module.forward, "__func__", None) is _forward:
            del module.forward
            changed += 1
    return changed
