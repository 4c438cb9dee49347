"""The decoding forward of linear layers: the same numbers as F.linear for a few rows, F.linear
itself for anything else, and nothing changed in the weights or what is saved."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from core import decode_linear  # noqa: E402


def _layer(bias: bool) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(48, 80, bias=bias)
    decode_linear.use_for(layer)
    return layer


@pytest.mark.parametrize("rows", [1, 2, 5, decode_linear.MAX_ROWS])
@pytest.mark.parametrize("bias", [False, True])
def test_few_rows_match_f_linear(rows, bias):
    layer = _layer(bias)
    x = torch.randn(rows, 1, 48)
    with torch.inference_mode():
        out = layer(x)
    assert type(layer) is decode_linear.DecodeLinear
    assert out.shape == (rows, 1, 80) and out.is_contiguous()
    assert torch.allclose(out, F.linear(x, layer.weight, layer.bias), atol=1e-5)


def test_many_rows_and_training_keep_f_linear():
    layer = _layer(True)
    prompt = torch.randn(1, decode_linear.MAX_ROWS + 1, 48)
    with torch.inference_mode():
        assert torch.equal(layer(prompt), F.linear(prompt, layer.weight, layer.bias))
    x = torch.randn(2, 48, requires_grad=True)
    out = layer(x)
    assert out.grad_fn is not None and "Addmm" in type(out.grad_fn).__name__  # F.linear's own graph
    out.sum().backward()
    assert layer.weight.grad is not None and x.grad is not None


def test_only_plain_linear_layers_switch_and_nothing_saved_changes(tmp_path):
    class Custom(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(4, 4), Custom(4, 4), nn.Sequential(nn.Linear(4, 2)))
    keys = list(model.state_dict())
    assert decode_linear.use_for(model) == 2
    assert type(model[1]) is Custom
    assert list(model.state_dict()) == keys
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert torch.load(tmp_path / "w.pt").keys() == model.state_dict().keys()


def test_the_chat_engine_decodes_the_same_tokens_as_plain_generate(embedded_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.chat.engine import BASE, ChatEngine, Sampling

    engine = ChatEngine("embedded")
    assert any(type(m) is decode_linear.DecodeLinear for m in engine.base.modules())
    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    plain = AutoModelForCausalLM.from_pretrained(embedded_dir).eval()
    messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        expected = plain.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    pane = engine.generate_batch([(BASE, messages)], Sampling(max_new_tokens=12))[0]
    assert pane.token_ids == expected[0, inputs["input_ids"].shape[1]:].tolist()
