"""A/B: every prompt of a set through every side (the base, and tuned weights), scored.

The same prompts, sampling settings and seed for every side. Sides on the base model answer in
the same left-padded batches (greedy results identical to one at a time); a full-model checkpoint
is in memory only while it answers. Answers come from `ChatEngine.generate_batch` or, for
same-quantization A/B, from any `answer(prompt) -> reply` callable (core.export.quant_ab runs
GGUF files through llama.cpp that way). This module knows nothing about gradio or reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.chat.batching import plan_batches
from core.chat.engine import BASE, TUNED, ChatEngine, Sampling
from core.chat.tuned import tuned_source
from core.errors import BadInput
from core.eval.metrics import PatternSet, load_patterns, score
from core.eval.prompts import Prompt
from core.train.run_dir import model_artifacts


@dataclass
class Progress:
    side: str
    done: int  # results finished so far, all sides together
    total: int
    row: dict


def run_prompt_set(engine: ChatEngine, prompts: list[Prompt], sampling: Sampling, sides: dict[str, str | None],
                   patterns: PatternSet | None = None) -> Iterator[Progress]:
    """Every prompt through every side. The sides that share the base model (the base and
    adapters) answer in the same left-padded batches, each batch holding every side's answers to
    a few prompts of similar length, so latencies compare like for like; a full-model side answers
    in batches of its own while it alone is in memory. `sides` maps a side name to the tuned path
    it needs (None for the base); results are labelled by side name."""
    patterns = patterns or load_patterns()
    total, done = len(prompts) * len(sides), 0
    shared, full_models = {}, {}
    for label, path in sides.items():
        if path is None or tuned_source(path).kind == "adapter":
            shared[label] = engine.attach(path) if path is not None else BASE
        else:
            full_models[label] = path
    passes = [shared] if shared else []
    for labels in passes + [{label: path} for label, path in full_models.items()]:
        if labels is not shared:
            labels = {label: engine.attach(path) for label, path in labels.items()}
        for label, index, reply in _answers(engine, prompts, sampling, labels):
            done += 1
            yield Progress(label, done, total, score(prompts[index], label, reply, patterns, sampling.max_new_tokens))
        if labels is not shared:
            for side in labels.values():
                engine.detach(side)


def _answers(engine: ChatEngine, prompts: list[Prompt], sampling: Sampling, labels: dict[str, str]):
    """(label, prompt index, reply) for every prompt through the engine sides named in `labels`."""
    lengths = [len(engine.prompt_ids(prompt.messages, sampling)) for prompt in prompts]
    batches = plan_batches(lengths, rows_per_item=len(labels), max_new_tokens=sampling.max_new_tokens,
                           **engine.batch_budget())
    for batch in batches:
        rows = [(side, prompts[index].messages) for side in labels.values() for index in batch]
        replies = iter(engine.generate_batch(rows, sampling))
        for label in labels:
            for index in batch:
                yield label, index, next(replies)


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
