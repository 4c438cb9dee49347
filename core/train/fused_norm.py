"""RMSNorm's training pass as one autograd node, on a CPU.

transformers' RMSNorm (Llama and the models that copy it) is five element-wise operations, each
its own autograd node: square, mean, rsqrt, the normalizing multiply and the weight's multiply,
and in the backward pass about twice as many, each a full pass over the hidden states. A LoRA
step on the embedded model runs 61 of them forward and backward. Here the forward computes the
same operations in the same order (bit-identical output) and the backward is the closed form
`dx = rstd * (g w - x * rstd^2 * mean(g w x))`: one multiply, one dot product per row and one
fused multiply-add. On one norm's 590 x 576 hidden states, forward + backward: 0.70 ms against
2.33 ms (2.9x, quiet 2-core AMD EPYC; gradients equal within 1e-7 relative). A whole LoRA step
alternated with and without it (bench/train_throughput.py) measured 1.00x there (faster in 4 of 8
pairs): the saving is real but inside the machine's step-to-step drift.

It applies to a pass with gradients over fp32 hidden states on a CPU with a frozen norm weight
(LoRA; a full fine-tune trains the weight and keeps transformers' pass), for the norm classes in
NORMS, whose forward is Llama's (tests/test_fused_norm.py compares their source). Everything else,
generation and evaluation included, keeps transformers' own forward.
"""

from __future__ import annotations

import types

NORMS = frozenset({"LlamaRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "MistralRMSNorm", "Phi3RMSNorm", "SmolLM3RMSNorm"})


def _norm_function():
    import torch

    class _RMSNorm(torch.autograd.Function):
        """weight * (x * rsqrt(mean(x^2) + eps)) over the last dimension, weight frozen."""

        @staticmethod
        def forward(ctx, hidden, weight, eps: float):
            rstd = torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)
            ctx.save_for_backward(hidden, rstd, weight)
            return weight * (hidden * rstd)

        @staticmethod
        def backward(ctx, grad):
            hidden, rstd, weight = ctx.saved_tensors
            scaled = grad * weight
            dot = torch.linalg.vecdot(scaled, hidden, dim=-1).unsqueeze(-1)
            coefficient = dot.mul_(rstd.square()).div_(hidden.shape[-1])
            return torch.addcmul(scaled, hidden, coefficient, value=-1).mul_(rstd), None, None

    return _RMSNorm


_FUNCTION = None


def rms_norm(hidden, weight, eps: float):
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _norm_function()
    return _FUNCTION.apply(hidden, weight, eps)


def _forward(self, hidden_states):
    import torch

    if (hidden_states.dtype != torch.float32 or hidden_states.device.type != "cpu" or self.weight.requires_grad
            or not torch.is_grad_enabled() or not hidden_states.requires_grad):
        return type(self).forward(self, hidden_states)
    return rms_norm(hidden_states, self.weight, self.variance_epsilon)


def use_for(model) -> int:
    """Give every NORMS module of `model` the fused training pass; how many it changed."""
    changed = 0
    for module in model.modules():
        if type(module).__name__ in NORMS and hasattr(module, "variance_epsilon") and "forward" not in vars(module):
            module.forward = types.MethodType(_forward, module)
            changed += 1
    return changed
