"""Calibration for the forecast (core.train.estimate): how fast this machine trains the run's model
at the run's shape, and how much memory the training runtime itself takes, measured and cached.

`speed()` loads the run's model with its tuning (the LoRA adapter as a run puts it) and precision
(core.precision's policy, autocast included), and times a few real steps of the run's shape:
forward, backward and an AdamW step on a batch of that many tokens; for GRPO also `generate` of
that many completions. The first step is left out (warm-up). Results are cached in the workspace
(`calibration.json`) per machine, model, tuning, precision, method and shape, so a second forecast
is instant. `runtime_bytes()` measures the resident memory of a fresh Python that imported torch,
transformers, peft and trl (what every training process holds before its model), once per machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import yaml

from core import recipes
from core.models import load_model
from core.precision import training_policy
from core.recipes import Recipe, RecipeError
from core.train import cpu_memory
from core.train.estimate import Speed, Tokens
from core.train.trainer_configs import lora_config
from core.workspace import PROJECT_ROOT, read_json, workspace, write_json_atomic

CACHE_FILE = "calibration.json"
STEPS = 3


def machine_id() -> str:
    """This machine as calibration keys name it: the CPU model and core count, and the GPU's name."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu} x{os.cpu_count()} / {gpu}"  # not torch's thread count: chat sets it per process


def _cache() -> dict:
    return read_json(workspace().root / CACHE_FILE) or {}


def _remember(key: str, value: dict) -> None:
    cache = _cache()
    cache[key] = value
    write_json_atomic(workspace().root / CACHE_FILE, cache)


def runtime(*, measure: bool = True) -> dict:
    """What a training process holds and spends before its model: the resident memory of a fresh
    Python with the training libraries imported (`bytes`) and the seconds that took (`start_s`);
    measured once per machine, then cached. Empty when the probe fails (or, without `measure`,
    was never run)."""
    key = f"runtime {machine_id()}"
    known = _cache().get(key)
    if known or not measure:
        return known or {}
    probe = ("import time; t = time.perf_counter(); import torch, transformers, peft, trl; "
             "from core.train.cpu_memory import peak_resident_bytes; print(peak_resident_bytes(), time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False,
                          cwd=PROJECT_ROOT)
    try:
        size, seconds = done.stdout.strip().splitlines()[-1].split()
    except (IndexError, ValueError):
        return {}
    found = {"bytes": int(size), "start_s": round(float(seconds), 2), "at": time.strftime("%Y-%m-%d")}
    _remember(key, found)
    return found


def speed(recipe: Recipe, tokens: Tokens, *, measure: bool = True) -> Speed | None:
    """Trained (and for GRPO generated) tokens a second of the run's shape on this machine; None
    when it was never measured and `measure` is off."""
    policy = training_policy()
    length = max(16, int(round(tokens.mean / 16)) * 16)  # the shape, to 16 tokens: near shapes share a measurement
    key = " | ".join([machine_id(), recipe.model.name, recipe.training.tuning, policy.describe(), recipe.training.method,
                      f"{tokens.per_batch}x{length}", f"checkpointing {recipe.training.gradient_checkpointing}"])
    known = _cache().get(key)
    if known:
        return Speed(known["tokens_per_s"], known.get("generated_per_s"), True, f"measured on this machine {known['at']}",
                     known.get("load_s", 0.0), known.get("peak_bytes", 0), (known.get("rows", 0), known.get("length", 0)))
    if not measure:
        return None
    measured = _measure_apart(recipe, tokens.per_batch, length, generate=recipe.training.method == "grpo")
    _remember(key, {**measured, "at": time.strftime("%Y-%m-%d %H:%M")})
    return Speed(measured["tokens_per_s"], measured.get("generated_per_s"), True, "measured on this machine now",
                 measured["load_s"], measured.get("peak_bytes", 0), (measured.get("rows", 0), measured.get("length", 0)))


def matmul_peak(seconds: float = 0.3) -> float:
    """FLOP/s of large fp32 matrix products on this machine (a quick look, for the typical speed)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return done * 2 * 1024**3 / (time.perf_counter() - started)


def _measure_apart(recipe: Recipe, rows: int, length: int, *, generate: bool) -> dict:
    """_measure in a process of its own, set up as a training worker is (core.train.cpu_memory), so
    its peak resident memory is the steps' own (`peak_bytes`), not whatever this process held before."""
    order = json.dumps({"recipe": recipe.to_yaml(), "rows": rows, "length": length, "generate": generate})
    done = subprocess.run([sys.executable, "-m", "core.train.calibrate"], input=order, capture_output=True, text=True,
                          timeout=900, check=False, cwd=PROJECT_ROOT)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RecipeError("the calibration of this recipe's speed failed: "
                          + (done.stderr.strip().splitlines() or ["no output"])[-1][:300]) from None


def _child() -> None:
    """`python -m core.train.calibrate` < {"recipe": YAML, "rows", "length", "generate"}: one JSON line."""
    cpu_memory.bound()  # as the worker does, before torch's first matmul
    order = json.loads(sys.stdin.read())
    recipe = recipes.from_dict(yaml.safe_load(order["recipe"]))
    measured = _measure(recipe, order["rows"], order["length"], training_policy(), generate=order["generate"])
    peak = cpu_memory.peak_resident_bytes()
    print(json.dumps({**measured, "peak_bytes": peak, "rows": order["rows"], "length": order["length"]}), flush=True)


def _measure(recipe: Recipe, rows: int, length: int, policy, *, generate: bool) -> dict:
    import contextlib

    import torch
    from transformers.utils import logging as transformers_logging


    transformers_logging.disable_progress_bar()  # a measurement, not a model a person waits for
    loading = time.perf_counter()
    model = load_model(recipe.model.name, trust_remote_code=recipe.model.trust_remote_code, policy=policy)
    load_s = time.perf_counter() - loading
    if recipe.training.tuning != "full":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(recipe))
    if recipe.training.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.get_text_config().vocab_size
    batch = torch.randint(0, vocab, (rows, length), generator=generator).to(device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if policy.autocast == "bfloat16"
                else contextlib.nullcontext())
    times = []
    for _ in range(STEPS + 1):
        started = time.perf_counter()
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    step = sorted(times[1:])[len(times[1:]) // 2]  # the median of the steps after the warm-up
    result = {"tokens_per_s": rows * length / step, "step_s": step, "load_s": round(load_s, 2)}
    if generate:
        new = recipe.grpo.max_completion_length
        model.eval()
        prompt = batch[:, : max(8, length - new)]
        with torch.no_grad(), autocast:
            started = time.perf_counter()
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, min_new_tokens=new,
                           do_sample=True, pad_token_id=0)
            result["generated_per_s"] = rows * new / (time.perf_counter() - started)
    return result


if __name__ == "__main__":
    _child()
