"""GGUF: llama.cpp's converter on real models, read back with gguf.GGUFReader, loaded again
and compared greedily with the source model; plus the failure paths (unknown type, k-quants
without llama.cpp, a full disk) leaving no file that looks finished."""

from __future__ import annotations

import errno

import pytest

from core.export import gguf


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


RUNTIMES = [pytest.param("llama.cpp", marks=pytest.mark.skipif(not gguf.llama_cpp_available(),
                                                                 reason="llama-cpp-python (pip install .[llama]) is not installed")),
            "transformers"]


@pytest.fixture(params=RUNTIMES)
def runtime(request, monkeypatch):
    if request.param == "transformers":
        monkeypatch.setattr(gguf, "llama_cpp_available", lambda: False)
    return request.param


@pytest.mark.slow
def test_f16_answers_exactly_like_the_source_model(embedded_ggufs, embedded_dir, runtime):
    report = gguf.verify(embedded_ggufs["f16"], embedded_dir, ["What is the capital of France?", "Write one sentence about the sea."], 12)
    assert report["runtime"].startswith(runtime)
    assert "Paris" in report["rows"][0]["merged"]
    assert report["agreed"] == report["total"] == 2 and report["token_agreement"] == 1.0
    assert [row["gguf"] for row in report["rows"]] == [row["merged"] for row in report["rows"]]


@pytest.mark.slow
def test_q8_0_stays_close_to_the_source_model(embedded_ggufs, embedded_dir, runtime):
    report = gguf.verify(embedded_ggufs["q8_0"], embedded_dir, ["What is the capital of France?", "Write one sentence about the sea."], 12)
    for row in report["rows"]:
        assert row["gguf"].strip() and row["agree"] == (row["merged"].strip() == row["gguf"].strip())
    # 8-bit weights may flip a near-tied token of a 135M model; along the source's answer they still pick its tokens.
    assert report["token_agreement"] >= 0.8


@pytest.mark.slow
def test_a_broken_conversion_is_caught(embedded_ggufs, embedded_dir, tmp_path, monkeypatch):
    """Query heads in the wrong order (what a bad q/k permutation does): the file still loads and
    talks, and verification must say it is not the source model."""
    import shutil

    import gguf as gguf_py

    broken = shutil.copy(embedded_ggufs["f16"], tmp_path / "smol-f16.gguf")
    reader = gguf_py.GGUFReader(broken, "r+")
    for tensor in reader.tensors:
        if tensor.name.endswith("attn_q.weight"):
            tensor.data[:] = tensor.data[::-1].copy()
    reader.data.flush()
    del reader
    monkeypatch.setattr(gguf, "llama_cpp_available", lambda: False)
    report = gguf.verify(tmp_path / "smol-f16.gguf", embedded_dir, ["What is the capital of France?"], 12)
    assert report["agreed"] == 0 and report["token_agreement"] < 0.5


@pytest.mark.slow
@pytest.mark.skipif(not gguf.llama_cpp_available(), reason="llama-cpp-python (pip install .[llama]) is not installed")
def test_q4_k_m_through_llama_cpps_quantizer_loads_and_answers(embedded_dir, tmp_path):
    out = gguf.convert(embedded_dir, tmp_path / "smol-q4_k_m.gguf", "q4_k_m")
    info = gguf.read_back(out)
    assert info["architecture"] == "llama" and "Q4_K" in info["tensor_types"] and info["chat_template_present"]
    assert not list(tmp_path.glob("*.f16"))  # the intermediate f16 file is gone
    report = gguf.verify(out, embedded_dir, ["What is the capital of France?", "Write one sentence about the sea."], 12)
    assert report["runtime"] == "llama.cpp" and all(row["gguf"].strip() for row in report["rows"])
    assert report["token_agreement"] >= 0.7


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
