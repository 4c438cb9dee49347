"""Modelfile: an Ollama Modelfile derived from the model's own chat template, and `ollama create`.

The Jinja chat template a tokenizer carries is recognised by the control tokens it uses
(ChatML, Llama 3, Mistral [INST], Gemma, Phi-3); each family gets Ollama's Go TEMPLATE,
its stop tokens, and the default system prompt the Jinja template injects when there is
none. A template we do not recognise is an error: a wrong TEMPLATE makes a model babble, so
we never guess. Creation goes through the official `ollama` client: `create_blob` for the
GGUF (its sha256 digest), then `create(model, files=..., template=..., parameters=...)`,
streaming progress. This module knows nothing about runs, merging or conversion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.chat_template import render
from core.clients import ollama_client, ollama_host
from core.errors import StudioError

# Ollama Go templates. Ollama puts the Modelfile's SYSTEM in front of .Messages when the chat
# has no system message, so ranging over .Messages covers the system prompt too.
CHATML = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
          '{{ end }}<|im_start|>assistant\n')
LLAMA3 = ('{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>'
          '{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n')
PHI3 = ('{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n'
        '{{ end }}<|assistant|>\n')
MISTRAL = ('{{- range $index, $_ := .Messages }}'
           '{{- if eq .Role "user" }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}\n\n{{ end }}'
           '{{ .Content }}[/INST]'
           '{{- else if eq .Role "assistant" }} {{ .Content }}</s>'
           '{{- end }}{{- end }}')
GEMMA = ('{{- range $i, $_ := .Messages }}'
         '{{- if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n'
         '{{- else }}<start_of_turn>user\n{{ .Content }}<end_of_turn>\n'
         '{{- end }}{{- end }}<start_of_turn>model\n')


@dataclass(frozen=True)
class ChatFamily:
    name: str
    markers: tuple[str, ...]  # all must appear in the Jinja template
    template: str
    stops: tuple[str, ...]


FAMILIES = (
    ChatFamily("llama3", ("<|start_header_id|>", "<|eot_id|>"), LLAMA3, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    ChatFamily("chatml", ("<|im_start|>", "<|im_end|>"), CHATML, ("<|im_start|>", "<|im_end|>")),
    ChatFamily("gemma", ("<start_of_turn>", "<end_of_turn>"), GEMMA, ("<start_of_turn>", "<end_of_turn>")),
    ChatFamily("phi3", ("<|user|>", "<|end|>", "<|assistant|>"), PHI3, ("<|end|>", "<|user|>", "<|assistant|>", "<|endoftext|>")),
    ChatFamily("mistral", ("[INST]", "[/INST]"), MISTRAL, ("[INST]", "[/INST]", "</s>")),
)


class ModelfileError(StudioError, ValueError):
    """The chat template is missing or of a family we cannot translate faithfully."""


class OllamaUnavailable(StudioError, RuntimeError):
    """No Ollama server answered; the message carries the `ollama create` command to run later."""


@dataclass
class ModelfileSpec:
    family: str
    template: str
    stops: list[str]
    system: str | None
    parameters: dict = field(default_factory=dict)

    def ollama_parameters(self) -> dict:
        return {"stop": list(self.stops), **self.parameters}


def detect_family(chat_template: str | None, where: str = "the model") -> ChatFamily:
    if not chat_template:
        raise ModelfileError(f"{where} has no chat template (no chat_template.jinja and none in tokenizer_config.json); "
                             "Ollama needs one. Use an instruct/chat model or set model.chat_template in the recipe.")
    for family in FAMILIES:
        if all(marker in chat_template for marker in family.markers):
            return family
    known = ", ".join(f.name for f in FAMILIES)
    raise ModelfileError(f"{where}: its chat template is not one we can translate to an Ollama TEMPLATE "
                         f"(known families: {known}). Write the Modelfile TEMPLATE by hand rather than risk a wrong one; "
                         f"the template starts: {chat_template[:120]!r}")


def default_system(render: Callable[[list[dict]], str], family: ChatFamily) -> str | None:
    """The system prompt the Jinja template adds on its own: render a chat with only a user
    turn and read what lands in a system turn before it."""
    sentinel = "STUDIO-SENTINEL-7f3a"
    text = render([{"role": "user", "content": sentinel}])
    before = text.split(sentinel)[0]
    patterns = {
        "chatml": r"<\|im_start\|>system\n(.*?)<\|im_end\|>",
        "llama3": r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>",
        "phi3": r"<\|system\|>\n(.*?)<\|end\|>",
    }
    pattern = patterns.get(family.name)
    match = re.search(pattern, before, re.S) if pattern else None
    return match.group(1).strip() if match and match.group(1).strip() else None


def spec_from_tokenizer(tokenizer, *, system: str | None = None, where: str = "the model") -> ModelfileSpec:
    """TEMPLATE, stops and system prompt for a transformers tokenizer's chat template."""
    family = detect_family(getattr(tokenizer, "chat_template", None), where)

    def prompt(messages: list[dict]) -> str:
        return render(tokenizer, messages, add_generation_prompt=True)

    return ModelfileSpec(family.name, family.template, list(family.stops), system or default_system(prompt, family))


def spec_from_folder(model_dir: Path, *, system: str | None = None) -> ModelfileSpec:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return spec_from_tokenizer(tokenizer, system=system, where=str(model_dir))


def modelfile_text(gguf_name: str, spec: ModelfileSpec) -> str:
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{spec.template}"""']
    lines += [f'PARAMETER stop "{stop}"' for stop in spec.stops]
    lines += [f"PARAMETER {key} {value}" for key, value in spec.parameters.items()]
    if spec.system:
        lines.append(f'SYSTEM """{spec.system}"""')
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_file: Path, spec: ModelfileSpec) -> Path:
    """Write `Modelfile` beside the GGUF (FROM is relative, so the pair can be moved together)."""
    path = Path(gguf_file).parent / "Modelfile"
    path.write_text(modelfile_text(Path(gguf_file).name, spec), encoding="utf-8")
    return path


def create_command(name: str, modelfile: Path) -> str:
    return f"ollama create {name} -f {modelfile}"


def create_in_ollama(name: str, gguf_file: Path, spec: ModelfileSpec, *, host: str | None = None,
                     quantize: str | None = None, modelfile: Path | None = None) -> Iterator[str]:
    """Upload the GGUF as a blob and create `name`; yields progress lines. Raises
    OllamaUnavailable (with the command to run later) when no server answers."""
    import httpx
    import ollama

    host = ollama_host(host)
    client = ollama_client(host, use="create")
    later = create_command(name, modelfile or Path(gguf_file).parent / "Modelfile")
    try:
        yield f"uploading {Path(gguf_file).name} to {host} as a blob"
        digest = client.create_blob(gguf_file)
        yield f"blob {digest}"
        stream = client.create(model=name, from_=None, files={Path(gguf_file).name: digest}, template=spec.template,
                               parameters=spec.ollama_parameters(), system=spec.system, quantize=quantize, stream=True)
        for update in stream:
            done = f" {update.completed}/{update.total}" if getattr(update, "total", None) else ""
            yield f"ollama: {update.status}{done}"
    except (ConnectionError, httpx.ConnectError, httpx.TimeoutException) as error:
        raise OllamaUnavailable(f"No Ollama server answered at {host} ({type(error).__name__}). Start Ollama "
                                f"(`ollama serve`) or set the server address, or create the model yourself with: {later}") from None
    except ollama.ResponseError as error:
        raise OllamaUnavailable(f"The Ollama server at {host} refused to create '{name}': {error.error} "
                                f"(HTTP {error.status_code}). You can retry with: {later}") from None
