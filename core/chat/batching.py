"""Batched decoding for the chat engine: several answers in one forward pass per token.

Rows (one answer each) are left-padded into one batch, so every row's next token sits in the
last column; transformers derives each row's positions from the attention mask, so a padded
row decodes like the same row alone. `RowStreamer` turns generate's per-step token column into
per-row events (tokens, printable text, done at the row's own end-of-turn token), and
`RowSampler` gives every row its own seeded generator, so a row samples exactly as it would
alone. `plan_batches` picks batch sizes from the prompt lengths and the memory the key/value
cache needs. This module knows nothing about sides, adapters or prompt sets.
"""

from __future__ import annotations

import os
import queue
import time

# Decoding a 135M model on 2 CPU cores: a batch of 2 gave 1.37x the tokens/s of one row and a
# batch of 8 gave 4.2x (issue #15); beyond 16 rows the gain flattens while the first token waits
# longer. On a GPU the cache budget is the limit long before this cap.
MAX_ROWS_CPU = 16
MAX_ROWS_GPU = 64
MEMORY_SHARE = 0.25  # of the memory available now, for the batch's key/value cache


def left_pad(rows: list[list[int]], pad_id: int):
    """Token id lists -> (input_ids, attention_mask), padded on the left.
    >>> ids, mask = left_pad([[5, 6, 7], [8]], 0)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[index, width - len(row):] = 1
    return ids, mask


def kv_bytes_per_token(config, element_size: int = 4) -> int:
    """Key and value cache bytes one token of one row holds, over all layers."""
    config = getattr(config, "text_config", None) or config
    heads = getattr(config, "num_attention_heads", 1)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element_size


def available_memory_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2 << 30


def plan_batches(lengths: list[int], *, rows_per_item: int, max_new_tokens: int, bytes_per_token: int,
                 budget_bytes: int, max_rows: int = MAX_ROWS_CPU) -> list[list[int]]:
    """Group item indices into batches: longest first (so a batch's rows have similar lengths and
    little padding), each batch's cache (rows x (longest prompt + new tokens)) within the budget,
    at most `max_rows` rows. Every item keeps its `rows_per_item` rows (the sides) in one batch.
    >>> plan_batches([5, 50, 6, 49], rows_per_item=2, max_new_tokens=10, bytes_per_token=1, budget_bytes=10**6, max_rows=4)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current is not None:
            rows = (len(current) + 1) * rows_per_item
            longest = max(lengths[current[0]], lengths[index]) + max_new_tokens
            if rows <= max_rows and rows * longest * bytes_per_token <= budget_bytes:
                current.append(index)
                continue
        batches.append([index])
    return batches


class RowSampler:
    """Temperature and top-p with transformers' own warpers, then a draw from each row's own
    generator (all seeded alike); the drawn token gets all the mass, so greedy decoding emits
    exactly it. Rows in one batch, or sides taking turns, never consume each other's random numbers."""

    def __init__(self, temperature: float, top_p: float, seed: int):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.warpers = [TemperatureLogitsWarper(temperature)]
        if top_p < 1:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.seed, self.generators = int(seed), None

    def __call__(self, input_ids, scores):
        import torch

        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(self.seed) for _ in range(scores.shape[0])]
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probabilities = torch.softmax(scores.float(), dim=-1)
        picked = torch.cat([torch.multinomial(probabilities[row:row + 1], 1, generator=generator)
                            for row, generator in enumerate(self.generators)])
        return torch.full_like(scores, float("-inf")).scatter(1, picked, 0.0)


def _streamer_base():
    from transformers.generation.streamers import BaseStreamer

    return BaseStreamer


class RowStreamer:
    """Receives generate's token columns and puts (key, kind, payload, time) events on a queue for
    each row: "tokens" as generated, "text" once printable, "done" at the row's end-of-turn token
    (or when generation ends). Built through `row_streamer()` so transformers loads lazily."""

    def __init__(self, tokenizer, keys: list, events: queue.Queue, eos_ids: set[int]):
        self.tokenizer, self.keys, self.events, self.eos_ids = tokenizer, list(keys), events, set(eos_ids)
        self.ids: list[list[int]] = [[] for _ in self.keys]
        self.printed = [0] * len(self.keys)
        self.open = [True] * len(self.keys)
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        now = time.perf_counter()
        for row, token in enumerate(value.reshape(-1).tolist()):
            if not self.open[row]:
                continue
            self.ids[row].append(token)
            self.events.put((self.keys[row], "tokens", [token], now))
            self._emit_text(row, now)
            if token in self.eos_ids:
                self.close(row)

    def _emit_text(self, row: int, now: float) -> None:
        text = self.tokenizer.decode(self.ids[row], skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a character: wait for the rest of its bytes
            return
        if len(text) > self.printed[row]:
            self.events.put((self.keys[row], "text", text[self.printed[row]:], now))
            self.printed[row] = len(text)

    def close(self, row: int, error: str | None = None) -> None:
        if not self.open[row]:
            return
        self.open[row] = False
        now = time.perf_counter()
        if error:
            self.events.put((self.keys[row], "error", error, now))
        self.events.put((self.keys[row], "done", None, now))

    def end(self):
        """Generation ended (length limit or stop): every row still open is done."""
        for row in range(len(self.keys)):
            self.close(row)


def row_streamer(tokenizer, keys: list, events: queue.Queue, eos_ids: set[int]) -> RowStreamer:
    streamer_class = type("PaneRowStreamer", (RowStreamer, _streamer_base()), {})
    return streamer_class(tokenizer, keys, events, eos_ids)
