"""The decoding forward of linear layers: the same numbers as F.linear for a few rows, F.linear
itself for anything else, and nothing changed in the weights or what is saved."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from core import decode_linear  # noqa: E402


@pytest.fixture(autouse=True)
def eight_rows(monkeypatch):
    """The forward's own behaviour, apart from what this machine measured: up to 8 rows."""
    monkeypatch.setattr(decode_linear, "_LIMITS", {torch.get_num_threads(): 8})


def _layer(bias: bool) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(48, 80, bias=bias)
    decode_linear.use_for(layer, measure=False)
    return layer


@pytest.mark.parametrize("rows", [1, 2, 5, 8])
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
    prompt = torch.randn(1, 9, 48)
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
    assert decode_linear.use_for(model, measure=False) == 2
    assert type(model[1]) is Custom
    assert list(model.state_dict()) == keys
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert torch.load(tmp_path / "w.pt").keys() == model.state_dict().keys()


def test_the_chat_engine_decodes_the_same_tokens_as_plain_generate(embedded_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.chat.engine import BASE, ChatEngine, Sampling

    engine = ChatEngine("embedded")  # measures (or reads) this machine's choice of path
    switched = any(type(m) is decode_linear.DecodeLinear for m in engine.base.modules())
    assert switched == any(decode_linear.rows_limit(t) for t in {torch.get_num_threads(), 1})
    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    plain = AutoModelForCausalLM.from_pretrained(embedded_dir).eval()
    messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        expected = plain.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    pane = engine.generate_batch([(BASE, messages)], Sampling(max_new_tokens=12))[0]
    assert pane.token_ids == expected[0, inputs["input_ids"].shape[1]:].tolist()


def _timings(fast_wins_up_to: int) -> dict:
    return {str(rows): {"plain": 1.0, "fast": 0.5 if rows <= fast_wins_up_to else 1.2} for rows in decode_linear.ROW_COUNTS}


def test_the_path_is_chosen_by_what_this_machine_measured(monkeypatch):
    """Issue 29: on an Intel AMX CPU weight @ rows.T was 0.41x F.linear, yet it was taken. Now a
    machine where F.linear measures faster keeps F.linear; one where the fast path wins up to 4
    rows takes it up to 4; the numbers are cached with the choice and not measured again."""
    calls = []

    def slow_everywhere(layers):
        calls.append(len(layers))
        return _timings(0)

    model = nn.Sequential(nn.Linear(48, 80), nn.Linear(80, 48))
    monkeypatch.setattr(decode_linear, "_LIMITS", {})
    monkeypatch.setattr(decode_linear, "measure_paths", slow_everywhere)
    assert decode_linear.use_for(model) == 0 and all(type(m) is nn.Linear for m in model)
    assert decode_linear.rows_limit(torch.get_num_threads()) == 0 and decode_linear.rows_limit(1) == 0
    measured = len(calls)
    assert decode_linear.use_for(model) == 0 and len(calls) == measured  # cached, with its timings
    from core.workspace import read_json, workspace

    cache = read_json(workspace().root / "cache" / decode_linear.CACHE_FILE)
    assert all(entry["timings"]["1"] == {"plain": 1.0, "fast": 1.2} and entry["limit"] == 0 for entry in cache.values())

    other = nn.Sequential(nn.Linear(64, 64))  # another model shape: measured anew
    monkeypatch.setattr(decode_linear, "measure_paths", lambda layers: _timings(4))
    assert decode_linear.use_for(other) == 1 and type(other[0]) is decode_linear.DecodeLinear
    assert decode_linear.rows_limit(torch.get_num_threads()) == 4
    taken = []
    real_mm = torch.mm
    monkeypatch.setattr(decode_linear.torch, "mm", lambda *a: taken.append(1) or real_mm(*a))
    with torch.inference_mode():
        other(torch.randn(4, 64))
        assert len(taken) == 1  # 4 rows: weight @ rows.T
        other(torch.randn(8, 64))
        assert len(taken) == 1  # 8 rows: past the measured limit, F.linear


def test_the_limit_ends_at_the_first_row_count_that_loses():
    assert decode_linear.limit_from(_timings(8)) == 8
    assert decode_linear.limit_from(_timings(2)) == 2
    uneven = _timings(8)
    uneven["2"] = {"plain": 1.0, "fast": 0.99}  # under the 5% margin
    assert decode_linear.limit_from(uneven) == 1
    assert decode_linear.limit_from({}) == 0


def test_the_real_measurement_times_both_paths():
    layers = [nn.Linear(96, 128), nn.Linear(128, 96)]
    timings = decode_linear.measure_paths(layers, repeats=1)
    assert set(timings) == {"1", "2", "4", "8"} and all(t["plain"] > 0 and t["fast"] > 0 for t in timings.values())


def test_studio_system_says_what_was_chosen_and_why(tiny_model_dir, capsys):
    import json

    from studio.cli import commands as cli

    assert cli.main(["system", "--model", str(tiny_model_dir), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    rows = found["decode"]["rows_by_threads"]
    assert set(map(int, rows)) == {torch.get_num_threads(), 1} and all(r in (0, 1, 2, 4, 8) for r in rows.values())
    timings = found["decode"]["timings_at_threads"]["seconds"]
    assert set(timings) == {"1", "2", "4", "8"} and found["precision"]["why"]
    assert found["lora_layers"]["fused"] is True and "STUDIO_FUSED_LORA" in found["lora_layers"]["why"]  # pinned by conftest
    assert found["loss"]["fused"] is True and "STUDIO_FUSED_HEAD" in found["loss"]["why"]
    assert cli.main(["system", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "decoding on 1 thread(s):" in out and "LoRA training layers: fused LoRA layers" in out
    assert "loss: chunked's head and loss: set by STUDIO_FUSED_HEAD" in out


def test_the_header_shows_what_this_machine_chose_without_measuring(monkeypatch):
    import json

    from core.precision import machine_key
    from core.workspace import workspace
    from studio.ui import app, language

    monkeypatch.setattr(decode_linear, "measure_paths", lambda *a, **k: pytest.fail("a page load must not measure"))
    header = app.header_markdown()
    # The suite pins fp32, the fused LoRA layers and the chunked loss; nothing measured the decoding path here yet.
    assert header.endswith(" · **Measured here** training fp32, LoRA fused, loss chunked, decoding —"), header
    cache = workspace().root / "cache" / decode_linear.CACHE_FILE
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({f"{machine_key()} torch.float32 shapes 3x[(4, 4)]": {"limit": 0, "threads": 2}}))
    header = app.header_markdown()
    assert header.endswith("decoding F.linear"), header
    spanish = language.translate(header, "es")
    assert spanish.endswith(" · **Medido aquí** entrenamiento fp32, LoRA fused, pérdida chunked, decodificación F.linear"), spanish

    monkeypatch.setenv("STUDIO_DEMO", "1")  # the demo line and the measured one, both in Spanish
    spanish = language.translate(app.header_markdown(), "es")
    assert "**modo demo** (modelo incluido, ejecuciones cortas)" in spanish and "**Medido aquí**" in spanish, spanish
