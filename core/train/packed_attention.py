"""Attention over packed (padding-free) training batches, one sequence at a time.

The studio trains on padding-free batches: the examples of a batch are laid end to end in one
row, and position_ids restart at 0 where each begins. transformers' SDPA path turns that into
one block-diagonal causal mask over the whole row, and CPU attention with an arbitrary mask
computes every block, the empty ones too: a third of a LoRA step on the embedded model went
there. Here each sequence gets its own causal SDPA call instead (what flash-attention's varlen
kernel does on CUDA): the same result (gradients equal to 1e-6 in fp32), for the blocks on the
diagonal only.

It knows nothing of trainers or recipes: `use_for(model)` switches a loaded model over when its
attention is plain SDPA over full (not sliding-window) attention layers, and every other call
(padded batches, decoding with a cache, several rows) goes to transformers' own SDPA unchanged.
"""

from __future__ import annotations

import contextlib

NAME = "studio_packed_sdpa"
_last_bounds: tuple = (None, [])  # (position_ids, their bounds): every layer of a forward pass gets the same tensor


def sequence_bounds(position_ids) -> list[tuple[int, int]]:
    """[start, end) of each sequence in one packed row: a new one starts wherever the position
    does not follow the previous one. The padding a collator adds after the last sequence (to a
    multiple of some length, each pad at position 0, without labels) is one span, not one
    sequence a token: nothing reads what those tokens attend to.

    >>> import torch
    >>> sequence_bounds(torch.tensor([[0, 1, 2, 0, 1, 0]]))
    [(0, 3), (3, 5), (5, 6)]
    >>> sequence_bounds(torch.tensor([[0, 1, 2, 0, 1, 0, 0, 0]]))
    [(0, 3), (3, 5), (5, 8)]
    """
    positions = position_ids[0]
    starts = (positions[1:] != positions[:-1] + 1).nonzero().flatten() + 1
    bounds = [0, *starts.tolist(), positions.numel()]
    tail = 0
    while tail + 2 < len(bounds) and bounds[-1 - tail] - bounds[-2 - tail] == 1:
        tail += 1
    if tail > 1:  # one-token spans at the end: the collator's padding, kept as one
        bounds = [*bounds[:-tail], bounds[-1]]
    return list(zip(bounds[:-1], bounds[1:]))


def _bounds(position_ids) -> list[tuple[int, int]]:
    """sequence_bounds, worked out once per forward pass rather than once per layer."""
    global _last_bounds
    tensor, bounds = _last_bounds
    if tensor is not position_ids:
        bounds = sequence_bounds(position_ids)
        _last_bounds = (position_ids, bounds)
    return bounds


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
                     position_ids=None, **kwargs):
    """transformers' attention-function contract: query [batch, heads, length, dim], key and
    value [batch, kv heads, length, dim]; returns ([batch, length, heads, dim], None)."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    length = query.shape[2]
    packed = (attention_mask is None and position_ids is not None and query.shape[0] == 1 and length > 1
              and key.shape[2] == length and position_ids.shape[-1] == length)
    if not packed:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    gqa = query.shape[1] != key.shape[1]
    dtype = query.dtype
    cpu = query.device.type == "cpu"
    if cpu:
        # Under bf16 autocast (which would cast SDPA's inputs down): PyTorch's CPU flash-attention
        # backward ran 1.6x slower in bf16 than in fp32 on blocks this small; fp32 is also more exact.
        query, key, value = query.float(), key.float(), value.float()
    # split, not one slice a sequence: the backward pass is then one cat, where slices each
    # spread their gradient over a zeroed full-length tensor and add them up.
    lengths = [end - start for start, end in _bounds(position_ids)]
    with torch.autocast("cpu", enabled=False) if cpu else contextlib.nullcontext():
        parts = [F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa)
                 for q, k, v in zip(query.split(lengths, dim=2), key.split(lengths, dim=2), value.split(lengths, dim=2))]
    output = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
    return output.to(dtype).transpose(1, 2).contiguous(), None


def packed_mask(batch_size: int, q_length: int, kv_length: int, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
    """No mask for one unpadded row without a cache (packed_attention splits it by position);
    transformers' SDPA mask for everything else."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None and batch_size == 1 and q_length == kv_length and not q_offset and not kv_offset:
        return None
    return sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                     kv_offset=kv_offset, attention_mask=attention_mask, **kwargs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_attention)
    AttentionMaskInterface.register(NAME, packed_mask)


def eligible(config) -> bool:
    """Plain SDPA over full-attention layers only: a sliding window or another kernel keeps its own path."""
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    return all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or ["full_attention"])


def use_for(model) -> bool:
    """Switch `model` (a transformers causal LM, before peft wraps it) to per-sequence attention
    when eligible; True when it did. The saved config does not record it."""
    config = getattr(model, "config", None)
    if config is None or not eligible(config) or not hasattr(model, "set_attn_implementation"):
        return False
    register()
    model.set_attn_implementation(NAME)
    return True
