"""`studio system`: what this machine measured and chose, with the numbers that decided it: the
training precision on a CPU (bf16 autocast or fp32), whether LoRA layers train through
core.train.fused_lora's pass or peft's, whether the LM head and its loss go chunk by chunk
(core.train.head_loss) and, per thread count, whether decoding takes
core.decode_linear's path or F.linear, for how many rows, with both paths' times. Measures what is
not cached yet (a few seconds, once per machine and model), so the answer is the one a run or a
chat would use. Registered by studio.cli.commands (`add_parser`, `COMMAND`)."""

from __future__ import annotations

from core.precision import cpu_choice, machine_key
from studio.cli.output import print_json

COMMAND = "system"


def add_parser(sub) -> None:
    system = sub.add_parser("system", help="what this machine measured: training precision, the decoding path")
    system.add_argument("--model", default="embedded", help="the model whose weights the decoding path is timed on")
    system.add_argument("--json", action="store_true", help="print one JSON object")


def _training_choices(model, autocast: str | None) -> tuple[dict, dict]:
    """core.train.fused_lora's and core.train.head_loss's measured choices for this model's shapes,
    as a LoRA run (rank 16 on every linear, as the recipes) meets them."""
    from peft import LoraConfig, get_peft_model

    from core.train import fused_lora, head_loss

    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    chosen = (fused_lora.choose(peft_model, autocast), head_loss.choose(peft_model, autocast))
    return tuple({key: found.get(key) for key in ("fused", "why", "speedup", "cached", "timings")} for found in chosen)


def run(args) -> int:
    import torch
    from torch import nn

    from core import decode_linear, models

    model = models.load_model(args.model).eval()
    layers = [m for m in model.modules() if type(m) is nn.Linear and m.weight.device.type == "cpu"]
    found = {"machine": machine_key(), "device": models.device_policy().device, "precision": cpu_choice(),
             "decode": {"model": args.model, "layers": len(layers), "min_gain": decode_linear.MIN_GAIN}}
    if layers:
        chosen = decode_linear.choose(layers)
        found["decode"]["rows_by_threads"] = chosen["by_threads"]
        found["decode"]["timings_at_threads"] = {"threads": torch.get_num_threads(), "seconds": chosen["timings"],
                                                 "cached": chosen["cached"]}
    found["lora_layers"], found["loss"] = _training_choices(model, found["precision"]["autocast"]) if layers else (None, None)
    if args.json:
        print_json(found)
        return 0
    print(f"machine: {found['machine']}")
    print(f"training precision: {found['precision']['why']}")
    if found["lora_layers"]:
        lora = found["lora_layers"]
        timings = lora.get("timings") or {}
        measured = (f" ({timings['peft_s']:.4f} s vs {timings['fused_s']:.4f} s a forward + backward through one layer's "
                    f"LoRA projections, {timings['tokens']} tokens, median of {timings['pairs']} alternated pairs)") if timings else ""
        print(f"LoRA training layers: {lora['why']}{measured}")
    if found["loss"]:
        head, timings = found["loss"], found["loss"].get("timings") or {}
        measured = (f" ({timings['model_s']:.4f} s vs {timings['chunked_s']:.4f} s the head's forward + backward with its loss "
                    f"over {timings['rows']} rows, median of {timings['pairs']} alternated pairs)") if timings else ""
        print(f"loss: {head['why']}{measured}")
    if not layers:
        print("decoding: no CPU linear layers to time (a GPU model decodes with F.linear)")
        return 0
    for threads, rows in sorted(found["decode"]["rows_by_threads"].items()):
        path = f"weight @ rows.T for 1-{rows} rows, F.linear above" if rows else "F.linear for every row count"
        print(f"decoding on {threads} thread(s): {path}")
    print(f"measured at {torch.get_num_threads()} thread(s) over {len(layers)} layers of {args.model} "
          f"(seconds a pass, F.linear vs weight @ rows.T):")
    for rows, pair in found["decode"]["timings_at_threads"]["seconds"].items():
        print(f"  {rows} row(s): {pair['plain']:.4f} vs {pair['fast']:.4f} ({pair['plain'] / pair['fast']:.2f}x)")
    return 0
