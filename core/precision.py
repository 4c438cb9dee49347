"""Training precision on a CPU, decided by measurement on the machine that trains.

A CPU that computes bf16 natively (avx512_bf16 or AMX) can run the forward and backward passes
under bf16 autocast, with the weights, gradients and optimizer state kept in fp32. Measured with
bench/train_throughput.py on a 2-core AMD EPYC with avx512_bf16 (the smoke recipe, LoRA r=16 on
every linear layer): 1.39-1.40x the trained tokens/s of fp32, and a loss curve within 1.6% of
fp32's at every one of 8 steps (0.6% on average). On a CPU without native bf16 the same autocast
made a step about 30 times slower. So the studio does not decide by a rule: where the CPU claims
native bf16 it times a training-shaped forward + backward in fp32 and under bf16 autocast (about
half a second, once per machine, kept in the workspace's cache/) and trains under autocast when
that is at least MIN_SPEEDUP faster. STUDIO_CPU_PRECISION=fp32|bf16 overrides the measurement
(the test suite pins fp32). The worker writes the choice and its reason into the run's
status.json and train.log. CUDA keeps core.models.device_policy (bf16 where the card has it).
The loss tolerance the bench checks: mean relative difference from fp32 at most LOSS_TOLERANCE.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

from core.models import DevicePolicy, device_policy
from core.workspace import read_json, workspace, write_atomic

ENV = "STUDIO_CPU_PRECISION"  # auto (default) | fp32 | bf16
MIN_SPEEDUP = 1.15
LOSS_TOLERANCE = 0.02  # mean |bf16 - fp32| / fp32 over a run's logged losses (bench/train_throughput.py)
NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")
CACHE_FILE = "cpu_precision.json"


def native_bf16() -> list[str]:
    """The CPU flags that mean bf16 arithmetic in hardware (empty where it is emulated or unknown)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [flag for flag in NATIVE_FLAGS if flag in flags]


def training_policy() -> DevicePolicy:
    """device_policy(), with bf16 autocast on a CPU where it measured faster."""
    policy = device_policy()
    if policy.device != "cpu":
        return policy
    choice = cpu_choice()
    return replace(policy, autocast=choice["autocast"], why=choice["why"])


def cpu_choice() -> dict:
    """{"autocast": "bfloat16" or None, "why": str, "speedup": float or None}."""
    wanted = os.environ.get(ENV, "auto").strip().lower()
    if wanted in ("fp32", "float32"):
        return {"autocast": None, "why": f"fp32: set by {ENV}", "speedup": None}
    if wanted in ("bf16", "bfloat16"):
        return {"autocast": "bfloat16", "why": f"bf16 autocast: set by {ENV}", "speedup": None}
    flags = native_bf16()
    if not flags:
        return {"autocast": None, "why": "fp32: this CPU has no native bf16 (autocast would be emulated, far slower)",
                "speedup": None}
    speedup = _cached_speedup()
    if speedup >= MIN_SPEEDUP:
        return {"autocast": "bfloat16", "speedup": speedup,
                "why": f"bf16 autocast, fp32 weights: measured {speedup:.2f}x fp32 on this CPU ({', '.join(flags)})"}
    return {"autocast": None, "speedup": speedup,
            "why": f"fp32: bf16 autocast measured only {speedup:.2f}x fp32 on this CPU ({', '.join(flags)})"}


def cached_choice() -> dict | None:
    """cpu_choice() where it needs no measuring (an override, no native bf16, or a measurement
    kept for this machine); None when it would have to measure first."""
    if os.environ.get(ENV, "auto").strip().lower() not in ("fp32", "float32", "bf16", "bfloat16") and native_bf16():
        if not isinstance(read_json(workspace().root / "cache" / CACHE_FILE).get(machine_key()), (int, float)):
            return None
    return cpu_choice()


# Environment variables that cap the instruction sets oneDNN (bf16 matmuls) and MKL (fp32) use.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def machine_key() -> str:
    """What a measurement on this machine depends on: the CPU, torch, the thread count in use and
    any instruction-set caps (the cache key of every per-machine measurement)."""
    import torch

    key = f"{platform.processor() or platform.machine()} {_cpu_model()} torch {torch.__version__} threads {torch.get_num_threads()}"
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAPS if os.environ.get(name)]
    if caps:  # oneDNN/MKL told to use fewer instructions: bf16 may no longer be native to them
        key += " " + " ".join(caps)
    return key


def cached_for_machine(cache_file: str, field: str, kind: type = (int, float)):
    """The `field` of the first measurement in the workspace's cache/<cache_file> taken on this
    machine (its key starts with machine_key(), whatever it measured: shapes, precision, model),
    when it is of `kind`; None when nothing was measured here yet. Never measures."""
    prefix = machine_key() + " "
    for key, found in read_json(workspace().root / "cache" / cache_file).items():
        if key.startswith(prefix) and isinstance(found, dict) and isinstance(found.get(field), kind):
            return found[field]
    return None


def measured_once(cache_file: str, key: str, measure) -> tuple[dict, bool]:
    """(timings, cached): the measurement kept under `key` in the workspace's cache/<cache_file>
    when it has a "speedup", else `measure()` now, kept there for next time."""
    path = workspace().root / "cache" / cache_file
    known = read_json(path)
    if isinstance(known.get(key), dict) and isinstance(known[key].get("speedup"), (int, float)):
        return known[key], True
    timings = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({**known, key: timings}, indent=2))
    return timings, False


def _cached_speedup() -> float:


    key = machine_key()
    path = workspace().root / "cache" / CACHE_FILE
    known = read_json(path)
    if isinstance(known.get(key), (int, float)):
        return float(known[key])
    speedup = measure_speedup()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({**known, key: round(speedup, 3)}, indent=2))
    return speedup


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def measure_speedup(rounds: int = 2, repeats: int = 4) -> float:
    """fp32 seconds / bf16-autocast seconds for a training-shaped step: tokens x hidden through a
    frozen up- and down-projection (as a LoRA base layer), forward and backward to the input."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(1024, 576, requires_grad=True)
    up, down = torch.randn(576, 1536) / 24, torch.randn(1536, 576) / 40

    def step():
        loss = ((x @ up).relu() @ down).square().mean()
        loss.backward()
        x.grad = None

    best = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(rounds):
        for name in best:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                step()  # warm-up
                started = time.perf_counter()
                for _ in range(repeats):
                    step()
                best[name] = min(best[name], time.perf_counter() - started)
    return best["fp32"] / best["bf16"]


def lean_adapters(model) -> int:
    """Under CPU bf16 autocast, a LoRA model's frozen projections keep their weights in bf16 and
    peft stops casting each adapter's input to fp32. Autocast otherwise casts every frozen weight
    from fp32 at every call (forward and backward) and casts the input peft made fp32 back to bf16
    for the adapter's matmul: a fifth of a step's CPU time went to those copies (torch.profiler,
    smoke recipe). The same matmuls run in the same precision; the adapters, their gradients and
    AdamW stay fp32, and embeddings, norms and the residual stream are untouched. Returns how many
    adapted layers changed."""
    import torch
    from peft.tuners.lora import LoraLayer

    changed = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        base = module.get_base_layer()
        if isinstance(base, torch.nn.Linear) and not base.weight.requires_grad and base.weight.dtype == torch.float32:
            base.weight.data = base.weight.data.to(torch.bfloat16)
            if base.bias is not None and not base.bias.requires_grad:
                base.bias.data = base.bias.data.to(torch.bfloat16)
        module.cast_input_dtype_enabled = False
        changed += 1
    return changed
