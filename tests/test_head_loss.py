"""core.train.head_loss: the LM head and its cross-entropy chunk by chunk give the model's own
loss and gradients (equal in fp32, within bf16 rounding), never lose a token to underflow, apply
only to a plain frozen head, and are chosen by measurement."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from core.train import head_loss


def _rows(rows=300, hidden=32, vocab=1000, scale=1.0):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(vocab, hidden, generator=generator) * scale
    states = torch.randn(rows, hidden, generator=generator)
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    targets[::5] = -100
    return states, weight, targets


def _reference(states, weight, targets):
    states = states.clone().requires_grad_()
    loss = F.cross_entropy(states @ weight.t(), targets, reduction="sum")
    loss.backward()
    return loss.detach(), states.grad


@pytest.mark.parametrize("chunk", [64, 1000])
def test_same_summed_loss_and_input_gradient_as_cross_entropy(chunk):
    states, weight, targets = _rows()
    expected, expected_grad = _reference(states, weight, targets)
    states = states.clone().requires_grad_()
    loss = head_loss.summed_loss(states, weight, targets, chunk=chunk)
    (loss * 0.5).backward()  # the incoming gradient scales the kept one
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert torch.allclose(states.grad, 0.5 * expected_grad, atol=1e-6)


def test_a_target_whose_probability_underflows_keeps_its_exact_loss():
    states, weight, targets = _rows(scale=60.0)  # logits in the thousands: most targets' p is 0 in fp32
    expected, _ = _reference(states, weight, targets)
    loss = head_loss.summed_loss(states, weight, targets)
    assert torch.isfinite(loss) and torch.allclose(loss, expected, rtol=1e-5)


def test_in_bf16_the_loss_and_gradient_are_within_rounding():
    states, weight, targets = _rows()
    expected, expected_grad = _reference(states, weight, targets)
    states = states.clone().requires_grad_()
    loss = head_loss.summed_loss(states, weight.to(torch.bfloat16), targets)
    loss.backward()
    assert states.grad.dtype == torch.float32  # the gradient comes back in the hidden states' dtype
    assert abs(loss.item() - expected.item()) / expected.item() < 0.01
    assert (states.grad - expected_grad).norm() / expected_grad.norm() < 0.02


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(1)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(std=0.05)
    return model


def _grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("items", [None, 57], ids=["mean", "num-items"])
def test_the_models_loss_and_adapter_gradients_through_the_chunked_head(lora_model, items):
    model = copy.deepcopy(lora_model)
    assert head_loss.applies(model)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (2, 40), generator=generator)
    labels = ids.clone()
    labels[:, :12] = -100  # a prompt: untrained
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    count = None if items is None else torch.tensor(items)
    expected, reference = _grads(model, lambda: model(**inputs, use_cache=False, num_items_in_batch=count).loss)
    loss, grads = _grads(model, lambda: head_loss.causal_lm_loss(model, inputs, count))
    assert abs(loss - expected) <= 1e-5 * abs(expected)
    assert grads.keys() == reference.keys() and len(grads) == 2 * 7 * 2
    assert all(torch.allclose(grads[name], reference[name], atol=1e-6) for name in grads)


def test_only_a_plain_frozen_head_takes_the_chunked_pass(lora_model, monkeypatch):
    model = copy.deepcopy(lora_model)
    model.get_base_model().get_output_embeddings().weight.requires_grad_(True)  # full fine-tuning trains it
    assert not head_loss.applies(model)
    model = copy.deepcopy(lora_model)
    monkeypatch.setattr(model.get_base_model().config, "model_type", "gemma2")  # logits capped: not plain
    assert not head_loss.applies(model)
    assert head_loss.choose(model)["fused"] is False


def test_the_choice_is_measured_once_per_machine_and_can_be_overridden(lora_model, monkeypatch):
    monkeypatch.setenv(head_loss.ENV, "auto")
    measured = []

    def timer(speedup):
        return lambda model, autocast: measured.append(autocast) or {"speedup": speedup, "model_s": 1.0, "chunked_s": 1 / speedup}
    assert head_loss.cached_choice() is None  # nothing measured in this workspace yet
    slower = head_loss.choose(lora_model, None, timer=timer(0.9))
    assert not slower["fused"] and "0.90x (slower)" in slower["why"]  # never the slower path
    again = head_loss.choose(lora_model, None, timer=timer(1.5))
    assert again["cached"] and not again["fused"] and measured == [None]
    bf16 = head_loss.choose(lora_model, "bfloat16", timer=timer(1.5))  # another precision, another measurement
    assert bf16["fused"] and "1.50x" in bf16["why"] and measured == [None, "bfloat16"]
    assert head_loss.cached_choice() == {"fused": False, "speedup": 0.9}  # the first kept for this machine
    monkeypatch.setenv(head_loss.ENV, "off")
    assert not head_loss.choose(lora_model)["fused"] and head_loss.cached_choice() == {"fused": False, "speedup": None}


def test_the_measurement_is_real(lora_model):
    timings = head_loss.measure(lora_model, "bfloat16", pairs=1)
    assert timings["speedup"] > 0 and timings["model_s"] > 0 and timings["chunked_s"] > 0
