"""Per-sequence attention over packed batches: the same loss, gradients and generations as
transformers' SDPA, on the tiny random Llama (grouped-query attention, 4 heads over 2)."""

from __future__ import annotations

import json

import pytest

from core.train import packed_attention

torch = pytest.importorskip("torch")


def _packed_batch(lengths=(5, 9, 3), vocab=200, seed=1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (1, sum(lengths)), generator=generator)
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    return ids, positions


def _loss_and_grads(model, ids, positions):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, position_ids=positions, labels=ids, use_cache=False).loss
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.fixture()
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert model.config._attn_implementation == "sdpa"
    return model


def test_sequence_bounds_split_where_positions_restart():
    assert packed_attention.sequence_bounds(torch.tensor([[0, 1, 2, 0, 1, 0]])) == [(0, 3), (3, 5), (5, 6)]
    assert packed_attention.sequence_bounds(torch.tensor([[0, 1, 2, 3]])) == [(0, 4)]


def test_packed_batch_matches_sdpa_block_mask(tiny):
    ids, positions = _packed_batch()
    reference_loss, reference_grads = _loss_and_grads(tiny, ids, positions)
    assert packed_attention.use_for(tiny)
    loss, grads = _loss_and_grads(tiny, ids, positions)
    assert loss == pytest.approx(reference_loss, rel=1e-5)
    assert torch.allclose(grads, reference_grads, rtol=1e-4, atol=1e-6)
    # The split matters: one causal pass over the whole row (sequences seeing each other) differs.
    crossed_loss, _ = _loss_and_grads(tiny, ids, torch.arange(ids.shape[1]).unsqueeze(0))
    assert abs(crossed_loss - loss) > 1e-4


def test_padded_batches_and_decoding_keep_transformers_sdpa(tiny, embedded_tokenizer):
    tokenizer = embedded_tokenizer
    tokenizer.padding_side = "left"
    batch = tokenizer(["Two plus two is", "The capital of France, as everyone knows, is"], return_tensors="pt",
                      padding=True)
    with torch.no_grad():
        reference_logits = tiny(**batch).logits
        reference_text = tiny.generate(**batch, max_new_tokens=6, do_sample=False)
        packed_attention.use_for(tiny)
        logits = tiny(**batch).logits
        text = tiny.generate(**batch, max_new_tokens=6, do_sample=False)
    assert torch.allclose(logits, reference_logits, atol=1e-5)
    assert torch.equal(text, reference_text)


def test_only_full_attention_sdpa_models_switch(tmp_path, tiny):
    from transformers import LlamaConfig, MistralConfig

    windowed = MistralConfig(sliding_window=16)
    windowed._attn_implementation = "sdpa"
    assert not packed_attention.eligible(windowed)
    eager = LlamaConfig()
    eager._attn_implementation = "eager"
    assert not packed_attention.eligible(eager)
    assert packed_attention.use_for(tiny)
    tiny.save_pretrained(tmp_path / "saved")  # a merged or fully tuned model must load anywhere
    assert packed_attention.NAME not in json.dumps(json.loads((tmp_path / "saved" / "config.json").read_text()))


def test_the_policy_model_uses_it_on_cpu(tiny_model_dir, tmp_path):
    from core import decode_linear, recipes
    from core.train import training

    recipe = recipes.from_dict({"name": "t", "model": {"name": str(tiny_model_dir)}, "data": {"path": str(tmp_path / "x.jsonl")}})
    model = training.load_policy_model(recipe)
    assert model.config._attn_implementation == packed_attention.NAME
    # GRPO's generations take the decoding path where this machine measured it faster (core.decode_linear)
    switched = any(type(m) is decode_linear.DecodeLinear for m in model.modules())
    assert switched == any(decode_linear.rows_limit(t) for t in {torch.get_num_threads(), 1})


def test_under_bf16_autocast_attention_stays_close_to_fp32(tiny):
    """The CPU path computes attention in fp32 even under bf16 autocast (faster there, and exact)."""
    ids, positions = _packed_batch()
    packed_attention.use_for(tiny)
    fp32_loss, _ = _loss_and_grads(tiny, ids, positions)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_loss, grads = _loss_and_grads(tiny, ids, positions)
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.02)
    assert torch.isfinite(grads).all()

