"""core.train.fused_lora: a LoRA layer's training pass as one autograd node gives peft's loss and
gradients (equal in fp32, within bf16 rounding under autocast), and every case it does not cover
keeps peft's own path."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from core.train import fused_lora


def _lora_pair(model, **lora):
    """(peft's model, the same weights with the fused pass): adapters with non-zero B, so both
    matrices' gradients matter."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", **lora)
    peft_model = get_peft_model(model, config)
    torch.manual_seed(1)
    for name, parameter in peft_model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(std=0.05)
    fused = copy.deepcopy(peft_model)
    assert fused_lora.use_for(fused) > 0
    return peft_model, fused


def _loss_and_grads(model, ids, autocast: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _count_fused(monkeypatch) -> list:
    calls = []
    apply = fused_lora._LoraLinear.apply
    monkeypatch.setattr(fused_lora._LoraLinear, "apply", lambda *args: calls.append(1) or apply(*args))
    return calls


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_same_loss_and_gradients_as_peft(tiny, autocast, monkeypatch):
    peft_model, fused = _lora_pair(copy.deepcopy(tiny))
    ids = torch.randint(0, tiny.config.vocab_size, (1, 48), generator=torch.Generator().manual_seed(0))
    calls = _count_fused(monkeypatch)
    loss, grads = _loss_and_grads(fused, ids, autocast)
    assert len(calls) == 2 * 7  # every projection of both layers took the fused pass
    reference_loss, reference = _loss_and_grads(peft_model, ids, autocast)
    assert grads.keys() == reference.keys() and len(grads) == 2 * 7 * 2
    assert all(g.dtype == torch.float32 for g in grads.values())  # the adapters' gradients stay fp32
    tolerance = 3e-2 if autocast else 1e-5  # bf16: the scaling is applied before B, and q/k/v's input gradient summed in bf16
    assert loss == pytest.approx(reference_loss, rel=1e-3 if autocast else 1e-6)
    for name, grad in grads.items():
        error = (grad - reference[name]).norm() / reference[name].norm()
        assert error < tolerance, (name, float(error))


def test_layers_that_decode_a_few_rows_faster_train_through_the_fused_pass_too(tiny, monkeypatch):
    """A CPU where core.decode_linear measured its path faster switches every nn.Linear to DecodeLinear
    before peft wraps them (training.load_policy_model): the fused pass must still apply there."""
    from core import decode_linear

    model = copy.deepcopy(tiny)
    assert decode_linear.use_for(model, measure=False) > 0
    peft_model, fused = _lora_pair(model)
    assert type(fused_lora._lora_linears(fused)[0].get_base_layer()) is decode_linear.DecodeLinear
    ids = torch.randint(0, tiny.config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(0))
    calls = _count_fused(monkeypatch)
    loss, grads = _loss_and_grads(fused, ids, False)
    assert len(calls) == 2 * 7
    reference_loss, reference = _loss_and_grads(peft_model, ids, False)
    assert loss == pytest.approx(reference_loss, rel=1e-6)
    assert all((grads[name] - reference[name]).norm() <= 1e-5 * reference[name].norm() for name in grads)


def test_paths_it_does_not_cover_stay_with_peft(tiny, monkeypatch):
    ids = torch.randint(0, tiny.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    calls = _count_fused(monkeypatch)
    _, fused = _lora_pair(copy.deepcopy(tiny))
    with torch.no_grad():  # generation and evaluation
        fused(input_ids=ids)
    with fused.disable_adapter():  # DPO's reference pass
        fused(input_ids=ids, labels=ids)
    assert calls == []
    peft_model, fused = _lora_pair(copy.deepcopy(tiny), use_dora=True)
    torch.manual_seed(0)
    loss = fused(input_ids=ids, labels=ids).loss
    torch.manual_seed(0)
    assert loss.item() == peft_model(input_ids=ids, labels=ids).loss.item()
    assert calls == []


def test_lora_dropout_is_fused_with_the_same_mask_in_forward_and_backward():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 24, 16, generator=generator, requires_grad=True)
    weight = torch.randn(32, 16, generator=generator)
    a = torch.randn(4, 16, generator=generator, requires_grad=True)
    b = torch.randn(32, 4, generator=generator, requires_grad=True)
    grad = torch.randn(2, 24, 32, generator=generator)
    torch.manual_seed(7)
    out = fused_lora._LoraLinear.apply(x, weight, None, a, b, 2.0, 0.25)
    out.backward(grad)
    fused_grads = [t.grad.clone() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    torch.manual_seed(7)  # the same draw: nn.Dropout's keep-mask, scaled by 1 / (1 - p)
    keep = torch.empty(48, 16).bernoulli_(0.75).div_(0.75).view(2, 24, 16)
    assert 0 < (keep == 0).float().mean() < 0.5
    expected = x @ weight.t() + ((x * keep) @ a.t() * 2.0) @ b.t()
    expected.backward(grad)
    assert torch.allclose(out, expected, atol=1e-5)
    assert all(torch.allclose(f, t.grad, atol=1e-4) for f, t in zip(fused_grads, (x, a, b)))


def test_a_model_with_lora_dropout_takes_the_fused_pass_and_none_in_eval_mode(tiny, monkeypatch):
    ids = torch.randint(0, tiny.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    calls = _count_fused(monkeypatch)
    peft_model, fused = _lora_pair(copy.deepcopy(tiny), lora_dropout=0.1)
    fused.train()
    fused(input_ids=ids, labels=ids).loss.backward()
    assert len(calls) == 2 * 7
    fused.eval(), peft_model.eval()  # dropout off: the same loss as peft's, with gradients still on
    assert fused(input_ids=ids, labels=ids).loss.item() == pytest.approx(peft_model(input_ids=ids, labels=ids).loss.item(), rel=1e-6)


def test_an_input_read_by_several_layers_is_cast_once():
    x = torch.randn(4, 8, requires_grad=True) * 1.0  # not a leaf: as the normed hidden states
    first = fused_lora._compute_input(x, torch.bfloat16)
    assert first.dtype == torch.bfloat16 and fused_lora._compute_input(x, torch.bfloat16) is first
    assert fused_lora._compute_input(x.detach().clone(), torch.bfloat16) is not first  # another tensor
    x.add_(1)  # changed in place: the cast is stale
    again = fused_lora._compute_input(x, torch.bfloat16)
    assert again is not first and torch.equal(again, x.to(torch.bfloat16))
    assert fused_lora._compute_input(first, torch.bfloat16) is first  # already in the compute dtype


def test_the_choice_is_measured_once_per_machine_and_shapes_and_can_be_overridden(tiny, monkeypatch):
    _, model = _lora_pair(copy.deepcopy(tiny))
    fused_lora.restore(model)
    installed = lambda: sum("forward" in vars(m) for m in model.modules())  # noqa: E731
    monkeypatch.setenv(fused_lora.ENV, "auto")
    measured = []

    def timer(speedup):
        return lambda layers, autocast: measured.append((len(layers), autocast)) or {"speedup": speedup, "peft_s": 1.0,
                                                                                     "fused_s": 1.0 / speedup}
    slower = fused_lora.choose(model, None, timer=timer(0.9))
    assert not slower["fused"] and "0.90x (slower)" in slower["why"] and installed() == 0  # never the slower path
    again = fused_lora.choose(model, None, timer=timer(1.2))
    assert again["cached"] and not again["fused"] and measured == [(7, None)]  # kept per machine: not measured twice
    bf16 = fused_lora.choose(model, "bfloat16", timer=timer(1.2))  # another precision is another measurement
    assert bf16["fused"] and "1.20x" in bf16["why"] and installed() == 14 and measured[-1] == (7, "bfloat16")
    fused_lora.restore(model)
    monkeypatch.setenv(fused_lora.ENV, "on")
    assert fused_lora.choose(model, None)["fused"] and installed() == 14
    fused_lora.restore(model)
    monkeypatch.setenv(fused_lora.ENV, "off")
    assert not fused_lora.choose(model, None)["fused"] and installed() == 0


def test_the_measurement_is_real_and_leaves_the_layers_as_they_were(tiny):
    _, model = _lora_pair(copy.deepcopy(tiny))
    fused_lora.restore(model)
    layers = fused_lora._lora_linears(model)[:7]
    timings = fused_lora.measure(layers, "bfloat16", pairs=1)
    assert timings["speedup"] > 0 and timings["peft_s"] > 0 and timings["fused_s"] > 0
    assert all("forward" not in vars(layer) and all(p.grad is None for p in layer.parameters()) for layer in layers)
