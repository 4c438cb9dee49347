"""core.precision: a CPU trains under bf16 autocast only where the CPU has native bf16 and the
measurement says it is faster; the override works; the choice reaches the trainer config, the
run's status.json and train.log; a bf16-autocast run's loss stays within the stated tolerance of
fp32's."""

from __future__ import annotations

import json

import pytest
import torch

from core import precision
from core.train import fused_lora, trainer_configs, training
from tests.helpers.data import make_recipe, write_chats


@pytest.fixture
def auto(monkeypatch, tmp_path):
    monkeypatch.setenv(precision.ENV, "auto")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return monkeypatch


def test_no_native_bf16_means_fp32_without_measuring(auto):
    auto.setattr(precision, "native_bf16", lambda: [])
    auto.setattr(precision, "measure_speedup", lambda: pytest.fail("measured on a CPU that emulates bf16"))
    choice = precision.cpu_choice()
    assert choice["autocast"] is None and "no native bf16" in choice["why"]


def test_native_bf16_uses_autocast_only_when_measured_faster_and_caches_the_measure(auto, tmp_path):
    auto.setattr(precision, "native_bf16", lambda: ["avx512_bf16"])
    measured = []
    auto.setattr(precision, "measure_speedup", lambda: measured.append(1) or 1.4)
    assert precision.cpu_choice()["autocast"] == "bfloat16"
    assert precision.cpu_choice()["autocast"] == "bfloat16" and len(measured) == 1, "measured once per machine"
    cache = tmp_path / "home" / "cache" / precision.CACHE_FILE
    cache.write_text(json.dumps({key: 1.05 for key in json.loads(cache.read_text())}))
    slow = precision.cpu_choice()
    assert slow["autocast"] is None and "only 1.05x" in slow["why"]


def test_the_override_wins(monkeypatch):
    monkeypatch.setattr(precision, "measure_speedup", lambda: pytest.fail("an override needs no measurement"))
    monkeypatch.setenv(precision.ENV, "bf16")
    assert precision.training_policy().autocast == "bfloat16"
    monkeypatch.setenv(precision.ENV, "fp32")
    assert precision.training_policy().autocast is None


def test_the_measurement_is_a_real_ratio():
    assert 0.05 < precision.measure_speedup(rounds=1, repeats=1) < 20


def test_the_choice_reaches_the_trainer_status_and_log(monkeypatch, tmp_path, tiny_model_dir):
    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"), max_steps=4, logging_steps=1)
    recipe.lora.dropout = 0.0  # as the bundled CPU recipes: LoRA dropout keeps peft's own pass (core.train.fused_lora)
    losses, fused_calls = {}, []
    apply = fused_lora._LoraLinear.apply
    monkeypatch.setattr(fused_lora._LoraLinear, "apply", lambda *args: fused_calls.append(1) or apply(*args))
    for name in ("fp32", "bf16"):
        monkeypatch.setenv(precision.ENV, name)
        config = trainer_configs.sft_config(recipe, str(tmp_path / name), steps_per_epoch=4, has_eval=False)
        assert config.bf16 is (name == "bf16")
        status, lines = {}, []
        fused_calls.clear()
        trainer, _ = training.train(recipe, tmp_path / name, log=lines.append, update_status=status.update)
        assert status["precision"]["autocast"] == ("bfloat16" if name == "bf16" else None)
        # Under autocast the frozen projections keep bf16 weights (no cast at every call); the adapters stay fp32.
        dtypes = {key.rsplit(".", 1)[0].split(".")[-1]: p.dtype for key, p in trainer.model.named_parameters()
                  if "q_proj" in key and key.endswith("weight")}
        assert dtypes == {"base_layer": torch.bfloat16 if name == "bf16" else torch.float32, "default": torch.float32}, dtypes
        # Every LoRA projection trains through core.train.fused_lora, in both precisions.
        assert all("forward" in vars(m) for m in trainer.model.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A"))
        assert len(fused_calls) >= 4 * 2 * 7  # and took it at every step (the layers may be DecodeLinear: core.decode_linear)
        assert any(line.startswith("precision: ") for line in lines)
        assert "lora layers: fused LoRA layers: set by STUDIO_FUSED_LORA" in lines
        assert "loss: chunked's head and loss: set by STUDIO_FUSED_HEAD" in lines and trainer.studio_fused_head["fused"]
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [r["loss"] for r in records if r["split"] == "train"]
    assert len(losses["fp32"]) == len(losses["bf16"]) == 4
    relative = [abs(b - f) / f for f, b in zip(losses["fp32"], losses["bf16"])]
    assert sum(relative) / len(relative) <= precision.LOSS_TOLERANCE, (losses, relative)


def test_capped_instruction_sets_are_measured_apart(auto):
    """ONEDNN_MAX_CPU_ISA=AVX2 turns native bf16 off for oneDNN: a cached measure without the cap
    must not decide for a process with it."""
    auto.setattr(precision, "native_bf16", lambda: ["avx512_bf16"])
    auto.setattr(precision, "measure_speedup", lambda: 1.9)
    assert precision.cpu_choice()["autocast"] == "bfloat16"
    auto.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    auto.setattr(precision, "measure_speedup", lambda: 0.1)
    capped = precision.cpu_choice()
    assert capped["autocast"] is None and "only 0.10x" in capped["why"]
