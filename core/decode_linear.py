"""Linear layers for decoding on a CPU: a few rows of activations times a large weight.

While a chat decodes, every linear layer multiplies one row per answer (1 to 8) by its whole
weight, so a token costs one read of every weight from memory. PyTorch's `F.linear` does that
badly on a CPU for so few rows: one row goes to a matrix-vector kernel that reached about 11 GB/s
here, and 2 to 4 rows to a matrix-matrix kernel laid out for many rows (the embedded model's
weights took 44 ms for one row and 72 ms for two). The same product taken the other way round,
weight @ rows.T, with one row duplicated into two, streams the weights at about the memory's
speed: 17-28 ms for one or two rows (bench/chat_speed.py prints both, beside the memory read speed).

Which is faster depends on the CPU (on an Intel Xeon with AMX, `F.linear` already streamed one
or two rows at the memory's speed and this path was 0.41x), so it is chosen by measurement on
the machine it runs on: `use_for(model)` times both over the model's own weights for 1, 2, 4
and 8 rows at the thread count in use, once per machine, model shape and thread count (cached in
the workspace with the numbers that decided it), and switches the model's plain nn.Linear layers
to this forward only up to the largest row count where it measured faster. A pass with
gradients, on another device, or with more rows than chosen (a prompt's prefill) keeps
`F.linear`. The weights, state dict and saved files are untouched. This module knows nothing
about chats, adapters or training.
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from core.precision import cached_for_machine, machine_key
from core.workspace import read_json, workspace, write_atomic

ROW_COUNTS = (1, 2, 4, 8)  # the rows a chat decodes at once: one answer, a pair, an A/B batch
MIN_GAIN = 1.05  # the fast path is taken only where it measured at least 5% faster
CACHE_FILE = "decode_linear.json"
# thread count -> the most rows weight @ rows.T is used for (0: never), as measured here
_LIMITS: dict[int, int] = {}
# What the limits were before measurement existed, on the AMD EPYC they were tuned on (one thread:
# 3-4 rows 1.3-1.8x, 8 rows 9% slower; two threads 6-8 rows 1.2-1.4x): used only until use_for measures.
_UNMEASURED = {1: 4}
_DEFAULT = 8


class DecodeLinear(nn.Linear):
    """nn.Linear whose forward, for a few rows on a CPU without gradients, is weight @ rows.T."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.shape[-1]
        rows = x.numel() // features if features else 0
        limit = rows_limit(torch.get_num_threads())
        if (not 0 < rows <= limit or x.device.type != "cpu" or x.dtype != self.weight.dtype
                or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))):
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(rows, features).contiguous()
        if rows == 1:  # one column would take the slow matrix-vector kernel again
            flat = torch.cat((flat, flat))  # a real copy: a stride-0 view took the slow path too
        # flat.t() must stay a transposed view (a contiguous copy took 5x longer), and the output is
        # made contiguous so that the next layer's input, computed from it, is not transposed.
        out = torch.mm(self.weight, flat.t()).t()[:rows].contiguous()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def rows_limit(threads: int) -> int:
    """The most rows the fast path takes at this thread count (measured, else the old default)."""
    if threads in _LIMITS:
        return _LIMITS[threads]
    return _UNMEASURED.get(threads, _DEFAULT)


def use_for(model, *, measure: bool = True) -> int:
    """Give every plain nn.Linear in `model` (on a CPU) the decoding forward where this machine
    measured it faster (see `choose`); returns how many layers were switched. Subclasses (4-bit,
    8-bit, peft's LoRA wrappers) keep their own forward; the plain layers inside them are switched."""
    layers = [m for m in model.modules() if type(m) is nn.Linear and m.weight.device.type == "cpu"]
    if not layers:
        return 0
    if measure and not any(choose(layers)["by_threads"].values()):
        return 0  # F.linear measured as fast or faster for every row count: nothing to switch
    for module in layers:
        module.__class__ = DecodeLinear
    return len(layers)


def choose(layers: list[nn.Linear], *, timer=None) -> dict:
    """The row limits for the thread count in use and for one thread (the chat engine may decode
    on one: core.chat.cpu_threads), each from the cache or measured now over `layers`' weights,
    kept in _LIMITS for the forward. Returns {"limit", "threads", "timings", "cached", "by_threads"}."""
    current = torch.get_num_threads()
    by_threads = {}
    try:
        for threads in sorted({current, 1}, reverse=True):
            torch.set_num_threads(threads)
            by_threads[threads] = _choose_at(layers, threads, timer)
    finally:
        torch.set_num_threads(current)
    return {**by_threads[current], "by_threads": {t: found["limit"] for t, found in by_threads.items()}}


def _choose_at(layers: list[nn.Linear], threads: int, timer) -> dict:
    shapes = sorted({tuple(layer.weight.shape) for layer in layers})
    key = f"{machine_key()} {layers[0].weight.dtype} shapes {len(layers)}x{shapes[:4]}"
    path = workspace().root / "cache" / CACHE_FILE
    known = read_json(path)
    found = known.get(key)
    cached = isinstance(found, dict) and isinstance(found.get("limit"), int)
    if not cached:
        timings = (timer or measure_paths)(layers)
        found = {"limit": limit_from(timings), "threads": threads, "timings": timings}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({**known, key: found}, indent=2))
    _LIMITS[threads] = found["limit"]
    return {**found, "cached": cached}


def cached_limit() -> int | None:
    """The row limit this machine measured at the thread count in use (for any model), without
    measuring; None when nothing was measured here yet."""
    return cached_for_machine(CACHE_FILE, "limit", int)


def limit_from(timings: dict) -> int:
    """The largest row count up to which weight @ rows.T was at least MIN_GAIN faster at every
    count (a row count it loses at ends the range); 0 when it never won."""
    limit = 0
    for rows in ROW_COUNTS:
        fast, plain = timings.get(str(rows), {}).get("fast"), timings.get(str(rows), {}).get("plain")
        if not fast or not plain or plain / fast < MIN_GAIN:
            break
        limit = rows
    return limit


def measure_paths(layers: list[nn.Linear], repeats: int = 3) -> dict:
    """Seconds for one pass over every layer's weight with `rows` rows, F.linear vs weight @ rows.T,
    best of `repeats`: {"1": {"plain": s, "fast": s}, ...}."""
    timings = {}
    with torch.inference_mode():
        for rows in ROW_COUNTS:
            inputs = [torch.randn(rows, layer.in_features, dtype=layer.weight.dtype) for layer in layers]
            best = {"plain": float("inf"), "fast": float("inf")}
            for _ in range(repeats):
                for name, forward in (("plain", _plain), ("fast", _fast)):
                    started = time.perf_counter()
                    for layer, x in zip(layers, inputs):
                        forward(layer, x)
                    best[name] = min(best[name], time.perf_counter() - started)
            timings[str(rows)] = {name: round(value, 6) for name, value in best.items()}
    return timings


def _plain(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _fast(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    flat = torch.cat((x, x)) if x.shape[0] == 1 else x
    return torch.mm(layer.weight, flat.t()).t()[: x.shape[0]].contiguous()
