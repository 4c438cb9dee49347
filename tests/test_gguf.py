"""GGUF: llama.cpp's converter on real models, read back with gguf.GGUFReader, loaded again
and compared greedily with the source model; plus the failure paths (unknown type, k-quants
without llama.cpp, a full disk) leaving no file that looks finished."""

from __future__ import annotations

import errno

import pytest

from core import gguf


@pytest.fixture(scope="module")
def embedded_ggufs(embedded_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    return {kind: gguf.convert(embedded_dir, folder / f"smol-{kind}.gguf", kind) for kind in ("f16", "q8_0")}


def _tensor_names(model_dir):
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as handle:
        return list(handle.keys())


@pytest.mark.slow
@pytest.mark.parametrize("kind, stored", [("f16", "F16"), ("q8_0", "Q8_0")])
def test_embedded_model_converts_and_reads_back(embedded_ggufs, embedded_dir, embedded_tokenizer, kind, stored):
    info = gguf.read_back(embedded_ggufs[kind])
    assert info["architecture"] == "llama"
    assert info["tensor_count"] == len(_tensor_names(embedded_dir))
    assert info["block_count"] == 30
    assert stored in info["tensor_types"]
    assert info["chat_template_present"] and info["chat_template"] == embedded_tokenizer.chat_template
    assert not list(embedded_ggufs[kind].parent.glob("*.partial"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_gguf_loads_and_generates_like_the_source_model(embedded_ggufs, embedded_dir, kind):
    report = gguf.verify(embedded_ggufs[kind], embedded_dir, ["What is the capital of France?"], 8)
    assert report["total"] == 1 and report["runtime"]
    for row in report["rows"]:
        assert row["merged"].strip() and row["gguf"].strip()
        assert row["agree"] == (row["merged"].strip() == row["gguf"].strip())
    # "The capital of France is Paris." survives every type we write; a broken export would not say it.
    assert "Paris" in report["rows"][0]["gguf"]


def test_bf16_from_the_tiny_model(tiny_model_dir, tmp_path):
    info = gguf.read_back(gguf.convert(tiny_model_dir, tmp_path / "tiny-bf16.gguf", "bf16"))
    assert info["architecture"] == "llama" and "BF16" in info["tensor_types"] and info["block_count"] == 2


def test_k_quants_without_llama_cpp_are_explained(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf, "llama_cpp_available", lambda: False)
    with pytest.raises(gguf.GGUFError, match=r"q4_k_m is unavailable.*install the llama extra"):
        gguf.convert(tiny_model_dir, tmp_path / "t.gguf", "q4_k_m")
    assert gguf.type_availability("q8_0") is None
    assert "Unknown GGUF type" in gguf.type_availability("q3_weird")


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(gguf.GGUFError, match="no config.json"):
        gguf.convert(tmp_path, tmp_path / "x.gguf", "f16")


def test_full_disk_during_conversion_leaves_no_file(tiny_model_dir, tmp_path, monkeypatch):
    import gguf as gguf_py

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf_py.GGUFWriter, "write_tensors_to_file", disk_full)
    out = tmp_path / "tiny-f16.gguf"
    with pytest.raises(gguf.GGUFError, match="disk is full"):
        gguf.convert(tiny_model_dir, out, "f16")
    assert list(tmp_path.iterdir()) == []


def test_read_back_refuses_a_truncated_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(gguf.GGUFError, match="not a readable GGUF"):
        gguf.read_back(bad)
