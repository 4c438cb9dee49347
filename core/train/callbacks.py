"""Callbacks: what the worker tells the run folder while transformers' Trainer runs.

`RunCallback` appends every log and eval event to metrics.jsonl (step, epoch, split, loss,
lr, grad_norm, tokens_per_s, elapsed, eta, peak memory, and whatever else the trainer logs,
e.g. DPO's rewards/*, GRPO's reward, rewards/<name>/mean|std, kl, completions/*, clip_ratio/*),
writes GRPO's scored sample completions to completions.jsonl at each logging step, keeps
status.json's step and total current, copies the recipe into each checkpoint, keeps best/ at
the lowest eval loss, and turns a stop request (a file in the run folder) into "save a
checkpoint now and end". It knows nothing about how the run was
started or who reads the files.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

from core.train import cpu_memory
from core.train.distributed import agree
from core.train.run_dir import (
    BEST,
    BEST_INFO,
    COMPLETIONS_FILE,
    METRICS_FILE,
    RECIPE_FILE,
    RESUME_SPLIT,
    STOP_FILE,
    append_record,
)
from core.workspace import atomic_path, write_atomic


def peak_memory_mb() -> float:
    """Peak GPU memory when CUDA is in use, else the process's peak resident memory."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return cpu_memory.peak_resident_bytes() / 2**20


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class TrimHeap(TrainerCallback):
    """CPU runs: after an optimizer step (its activations are freed by then) that left the process
    holding more than a step needs, hand the heap's free memory back (core.train.cpu_memory)."""

    def on_step_end(self, args, state, control, **kwargs):
        cpu_memory.trim_if_grown()


class RunCallback(TrainerCallback):
    """Writes metrics.jsonl and keeps status.json current; honours stop requests."""

    def __init__(self, run_dir: Path, *, recipe_yaml: str, update_status, tokenizer=None, save_best: bool = False,
                 completion_log=None):
        self.run_dir = Path(run_dir)
        self.recipe_yaml = recipe_yaml
        self.update_status = update_status  # callable(**fields) that merges into status.json
        self.tokenizer = tokenizer
        self.save_best = save_best
        self.completion_log = completion_log  # GRPO: scored completions to write beside the metrics
        self.best_loss = self._previous_best()  # a resumed run must not replace best/ with a worse one
        self.stop_requested = False
        self._start = time.monotonic()
        self._start_step = 0
        self._last_time = self._start
        self._last_tokens = 0

    # ---------------------------------------------------------------- events

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last_time = time.monotonic()
        self._start_step = state.global_step  # > 0 when resuming; ETA counts only this session's pace
        self._last_tokens = state.num_input_tokens_seen
        if state.global_step > 0 and state.is_world_process_zero:
            # A resume: what a killed session logged after this checkpoint no longer counts (run_dir.one_per_step).
            self._append({"step": state.global_step, "split": RESUME_SPLIT})
        self.update_status(state="running", step=state.global_step, total_steps=state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self.update_status(step=state.global_step, total_steps=state.max_steps, epoch=state.epoch)
        if agree(self.stop_requested or (self.run_dir / STOP_FILE).exists()):
            # Save first, then end: the trainer saves at this step and leaves the loop.
            self.stop_requested = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:  # under accelerate launch, one writer
            return
        now = time.monotonic()
        split = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        if "train_loss" in logs and "loss" not in logs:
            split = "summary"  # the trainer's end-of-training averages, not a point on the curve
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "split": split}
        for key, value in logs.items():
            name = key[len("eval_"):] if split == "eval" and key.startswith("eval_") else key
            if name == "learning_rate":
                name = "lr"
            if isinstance(value, (int, float)):
                record[name] = _finite(value)
        record.update(self._pace(state, now, split))
        record["peak_mem_mb"] = round(peak_memory_mb(), 1)
        self._append(record)
        if self.completion_log is not None and split == "train":
            self._append_completions(state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        better = loss is not None and (self.best_loss is None or loss < self.best_loss)
        if self.save_best and state.is_world_process_zero and better:
            self.best_loss = loss
            self._save_best(kwargs.get("model"), state.global_step, loss)

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir() and state.is_world_process_zero:
            write_atomic(checkpoint / RECIPE_FILE, self.recipe_yaml)

    # ---------------------------------------------------------------- helpers

    def _previous_best(self) -> float | None:
        try:
            return json.loads((self.run_dir / BEST / BEST_INFO).read_text())["eval_loss"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def _pace(self, state, now: float, split: str) -> dict:
        elapsed = now - self._start
        done = state.global_step - self._start_step
        remaining = max(0, state.max_steps - state.global_step)
        pace = {"elapsed": round(elapsed, 2), "eta": round(elapsed / done * remaining, 1) if done > 0 else None}
        if split == "train":
            tokens = state.num_input_tokens_seen - self._last_tokens
            span = now - self._last_time
            pace["tokens_per_s"] = round(tokens / span, 1) if span > 0 and tokens > 0 else None
            pace["tokens_seen"] = state.num_input_tokens_seen
            self._last_time, self._last_tokens = now, state.num_input_tokens_seen
        return pace

    def _append(self, record: dict, name: str = METRICS_FILE) -> None:
        append_record(self.run_dir, name, record)

    def _append_completions(self, step: int) -> None:
        for row in self.completion_log.drain():
            self._append({"step": step, **row}, COMPLETIONS_FILE)

    def _save_best(self, model, step: int, loss: float) -> None:
        if model is None:
            return
        with atomic_path(self.run_dir / BEST) as partial:
            model.save_pretrained(partial)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(partial)
            (partial / RECIPE_FILE).write_text(self.recipe_yaml, encoding="utf-8")
            (partial / BEST_INFO).write_text(json.dumps({"step": step, "eval_loss": loss}) + "\n")
