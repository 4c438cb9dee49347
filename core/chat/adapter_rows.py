"""One LoRA adapter on some rows of a batch and the base model on the others, for the price of
the adapter's ordinary forward pass.

peft's mixed-adapter batches (`adapter_names=[...]`) split every LoRA layer's input by adapter
and scatter the results back. On a CPU those are a handful of extra small operations in each of
the model's ~200 adapted layers, and they made a base + tuned pair of panes no faster than two
plain generations one after the other (bench/chat_speed.py). When a batch mixes the base with
exactly one plain LoRA adapter (the Chat tab's pair, an A/B of base vs one run), the same answers
come from the adapter's ordinary forward with its scale replaced, for the pass, by a per-row
tensor: the adapter's scale on its rows, 0 on the base rows. A base row then gets
`base(x) + 0 * delta`, the base's own output bit for bit. Any other mix (two adapters, DoRA and
other variants, adapted embeddings or convolutions) returns None here and keeps peft's mixed
batches. This module knows nothing about threads, panes or the UI.
"""

from __future__ import annotations

# peft's LoRA layer classes whose forward is `base(x) + lora_B(lora_A(dropout(x))) * scaling`
PLAIN_KINDS = frozenset({"Linear", "Linear4bit", "Linear8bitLt"})


class RowScale:
    """A reusable context for forward passes over one batch layout (which rows use the adapter)."""

    def __init__(self, peft_model, name: str, layers: list, rows: tuple[bool, ...]):
        import torch

        self.peft, self.name, self.rows = peft_model, name, rows
        self._scales = []
        for layer in layers:
            scale = layer.scaling[name]
            weight = layer.lora_B[name].weight
            mask = torch.tensor([scale if row else 0.0 for row in rows], dtype=weight.dtype, device=weight.device)
            self._scales.append((layer, scale, mask.view(-1, 1, 1)))

    def __enter__(self):
        if self.peft.active_adapter != self.name:
            self.peft.set_adapter(self.name, inference_mode=True)
        for layer, _, mask in self._scales:
            layer.scaling[self.name] = mask
        return self

    def __exit__(self, *exc):
        for layer, scale, _ in self._scales:
            layer.scaling[self.name] = scale
        return False


def adapted_layers(peft_model, name: str) -> list | None:
    """Every LoRA layer that holds adapter `name`, or None when one of them isn't a plain LoRA linear."""
    from peft.tuners.lora import LoraLayer

    layers = [module for module in peft_model.modules() if isinstance(module, LoraLayer) and name in module.scaling]
    for layer in layers:
        if type(layer).__name__ not in PLAIN_KINDS or name in getattr(layer, "lora_variant", {}) \
                or name not in layer.lora_A or getattr(layer, "merged", False):
            return None
    return layers or None


def row_scale(peft_model, adapters: list[str | None]) -> RowScale | None:
    """The context for a batch whose rows name an adapter or None (the base), or None when this
    mix needs peft's mixed-adapter batches."""
    names = {adapter for adapter in adapters if adapter is not None}
    if len(names) != 1:
        return None
    name = names.pop()
    layers = adapted_layers(peft_model, name)
    if layers is None:
        return None
    return RowScale(peft_model, name, layers, tuple(adapter is not None for adapter in adapters))
