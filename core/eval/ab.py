"""A/B: every prompt of a set through every side (the base, and tuned weights), scored.

The same prompts, sampling settings and seed for every side; one side at a time, so latencies
compare like for like and a full-model checkpoint is in memory only while it answers. Answers
come from `ChatEngine.generate` (its public API; how it decodes is its own business) or, for
same-quantization A/B, from any `answer(prompt) -> reply` callable (core.export.quant_ab runs
GGUF files through llama.cpp that way). This module knows nothing about gradio or reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput
from core.train.run_dir import model_artifacts
from core.chat.engine import BASE, TUNED, ChatEngine, Sampling
from core.eval.metrics import PatternSet, load_patterns, score
from core.eval.prompts import Prompt


@dataclass
class Progress:
    side: str
    done: int  # results finished so far, all sides together
    total: int
    row: dict


def run_prompt_set(engine: ChatEngine, prompts: list[Prompt], sampling: Sampling, sides: dict[str, str | None],
                   patterns: PatternSet | None = None) -> Iterator[Progress]:
    """`sides` maps a side name to the tuned path it needs (None for the base); results are
    labelled by side name."""
    patterns = patterns or load_patterns()
    total, done = len(prompts) * len(sides), 0
    for label, path in sides.items():
        side = engine.attach(path) if path is not None else BASE
        for prompt in prompts:
            reply = engine.generate(side, prompt.messages, sampling)
            done += 1
            yield Progress(label, done, total, score(prompt, label, reply, patterns, sampling.max_new_tokens))
        if path is not None and engine.sources[side].kind == "model":
            engine.detach(side)


def run_with(answerers: dict[str, Callable[[Prompt], object]], prompts: list[Prompt], max_new_tokens: int,
             patterns: PatternSet | None = None) -> Iterator[Progress]:
    """The same loop for sides that are plain callables (a GGUF in llama.cpp, a stand-in)."""
    patterns = patterns or load_patterns()
    total, done = len(prompts) * len(answerers), 0
    for label, answer in answerers.items():
        for prompt in prompts:
            done += 1
            yield Progress(label, done, total, score(prompt, label, answer(prompt), patterns, max_new_tokens))


def sides_for(tuned: str | Path | None, *, all_checkpoints: bool = False,
              compare: list[str] | tuple[str, ...] = ()) -> dict[str, str | None]:
    """The sides of an A/B run: the base, plus the tuned path, or with `all_checkpoints` and a
    run folder every result of that run (best, final, each checkpoint) to pick the best one.
    `compare` adds more tuned paths, each labelled by what it holds (run/best, checkpoint-40...)."""
    from core.chat.tuned import tuned_source

    sides = _first_sides(tuned, all_checkpoints)
    for path in compare:
        if path and path not in sides.values():
            sides[tuned_source(path).label] = path
    return sides


def _first_sides(tuned: str | Path | None, all_checkpoints: bool) -> dict[str, str | None]:
    if not tuned:
        return {BASE: None}
    folder = Path(tuned).expanduser()
    if all_checkpoints:
        artifacts = model_artifacts(folder)
        if not artifacts:
            raise BadInput(f"{folder}: no best/, adapter/, model/ or checkpoints/checkpoint-N to compare "
                           "(--all-checkpoints needs a run folder)")
        return {BASE: None, **{label: str(path) for label, path in artifacts}}
    return {BASE: None, TUNED: str(folder)}
