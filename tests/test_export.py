"""Export chain: run/adapter resolution, merge (merged greedy output == base + adapter), the
chain merge -> gguf -> ollama -> verify with its manifest, and bad input (missing base, no
checkpoint, a full disk) ending in a clear error with nothing marked done."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from core.export import pipeline, source
from tests.helpers.models import make_lora_run


@pytest.fixture(scope="module")
def embedded_run(embedded_dir, tmp_path_factory):
    return make_lora_run(embedded_dir, tmp_path_factory.mktemp("runs") / "smol-lora")


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    return make_lora_run(tiny_model_dir, tmp_path_factory.mktemp("runs") / "tiny-lora", recipe_model=None)


def _greedy(model, tokenizer, prompt="Tell me about the moon."):
    import torch

    inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0][inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.slow
def test_merged_model_answers_exactly_like_base_plus_adapter(embedded_run, embedded_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = pipeline.resolve_source(embedded_run)
    assert (source.label, source.kind, source.base_hub_id) == ("final", "adapter", "HuggingFaceTB/SmolLM2-135M-Instruct")
    merged_dir = pipeline.merge(source, tmp_path / "merged", say=lambda line: None)
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "recipe.yaml", "studio_source.json"):
        assert (merged_dir / name).is_file(), name
    assert not (merged_dir / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    base = AutoModelForCausalLM.from_pretrained(embedded_dir)
    plain = _greedy(base, tokenizer)
    with_adapter = _greedy(PeftModel.from_pretrained(base, source.artifact), tokenizer)
    merged = _greedy(AutoModelForCausalLM.from_pretrained(merged_dir), tokenizer)
    assert merged == with_adapter
    assert with_adapter != plain  # the adapter really changes the answer, so the equality above means something


def test_checkpoint_picking(tmp_path):
    run = tmp_path / "run"
    for sub in ("adapter", "checkpoints/checkpoint-5", "checkpoints/checkpoint-10"):
        (run / sub).mkdir(parents=True)
    artifacts = source.run_artifacts(run)
    assert source.pick(artifacts, "best", run)[1] == run / "adapter"  # no best/: the final adapter
    assert source.pick(artifacts, "last", run)[1] == run / "adapter"
    assert source.pick(artifacts, "checkpoint-5", run)[1] == run / "checkpoints/checkpoint-5"
    (run / "best").mkdir()
    assert source.pick(source.run_artifacts(run), "best", run)[1] == run / "best"
    with pytest.raises(pipeline.ExportError, match="no checkpoint named 'checkpoint-7'.*checkpoint-10"):
        source.pick(artifacts, "checkpoint-7", run)


def test_a_run_with_no_checkpoint_is_a_clear_error(studio_home):
    run = studio_home / "runs" / "empty-run"
    run.mkdir(parents=True)
    (run / "status.json").write_text('{"state": "running"}')
    events = list(pipeline.run_export(pipeline.ExportPlan(source="empty-run", gguf_type="f16")))
    assert events[-1].kind == "failed" and "has no checkpoint" in events[-1].message
    assert not (studio_home / "exports" / "empty-run" / "manifest.json").exists()


def test_an_adapter_whose_base_is_missing_is_a_clear_error(tiny_run, tmp_path, studio_home):
    import shutil

    adapter = shutil.copytree(tiny_run / "adapter", tmp_path / "orphan-adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted-base")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    events = list(pipeline.run_export(pipeline.ExportPlan(source=str(adapter), gguf_type="f16")))
    assert events[-1].kind == "failed"
    assert "base model is missing" in events[-1].message and "deleted-base" in events[-1].message
    assert not (studio_home / "exports" / "orphan-adapter").exists()


@pytest.mark.slow
def test_chain_merge_gguf_ollama_verify_with_manifest(tiny_run, studio_home, ollama_stand_in):  # noqa: F811
    host, seen = ollama_stand_in
    plan = pipeline.ExportPlan(source=str(tiny_run), gguf_type="q8_0", ollama_name="tiny-test", ollama_host=host,
                             prompts=("Hello",), max_new_tokens=6)
    events = list(pipeline.run_export(plan))
    assert [e.step for e in events if e.kind == "done"] == ["merge", "gguf", "ollama", "verify"]
    summary = events[-1]
    assert summary.kind == "summary"
    manifest = json.loads((studio_home / "exports" / "tiny-lora" / "manifest.json").read_text())
    assert {k: v["state"] for k, v in manifest["steps"].items()} == {"merge": "done", "gguf": "done", "ollama": "done", "verify": "done"}
    gguf_step = manifest["steps"]["gguf"]
    assert Path(gguf_step["path"]).is_file() and gguf_step["tensor_count"] > 0 and gguf_step["chat_template_present"]
    assert seen.errors == [] and seen.creates[0]["model"] == "tiny-test"
    assert summary.data["ollama"]["run_command"] == "ollama run tiny-test"
    row = summary.data["verify"]["rows"][0]
    assert row["prompt"] == "Hello" and isinstance(row["agree"], bool) and 0 <= row["token_agreement"] <= 1
    assert not list((studio_home / "exports").rglob("*.partial"))


def test_full_disk_during_gguf_marks_nothing_done_after_merge(tiny_run, studio_home, monkeypatch):
    import gguf as gguf_py

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf_py.GGUFWriter, "write_tensors_to_file", disk_full)
    events = list(pipeline.run_export(pipeline.ExportPlan(source=str(tiny_run), gguf_type="f16", ollama_name="tiny")))
    failed = [e for e in events if e.kind == "failed"]
    assert failed[0].step == "gguf" and "disk is full" in failed[0].message
    manifest = json.loads((studio_home / "exports" / "tiny-lora" / "manifest.json").read_text())
    assert manifest["steps"]["merge"]["state"] == "done"
    assert manifest["steps"]["gguf"]["state"] == "failed"
    assert "ollama" not in manifest["steps"] and "verify" not in manifest["steps"]
    assert not list((studio_home / "exports" / "tiny-lora").rglob("*.gguf*"))


def test_hub_step_without_token_keeps_the_prepared_folder(tiny_run, studio_home, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    events = list(pipeline.run_export(pipeline.ExportPlan(source=str(tiny_run), merge=False, hub_repo="me/tiny", verify=False)))
    hub_failed = next(e for e in events if e.step == "hub" and e.kind == "failed")
    prepared = studio_home / "exports" / "tiny-lora" / "hub"
    assert "No Hugging Face token" in hub_failed.message and str(prepared) in hub_failed.message
    assert (prepared / "README.md").is_file() and (prepared / "adapter_model.safetensors").is_file()
    assert "library_name: peft" in (prepared / "README.md").read_text()
    assert events[-1].kind == "summary"  # a refused push spoils nothing else


def test_cli_export_json_reports_steps_and_errors(tiny_run, studio_home, capsys, monkeypatch):
    from studio.cli.commands import main

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["export", str(studio_home / "no-such-run"), "--json"]) == 2
    assert "no such run" in json.loads(capsys.readouterr().out)["errors"][0]["error"]
    assert main(["export", str(tiny_run), "--hub", "me/tiny", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["steps"]["hub"]["state"] == "failed"
    assert set(report) == {"ok", "source", "export_dir", "manifest", "steps", "verify", "ollama", "errors"}
