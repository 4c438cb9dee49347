"""Same-quantization A/B: base and tuned both as GGUF at one quantization, answered by llama.cpp.

Comparing a q4 base with a q8 tune measures the quantization too; here the base model and the
merged tuned model are converted with the same GGUF type (core.export.gguf) and both answer the
prompt set through llama-cpp-python's chat path (the chat template stored in each file), greedy,
with the same token budget. The rows go into the same report as the transformers A/B
(core.eval.guard.finish). It needs the optional `llama` extra; without it the message says how
to install it. This module knows nothing about gradio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from core import models
from core.chat.engine import BASE, TUNED, PaneState
from core.eval import guard
from core.eval.ab import run_with
from core.eval.metrics import load_patterns
from core.export import gguf
from core.export.pipeline import export_dir, merge
from core.export.source import resolve_source


def require_llama_cpp() -> None:
    if not gguf.llama_cpp_available():
        raise gguf.GGUFError("Same-quantization A/B runs both GGUF files in llama.cpp, which is not installed here: "
                             f"{gguf.LLAMA_EXTRA_HINT}. Without --gguf, `studio eval` compares the weights in transformers.")


def llama_answerer(gguf_file: Path, max_new_tokens: int, system: str = "") -> Callable:
    """prompt -> a PaneState with the answer, its token count and timing, from llama.cpp."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=2048, verbose=False, seed=0)

    def answer(prompt) -> PaneState:
        messages = ([{"role": "system", "content": system}] if system else []) + prompt.messages
        state = PaneState(started=time.perf_counter())
        try:
            completion = llm.create_chat_completion(messages=messages, temperature=0.0, top_k=1, max_tokens=max_new_tokens)
            state.text = completion["choices"][0]["message"]["content"] or ""
            used = completion.get("usage", {}).get("completion_tokens", 0)
            # llama.cpp does not count the end-of-turn token; an answer that ended on its own is under the budget
            if completion["choices"][0].get("finish_reason") != "length":
                used = min(used, max_new_tokens - 1)
            state.token_ids = list(range(used))
        except (RuntimeError, ValueError) as error:
            state.error = f"{type(error).__name__}: {error}"
        state.ended_at = time.perf_counter()
        return state

    return answer


def evaluate_gguf(path: str | Path, prompts_file: str | Path, gguf_type: str, *, max_new_tokens: int = 256,
                  system: str = "", documents=None, judge: str | None = None, judge_host: str | None = None,
                  out: str | Path | None = None, say: Callable[[str], None] = print) -> tuple[dict, list[Path]]:
    require_llama_cpp()
    problem = gguf.type_availability(gguf_type)
    if problem:
        raise gguf.GGUFError(problem)
    source = resolve_source(path)
    target = guard.resolve_target(source.artifact, source.base_name)
    prompts, bad, retrieval = guard.load_prompts(prompts_file, documents)
    if not prompts:
        raise ValueError(f"{prompts_file}: no usable prompts")
    folder = export_dir(source) / f"quant-ab-{gguf_type.lower()}"
    tuned_dir = merge(source, folder / "merged", say) if source.kind == "adapter" else source.artifact
    files = {BASE: gguf.convert(models.resolve(target.base_model).path, folder / f"base-{gguf_type}.gguf", gguf_type, say),
             TUNED: gguf.convert(tuned_dir, folder / f"tuned-{gguf_type}.gguf", gguf_type, say)}
    answerers = {side: llama_answerer(file, max_new_tokens, system) for side, file in files.items()}
    rows = []
    for progress in run_with(answerers, prompts, max_new_tokens, load_patterns()):
        rows.append(progress.row)
        say(f"[{progress.done}/{progress.total}] {progress.side} ({gguf_type}): {progress.row['prompt_id']}")
    settings = {"max_new_tokens": max_new_tokens, "temperature": 0.0, "seed": 0, "system_prompt": system,
                "base_model": target.base_model, "tuned_path": str(target.tuned), "gguf_type": gguf_type,
                "runtime": "llama.cpp", "skipped_lines": len(bad)}
    return guard.finish(rows, prompts, target=target, prompt_set=Path(prompts_file).name, settings=settings,
                        retrieval=retrieval, judge=judge, judge_host=judge_host, out=out, say=say)
