"""Modelfile: TEMPLATE/stops/system from the model's own chat template, and `ollama create`
through the official client against a stand-in server that checks Ollama's documented API
(and against a real server when OLLAMA_HOST answers)."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from core.export import modelfile

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 2+2?"}]


def render_range_template(template: str, messages: list[dict]) -> str:
    """Evaluate the simple Go templates (range over .Messages with .Role/.Content, then a
    tail) the way Ollama's text/template would, so we can compare with the Jinja rendering."""
    match = re.fullmatch(r"\{\{- range \.Messages \}\}(.*?)\{\{ end \}\}(.*)", template, re.S)
    assert match, "not a plain range template"
    body, tail = match.groups()
    return "".join(body.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"]) for m in messages) + tail


def test_chatml_template_matches_the_tokenizers_own_rendering(embedded_tokenizer):
    spec = modelfile.spec_from_tokenizer(embedded_tokenizer)
    assert spec.family == "chatml"
    assert spec.stops == ["<|im_start|>", "<|im_end|>"]
    expected = embedded_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert render_range_template(spec.template, MESSAGES) == expected


def test_default_system_prompt_is_read_from_the_template(embedded_tokenizer):
    spec = modelfile.spec_from_tokenizer(embedded_tokenizer)
    assert spec.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert modelfile.spec_from_tokenizer(embedded_tokenizer, system="Answer in French.").system == "Answer in French."


def test_modelfile_text_has_from_template_stops_and_system(embedded_tokenizer):
    spec = modelfile.spec_from_tokenizer(embedded_tokenizer)
    text = modelfile.modelfile_text("m-q8_0.gguf", spec)
    assert text.startswith("FROM ./m-q8_0.gguf\n")
    assert ('TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
            '<|im_start|>assistant\n"""') in text
    assert 'PARAMETER stop "<|im_start|>"\nPARAMETER stop "<|im_end|>"' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text


LLAMA3_JINJA = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                " + message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
PHI3_JINJA = ("{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
              "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
              "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
              "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
MISTRAL_JINJA = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                 "{% else %}{{ m['content'] }}</s>{% endif %}{% endfor %}")
GEMMA_JINJA = "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n"


@pytest.mark.parametrize("jinja, family, stop", [
    (LLAMA3_JINJA, "llama3", "<|eot_id|>"), (PHI3_JINJA, "phi3", "<|end|>"),
    (MISTRAL_JINJA, "mistral", "[INST]"), (GEMMA_JINJA, "gemma", "<end_of_turn>"),
])
def test_other_families_are_recognised(jinja, family, stop):
    found = modelfile.detect_family(jinja)
    assert found.name == family and stop in found.stops


@pytest.mark.parametrize("jinja", [LLAMA3_JINJA, PHI3_JINJA])
def test_llama3_and_phi3_templates_match_their_jinja(jinja):
    import jinja2

    messages = MESSAGES[1:]
    expected = jinja2.Template(jinja).render(messages=messages, add_generation_prompt=True, bos_token="")
    assert render_range_template(modelfile.detect_family(jinja).template, messages) == expected


def test_unknown_or_missing_template_is_an_explicit_error():
    with pytest.raises(modelfile.ModelfileError, match="not one we can translate"):
        modelfile.detect_family("{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}{% endfor %}", "my-model")
    with pytest.raises(modelfile.ModelfileError, match="no chat template"):
        modelfile.detect_family(None, "my-model")


# ---------------------------------------------------------------- Ollama API (stand-in: tests/helpers/ollama_create.py)


def test_create_uploads_the_blob_and_sends_a_documented_create_payload(tmp_path, embedded_tokenizer, ollama_stand_in):
    host, seen = ollama_stand_in
    gguf_file = tmp_path / "m-q8_0.gguf"
    gguf_file.write_bytes(b"GGUF" + os.urandom(4096))
    spec = modelfile.spec_from_tokenizer(embedded_tokenizer)
    path = modelfile.write_modelfile(gguf_file, spec)
    lines = list(modelfile.create_in_ollama("studio-test", gguf_file, spec, host=host, modelfile=path))
    digest = "sha256:" + hashlib.sha256(gguf_file.read_bytes()).hexdigest()
    assert seen.errors == []
    assert seen.blobs == {digest: gguf_file.stat().st_size}
    create = seen.creates[0]
    assert create["model"] == "studio-test" and create["files"] == {"m-q8_0.gguf": digest}
    assert create["template"] == spec.template and create["parameters"]["stop"] == ["<|im_start|>", "<|im_end|>"]
    assert create["system"].startswith("You are a helpful AI assistant")
    assert any("success" in line for line in lines)


def test_no_server_gives_the_exact_create_command(tmp_path, embedded_tokenizer):
    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")
    spec = modelfile.spec_from_tokenizer(embedded_tokenizer)
    path = modelfile.write_modelfile(gguf_file, spec)
    with pytest.raises(modelfile.OllamaUnavailable) as caught:
        list(modelfile.create_in_ollama("studio-test", gguf_file, spec, host="http://127.0.0.1:9", modelfile=path))
    assert f"ollama create studio-test -f {path}" in str(caught.value)


def _real_ollama() -> str | None:
    host = os.environ.get("OLLAMA_HOST")
    if not host:
        return None
    import httpx

    url = host if host.startswith("http") else f"http://{host}"
    try:
        httpx.get(f"{url}/api/version", timeout=2).raise_for_status()
    except Exception:
        return None
    return url


@pytest.mark.slow
@pytest.mark.skipif(_real_ollama() is None, reason="no Ollama server reachable at OLLAMA_HOST")
def test_real_ollama_server_creates_the_model(tmp_path, embedded_dir):
    import ollama

    from core.export import gguf

    out = gguf.convert(embedded_dir, tmp_path / "smol-q8_0.gguf", "q8_0")
    spec = modelfile.spec_from_folder(embedded_dir)
    list(modelfile.create_in_ollama("studio-test-smol", out, spec, host=_real_ollama()))
    shown = ollama.Client(host=_real_ollama()).show("studio-test-smol")
    assert "<|im_start|>" in shown.template
