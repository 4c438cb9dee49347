"""Linear layers for decoding on a CPU: a few rows of activations times a large weight.

While a chat decodes, every linear layer multiplies one row per answer (1 to 8) by its whole
weight, so a token costs one read of every weight from memory. PyTorch's `F.linear` does that
badly on a CPU for so few rows: one row goes to a matrix-vector kernel that reached about 11 GB/s
here, and 2 to 4 rows to a matrix-matrix kernel laid out for many rows (the embedded model's
weights took 44 ms for one row and 72 ms for two). The same product taken the other way round,
weight @ rows.T, with one row duplicated into two, streams the weights at about the memory's
speed: 17-28 ms for one or two rows (bench/chat_speed.py prints both, beside the memory read speed).

`use_for(model)` gives a model's plain nn.Linear layers that forward; a pass with gradients, on
another device, or with more rows than `MAX_ROWS` (a prompt's prefill; 4 rows on one thread) keeps
`F.linear`. The weights, state dict and saved files are untouched. This module knows nothing
about chats, adapters or training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Where weight @ rows.T stops winning, measured over the embedded model's weights: on one thread
# 3-4 rows 1.3-1.8x, 6 rows even, 8 rows 9% slower; on two threads 6-8 rows still 1.2-1.4x, 12 slower.
MAX_ROWS = 8
MAX_ROWS_ONE_THREAD = 4


class DecodeLinear(nn.Linear):
    """nn.Linear whose forward, for a few rows on a CPU without gradients, is weight @ rows.T."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.shape[-1]
        rows = x.numel() // features if features else 0
        limit = MAX_ROWS if torch.get_num_threads() > 1 else MAX_ROWS_ONE_THREAD
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


def use_for(model) -> int:
    """Give every plain nn.Linear in `model` (on a CPU) the decoding forward; returns how many.
    Subclasses (4-bit, 8-bit, peft's LoRA wrappers) keep their own forward; the plain layers
    inside them are switched."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.device.type == "cpu":
            module.__class__ = DecodeLinear
            count += 1
    return count
