"""The forecast of a run, as a person reads it before Start: one function, `forecast`, that the
Train tab, `studio train --dry-run` and `studio plan` all show (so they show the same numbers),
and `lines` to say it in words. The arithmetic is core.train.estimate's; the measurements
core.train.calibrate's; the Jobs flavors core.train.hf_jobs'.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, replace

from core.precision import training_policy
from core.recipes import Recipe
from core.train import calibrate as calibration
from core.train import estimate, hf_jobs
from core.train.estimate import GB, Forecast, human_bytes, human_time

GRADIENT_CHECKPOINTING_COST = 1.33  # recomputing each layer's forward in the backward pass
JOB_SETUP_S = 180  # a Jobs run before its first step: the image pulled, the studio installed, the model downloaded (typical)


def this_machine() -> dict:
    """The device a run here trains on, its memory free now and in all."""
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "available_bytes": int(free), "total_bytes": int(total)}
    info = {}
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                key, value = line.split(":", 1)
                info[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    total = info.get("MemTotal", 8 * GB)
    return {"device": "cpu", "name": f"{torch.get_num_threads()} CPU threads", "available_bytes": info.get("MemAvailable", total),
            "total_bytes": total}


def forecast(recipe: Recipe, plan: dict, *, calibrate: bool | str = True, on_jobs: bool = False, flavor: str | None = None,
             token: str | None = None, endpoint: str | None = None, time_limit_s: float | None = None) -> Forecast:
    """What the run of `recipe` (its dry run: `plan`) will need. `calibrate`: True times a few real
    steps on this machine unless that was done before (cached); "cached" uses an earlier measurement
    only; False assumes a typical speed. `on_jobs`: price every Hugging Face Jobs flavor (the Hub's
    list, else the bundled snapshot), each with its own time; `flavor`: the one the run would take
    (its fit and time are the forecast's). `time_limit_s`: warn when the run would take longer."""
    policy = training_policy()
    machine = this_machine()
    device = "cuda" if on_jobs or machine["device"] == "cuda" else "cpu"
    element = 2 if device == "cuda" or policy.autocast == "bfloat16" else 4
    shape = estimate.model_shape(recipe)
    tokens = estimate.tokens_of(plan, recipe)
    method = recipe.training.method
    measure = calibrate is True
    runtime = calibration.runtime(measure=measure) if calibrate and not on_jobs else {}
    memory = estimate.memory(shape, tokens, recipe, device=device, element_bytes=element, runtime=runtime.get("bytes"))
    peak = memory.total
    start = runtime.get("start_s", 8.0)  # starting the training process (measured once here)
    rows, note = [], ""
    if on_jobs:
        flavors, note = hf_jobs.hardware(token, endpoint)
        fixed = start + JOB_SETUP_S

        def seconds_on(kit) -> float:
            rate = estimate.typical_speed(shape, peak_flops=kit.peak_flops, device="cuda" if kit.gpu else "cpu")
            return estimate.seconds(tokens, rate, method) + fixed

        rows = estimate.cost_rows(peak, flavors, seconds_on, needs_gpu=recipe.training.tuning == "qlora",
                                  time_limit_s=time_limit_s)
        chosen = next((row for row in rows if row["flavor"] == flavor), None) or next((row for row in rows if row["fits"]), None)
        kit = next((k for k in flavors if chosen and k.name == chosen["flavor"]), None)
        speed = estimate.typical_speed(shape, peak_flops=kit.peak_flops if kit else 100e12,
                                       device="cuda" if kit is None or kit.gpu else "cpu")
        speed.how += f" ({chosen['flavor']})" if chosen else ""
        fits_it = bool(chosen and chosen["fits"]) if flavor else any(row["fits"] for row in rows)
        picked = flavor and chosen and chosen["flavor"] == flavor
        available = chosen["memory_bytes"] if picked else max((row["memory_bytes"] for row in rows), default=0)
    else:
        speed = calibration.speed(recipe, tokens, measure=measure) if calibrate else None
        if speed is None:
            speed = estimate.typical_speed(shape, peak_flops=calibration.matmul_peak() if device == "cpu" else 100e12,
                                           device=device)
        fixed = start + (speed.load_s or 2.0)  # and loading the model (measured with a calibration)
        if speed.peak_bytes and speed.at[0]:  # what the calibration's process held beyond the parts, at its batch
            at = replace(tokens, per_batch=speed.at[0], longest=speed.at[1])
            counted = estimate.memory(shape, at, recipe, device=device, element_bytes=element, runtime=runtime.get("bytes"))
            memory.other = max(0, speed.peak_bytes - counted.total)
            peak = memory.total
        fits_it = estimate.fits(peak, machine["available_bytes"])
        available = machine["available_bytes"]
    expected = estimate.seconds(tokens, speed, method) + fixed
    spread = (expected * (1 - estimate.TIME_SPREAD), expected * (1 + estimate.TIME_SPREAD))
    result = Forecast(
        parameters={"total": shape.total, "trainable": shape.trainable, "trainable_share": round(shape.trainable / shape.total, 5)},
        memory=asdict(memory), peak_bytes=peak, machine=machine, fits=fits_it, seconds=round(expected, 1),
        seconds_range=tuple(round(s, 1) for s in spread), flavors=rows, flavors_note=note,
        speed={"tokens_per_s": round(speed.tokens_per_s, 1), "generated_per_s": speed.generated_per_s and round(speed.generated_per_s, 1),
               "measured": speed.measured, "how": speed.how, "device": device})
    if not fits_it:
        result.suggestions = suggestions(recipe, plan, shape, device=device, element=element, runtime=runtime.get("bytes"),
                                         available=available, seconds=expected)
        bigger = next((row for row in rows if row["fits"]), None)  # a flavor with more memory, cheapest first
        if flavor and bigger:
            result.suggestions.insert(0, {"change": f"--flavor {bigger['flavor']} ({bigger['memory']}, ${bigger['per_hour']:.2f}/h)",
                                          "peak_bytes": peak, "peak": human_bytes(peak), "fits": True, "time": bigger["time"]})
        where = (f"the {flavor} flavor" if flavor else "any Jobs flavor") if on_jobs else (
            f"this machine ({human_bytes(machine['available_bytes'])} free now)")
        result.warnings.append(f"This run needs about {human_bytes(peak)} at its peak, more than {where} holds: "
                               "it would stop with an out-of-memory error. " + (
                                   f"Try: {result.suggestions[0]['change']}." if result.suggestions else ""))
    if time_limit_s and spread[0] > time_limit_s:
        result.warnings.append(f"This run should take {human_time(spread[0])} to {human_time(spread[1])}, longer than the "
                               f"{human_time(time_limit_s)} it may run: it would be stopped before it ends. "
                               "Lower training.max_steps or epochs" + (", or raise the job's time limit (--timeout)." if on_jobs else "."))
    return result


QUICK_PLAN_BYTES = 50 << 20  # Start forecasts datasets up to this size (the dry run counts every token)


def quick(recipe: Recipe, *, flavor: str | None = None, token: str | None = None, time_limit_s: float | None = None) -> Forecast | None:
    """The forecast Start makes (an earlier measurement of this machine, else a typical speed; with
    `flavor`, that Jobs flavor's), or None when none can be made quickly (a large dataset, a model
    that can't be resolved): the start itself reports what is wrong with a recipe."""
    from core.train import training

    try:
        path = recipe.dataset_path()
        if path.is_file() and path.stat().st_size > QUICK_PLAN_BYTES:
            return None
        return forecast(recipe, training.plan(recipe), calibrate="cached", on_jobs=flavor is not None, flavor=flavor,
                        token=token, time_limit_s=time_limit_s)
    except Exception:  # noqa: BLE001 - a forecast is advice; it never stops a start
        return None


def suggestions(recipe: Recipe, plan: dict, shape, *, device: str, element: int, runtime: int | None, available: int,
                seconds: float) -> list[dict]:
    """Changes that lower the peak, each with its new estimate, the ones that fit first."""
    options = []

    def variant(change: str, edit, slower: float = 1.0) -> None:
        changed = copy.deepcopy(recipe)
        edit(changed)
        tokens = estimate.tokens_of(plan, changed)
        peak = estimate.memory(shape, tokens, changed, device=device, element_bytes=element, runtime=runtime).total
        options.append({"change": change, "peak_bytes": peak, "peak": human_bytes(peak), "fits": estimate.fits(peak, available),
                        "time": human_time(seconds * slower)})

    t = recipe.training
    if not t.gradient_checkpointing:
        variant("training.gradient_checkpointing: true", lambda r: setattr(r.training, "gradient_checkpointing", True),
                GRADIENT_CHECKPOINTING_COST)
    if t.batch_size > 1:
        half = t.batch_size // 2
        variant(f"training.batch_size: {half} with training.grad_accum: {t.grad_accum * 2} (the same examples a step)",
                lambda r: (setattr(r.training, "batch_size", half), setattr(r.training, "grad_accum", t.grad_accum * 2)), 1.1)
        variant("training.batch_size: 1 with gradient checkpointing",
                lambda r: (setattr(r.training, "batch_size", 1), setattr(r.training, "grad_accum", t.grad_accum * t.batch_size),
                           setattr(r.training, "gradient_checkpointing", True)), 1.5)
    if recipe.data.max_length > 512:
        shorter = recipe.data.max_length // 2
        variant(f"data.max_length: {shorter} (longer examples are cut)", lambda r: setattr(r.data, "max_length", shorter))
    if device == "cuda" and t.tuning != "qlora" and t.method != "grpo":
        variant("training.tuning: qlora (4-bit base weights)", lambda r: setattr(r.training, "tuning", "qlora"), 1.2)
    if t.tuning == "full":
        variant("training.tuning: lora (train an adapter, not every weight)", lambda r: setattr(r.training, "tuning", "lora"))
    return sorted(options, key=lambda o: (not o["fits"], o["peak_bytes"]))


def lines(result: Forecast) -> list[str]:
    """The forecast in words, one line a part (the dry run, `studio plan` and the Train tab)."""
    p, m = result.parameters, result.memory
    low, high = result.seconds_range
    out = [f"Parameters: {p['total']:,} in all, {p['trainable']:,} trained ({p['trainable_share']:.2%})",
           f"Peak memory: {human_bytes(result.peak_bytes)} = weights {human_bytes(m['weights'])} + adapter "
           f"{human_bytes(m['adapter'])} + gradients {human_bytes(m['gradients'])} + optimizer {human_bytes(m['optimizer'])} "
           f"+ activations {human_bytes(m['activations'])} + runtime {human_bytes(m['runtime'])}"
           + (f" + other {human_bytes(m['other'])} (measured)" if m.get("other") else "") + ", per process"]
    if not result.flavors:
        free = result.machine["available_bytes"]
        out.append(f"Fits this machine: {'yes' if result.fits else 'NO'} ({human_bytes(free)} free of "
                   f"{human_bytes(result.machine['total_bytes'])}, {result.machine['name']})")
    speed = result.speed
    out.append(f"Time: {human_time(low)} to {human_time(high)} ({speed['tokens_per_s']:,.0f} trained tokens/s, {speed['how']})")
    for row in result.flavors:
        mark = "fits" if row["fits"] else "does not fit"
        late = " (past the time limit)" if row["over_time_limit"] else ""
        out.append(f"  {row['flavor']:<12} {row['memory']:>7} {mark:<13} {row['time']:<18} ${row['per_hour']:.2f}/h -> "
                   f"${row['cost_low']:.2f} to ${row['cost_high']:.2f}{late}")
    if result.flavors_note:
        out.append(f"  ({result.flavors_note})")
    for option in result.suggestions:
        out.append(f"  would {'fit' if option['fits'] else 'still not fit'}: {option['change']} -> peak {option['peak']}, "
                   f"about {option['time']}")
    out += [f"Warning: {warning}" for warning in result.warnings]
    return out
