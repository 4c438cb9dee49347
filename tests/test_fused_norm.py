"""core.train.fused_norm: RMSNorm's training pass as one autograd node gives transformers' output
bit for bit and its gradients, applies only where it should, and every class it names has Llama's forward."""

from __future__ import annotations

import copy
import importlib
import inspect

import pytest
import torch
from transformers import AutoModelForCausalLM

from core.train import fused_norm


def _norm_classes():
    found = {}
    for name in fused_norm.NORMS:
        model_type = name.removesuffix("RMSNorm").lower()
        module = importlib.import_module(f"transformers.models.{model_type}.modeling_{model_type}")
        found[name] = getattr(module, name)
    return found


def test_every_named_norm_computes_what_llamas_does():
    classes = _norm_classes()
    body = inspect.getsource(classes["LlamaRMSNorm"].forward)
    assert all(inspect.getsource(cls.forward) == body for cls in classes.values())


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.requires_grad_(False)  # as under LoRA: the norm weights frozen
    return model


def test_same_output_and_input_gradient_as_transformers():
    norm = _norm_classes()["LlamaRMSNorm"](64, eps=1e-5)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    x, grad = torch.randn(3, 17, 64, generator=generator), torch.randn(3, 17, 64, generator=generator)
    grads = []
    for fused in (False, True):
        if fused:
            assert fused_norm.use_for(norm) == 1
        hidden = x.clone().requires_grad_()
        out = norm(hidden)
        out.backward(grad)
        grads.append((out.detach(), hidden.grad))
    assert torch.equal(grads[0][0], grads[1][0])  # the forward: the same operations in the same order
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-6)


def test_a_models_loss_and_gradients_are_unchanged_and_other_passes_keep_transformers(tiny, monkeypatch):
    ids = torch.randint(0, tiny.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
    fused = copy.deepcopy(tiny)
    assert fused_norm.use_for(fused) == 2 * 2 + 1  # two per decoder layer and the final norm
    assert fused_norm.use_for(fused) == 0  # once
    results = []
    for model in (tiny, fused):
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_()
        loss = model(inputs_embeds=embeddings, labels=ids, use_cache=False).loss
        loss.backward()
        results.append((loss.item(), embeddings.grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-7)
    calls = []
    apply = fused_norm._norm_function
    monkeypatch.setattr(fused_norm, "_FUNCTION", None)
    monkeypatch.setattr(fused_norm, "_norm_function", lambda: calls.append(1) or apply())
    with torch.no_grad():  # generation and evaluation
        fused(input_ids=ids)
    fused.model.norm.weight.requires_grad_(True)  # a full fine-tune trains the norm weights
    fused(input_ids=ids, labels=ids).loss.backward()
    assert calls == []
