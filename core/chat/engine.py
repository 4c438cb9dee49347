"""Chat: one base model in memory answering as itself and through tuned weights, streamed.

A `ChatEngine` holds one copy of a base model. Tuned sides are attached to it: a LoRA adapter
is loaded into the same weights (peft); a merged or full model folder is loaded as a second
model (that one really costs two). The sides that share the base model decode as one batch,
one forward pass per token for all of them: each row of the batch names its adapter (peft's
mixed-adapter batches, the base row as "__base__"; for the base and one plain LoRA adapter, a
per-row adapter scale, core.chat.adapter_rows), so a base + tuned pair costs about what one answer
costs. Sides on another model decode in their own thread; a lock around every forward
pass lets those take turns token by token and puts the right adapter state in place for each.

Sampling is shared by all sides (system prompt, temperature, top-p, max new tokens, seed);
temperature 0 is greedy. Each row draws from its own seeded generator, so a seed reproduces
an answer alone or in a batch. This module knows nothing about gradio, prompt sets or metrics
(core.eval.metrics), nor how runs are laid out (core.train.runs).
"""

from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from core import decode_linear, models
from core.chat import adapter_rows, batching, cpu_threads
from core.chat.tuned import AdapterMismatch, TunedSource, check_adapter_base, tuned_source
from core.chat_template import render, saved_template
from core.dataset.tags import ThinkSplit, split_think, think_title  # noqa: F401  (re-exported for chat clients)
from core.errors import BadInput

BASE = "base"
TUNED = "tuned"
_pane = threading.local()  # which adapter(s) the generating thread wants; read inside the forward hook
MIXED_BASE = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch


@dataclass
class Sampling:
    system_prompt: str = ""
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0

    def check(self) -> Sampling:
        if self.temperature < 0:
            raise BadInput(f"temperature must be 0 (greedy) or more, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise BadInput(f"top-p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise BadInput(f"max new tokens must be at least 1, got {self.max_new_tokens}")
        return self


@dataclass
class PaneState:
    """One side's answer so far, with its timing."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)  # generated ids, end-of-turn token included
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    @property
    def tokens(self) -> int:
        return len(self.token_ids)

    @property
    def done(self) -> bool:
        return self.ended_at is not None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def seconds(self) -> float:
        return (self.ended_at or time.perf_counter()) - self.started

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


# ---- the engine ----------------------------------------------------------------------------

class _TurnLock:
    """A lock served first come, first served: a side that just ran a forward pass queues behind
    the one already waiting, so sides (and visitors) alternate instead of one starving another."""

    def __init__(self):
        self._changed = threading.Condition()
        self._waiting: collections.deque = collections.deque()
        self._held = False

    def acquire(self) -> None:
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            self._changed.wait_for(lambda: not self._held and self._waiting[0] is ticket)
            self._waiting.popleft()
            self._held = True

    def release(self) -> None:
        with self._changed:
            self._held = False
            self._changed.notify_all()

    def __enter__(self):
        self.acquire()

    def __exit__(self, *exc):
        self.release()


class ChatEngine:
    """One base model, any number of attached tuned sides, streamed generation for several at once."""

    def __init__(self, base_name: str):
        self.base_name = base_name
        self.tokenizer = models.load_tokenizer(base_name)
        self.base = models.load_model(base_name).eval()
        decode_linear.use_for(self.base)  # a few rows times each weight, at the memory's speed on a CPU
        self.threads: dict | None = None  # decode threads, measured at the first adapter (core.chat.cpu_threads)
        self.peft = None  # the PeftModel wrapping self.base once an adapter is attached
        self.sides: dict[str, tuple[object, str | None]] = {BASE: (self.base, None)}
        self.sources: dict[str, TunedSource] = {}
        self.templates: dict[str, str | None] = {}  # side -> the chat template its weights were trained with
        self._lock = _TurnLock()
        self._state = None  # the adapter-state context the last forward pass entered (see _before_forward)
        self._state_key = None
        self._row_scales: dict = {}  # batch layout -> its adapter_rows.RowScale (None: peft's mixed batches)
        self._adapters_loaded = 0
        self._hook(self.base)

    def _hook(self, model) -> None:
        model.register_forward_pre_hook(functools.partial(self._before_forward, model))
        model.register_forward_hook(self._after_forward, always_call=True)

    def _before_forward(self, model, module, args):
        """Put the adapter state this thread's rows need in place. The state stays between forward
        passes and changes only when the next pass wants another one: peft's disable_adapter()
        walks and re-flags every module (about 40 ms a token on a 135M model on a CPU), so
        entering it on every token cost more than the forward pass's own matmuls."""
        self._lock.acquire()
        if model is not self.base or self.peft is None:
            return
        wanted = getattr(_pane, "adapter", self.peft.active_adapter)
        key = tuple(wanted) if isinstance(wanted, list) else (wanted,)
        if key == self._state_key:
            return
        self._settle()
        context = None
        if isinstance(wanted, list):  # one adapter per row
            context = self._row_context(wanted)
        elif wanted is None:
            context = self.peft.disable_adapter()
        elif self.peft.active_adapter != wanted:
            self.peft.set_adapter(wanted, inference_mode=True)
        if context is not None:
            context.__enter__()
        self._state, self._state_key = context, key

    def _settle(self) -> None:
        """Leave the adapter state of the last forward pass (with the lock held): before adapters
        are loaded or dropped, and before a pass that wants another state."""
        state, self._state, self._state_key = self._state, None, None
        if state is not None:
            state.__exit__(None, None, None)

    def _row_context(self, adapters: list[str | None]):
        """Base + one plain LoRA adapter: per-row scales (core.chat.adapter_rows); else peft's mixed batches."""
        key = tuple(adapters)
        if key not in self._row_scales:
            self._row_scales = {key: adapter_rows.row_scale(self.peft, adapters)}  # one layout at a time: the batch's
        scaled = self._row_scales[key]
        if scaled is not None:
            return scaled
        return self.peft.base_model._enable_peft_forward_hooks(adapter_names=[a or MIXED_BASE for a in adapters])

    def _after_forward(self, module, args, output):
        self._lock.release()

    def attach(self, path: str | Path, side: str | None = None, *, label: str | None = None) -> str:
        """Make a side answer with the tuned weights at `path` (adapter, model or run folder).
        The side is named after the resolved folder unless given, so visitors picking different
        adapters never overwrite each other's side. Returns the side's name."""
        source = tuned_source(path, label=label)
        side = side or str(source.path)
        if self.sources.get(side) == source:
            return side
        if source.kind == "adapter":
            check_adapter_base(source.path, self.base_name)
            with self._lock:  # never change the weights under a running forward pass
                self._adapters_loaded += 1
                name = f"adapter_{self._adapters_loaded}"
                self._settle()
                self._load_adapter(source.path, name)
                self._row_scales = {}
                self._drop(side)
                self.sides[side] = (self.base, name)
        else:
            with self._lock:  # at most one extra full model: drop the others before loading
                for other in [name for name, held in self.sources.items() if held.kind == "model"] + [side]:
                    self._drop(other)
            extra = models.load_model(str(source.path)).eval()
            decode_linear.use_for(extra)
            self._hook(extra)
            with self._lock:
                self.sides[side] = (extra, None)
        self.sources[side] = source
        # A run trained with its own template saved it with the weights; the base side keeps the stock one.
        self.templates[side] = saved_template(source.path)
        if self.threads is None and source.kind == "adapter":
            self._measure_threads(side)
        return side

    def _measure_threads(self, side: str) -> None:
        """Time a short base + tuned pair at torch's default thread count and at one thread."""
        rows = [(BASE, [{"role": "user", "content": "Hello"}]), (side, [{"role": "user", "content": "Hello"}])]
        settings = Sampling(max_new_tokens=6)

        def timed(count: int) -> float:
            self.threads = {"threads": count}
            started = time.perf_counter()
            self.generate_batch(rows, settings)
            return time.perf_counter() - started

        self.threads = {"threads": None}
        self.generate_batch(rows, settings)  # this thread's own thread team exists too, as a server's threads' do
        self.threads = cpu_threads.choose(self.base.device.type, timed)

    def _load_adapter(self, path: Path, name: str) -> None:
        import warnings

        from peft import PeftModel

        try:
            with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5; not ours to fix
                warnings.filterwarnings("ignore", category=FutureWarning)
                if self.peft is None:
                    self.peft = PeftModel.from_pretrained(self.base, str(path), adapter_name=name, is_trainable=False)
                else:
                    self.peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as error:
            raise AdapterMismatch(f"The adapter {path} does not fit the base model '{self.base_name}': "
                                  f"{str(error).splitlines()[0][:300]}") from error

    def detach(self, side: str) -> None:
        """Forget a tuned side and free what it held (a full model's weights; an adapter's)."""
        with self._lock:
            self._drop(side)

    def _drop(self, side: str) -> None:
        if side == BASE:
            raise BadInput("the base side can't be replaced; load another base model instead")
        self._settle()
        self._row_scales = {}
        old = self.sides.pop(side, None)
        self.sources.pop(side, None)
        self.templates.pop(side, None)
        if old and old[1] is not None and self.peft is not None and len(self.peft.peft_config) > 1:
            self.peft.delete_adapter(old[1])  # peft keeps at least one adapter; the last one stays, unused

    def encode(self, messages: list[dict], sampling: Sampling, side: str = BASE):
        """The prompt for one side, in the chat template its weights were trained with (a tuned
        side's saved template, else the base tokenizer's)."""
        system = [{"role": "system", "content": sampling.system_prompt}] if sampling.system_prompt.strip() else []
        return render(self.tokenizer, system + list(messages), template=self.templates.get(side), add_generation_prompt=True,
                      tokenize=True, return_tensors="pt", return_dict=True)

    def stream(self, conversations: dict[str, list[dict]], sampling: Sampling,
               stop: threading.Event | None = None) -> Iterator[dict[str, PaneState]]:
        """Generate for every side at once; yield a snapshot of all panes after each piece of text.
        Sides sharing the base model decode as one batch; a side on its own model in its own thread."""
        sampling.check()
        unknown = set(conversations) - set(self.sides)
        if unknown:
            raise KeyError(f"no such side: {', '.join(sorted(unknown))} (attached: {', '.join(self.sides)})")
        stop = stop or threading.Event()
        events: queue.Queue = queue.Queue()
        panes = {side: PaneState() for side in conversations}
        groups: dict[int, list[str]] = {}
        for side in conversations:
            groups.setdefault(id(self.sides[side][0]), []).append(side)
        threads = [threading.Thread(target=self._generate, daemon=True,
                                    args=(group, [(side, conversations[side]) for side in group], sampling, events, stop))
                   for group in groups.values()]
        for thread in threads:
            thread.start()
        running = set(conversations)
        try:
            while running:
                side, kind, payload, at = events.get()
                _apply_event(panes[side], kind, payload, at)
                if kind == "done":
                    running.discard(side)
                if kind != "tokens":  # text arrives right after its tokens; one update per piece is enough
                    yield {name: replace(pane, token_ids=list(pane.token_ids)) for name, pane in panes.items()}
        finally:
            stop.set()  # the consumer went away (or finished): let the threads end early
            for thread in threads:
                thread.join(timeout=30)

    def generate(self, side: str, messages: list[dict], sampling: Sampling) -> PaneState:
        """One side's complete answer."""
        final = None
        for final in self.stream({side: messages}, sampling):  # noqa: B007 - the last update holds the answer
            pass
        return final[side]

    def generate_batch(self, rows: list[tuple[str, list[dict]]], sampling: Sampling) -> list[PaneState]:
        """Complete answers for (side, messages) rows, decoded as one left-padded batch per model
        the rows use (the A/B runner puts both sides of several prompts in one batch)."""
        sampling.check()
        for side, _ in rows:
            if side not in self.sides:
                raise KeyError(f"no such side: {side} (attached: {', '.join(self.sides)})")
        panes = [PaneState() for _ in rows]
        by_model: dict[int, list[int]] = {}
        for index, (side, _) in enumerate(rows):
            by_model.setdefault(id(self.sides[side][0]), []).append(index)
        for indices in by_model.values():
            events: queue.Queue = queue.Queue()
            started = time.perf_counter()
            self._generate(indices, [rows[i] for i in indices], sampling, events, threading.Event())
            while not events.empty():
                index, kind, payload, at = events.get()
                panes[index].started = started
                _apply_event(panes[index], kind, payload, at)
        return panes

    def batch_budget(self) -> dict:
        """What `batching.plan_batches` needs to size batches for this engine's base model."""
        return {"bytes_per_token": batching.kv_bytes_per_token(self.base.config, self.base.dtype.itemsize),
                "budget_bytes": int(batching.available_memory_bytes() * batching.MEMORY_SHARE),
                "max_rows": batching.MAX_ROWS_GPU if self.base.device.type == "cuda" else batching.MAX_ROWS_CPU}

    def _generate(self, keys: list, rows: list[tuple[str, list[dict]]], sampling, events, stop) -> None:
        """Decode `rows` (all on one model) as one batch; events are labelled with `keys`."""
        import torch

        cpu_threads.apply(self.threads)
        model = self.sides[rows[0][0]][0]
        adapters = [self.sides[side][1] for side, _ in rows]
        _pane.adapter = adapters[0] if len(set(adapters)) == 1 else adapters
        streamer = batching.row_streamer(self.tokenizer, keys, events, _eos_ids(model, self.tokenizer))
        try:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            ids, mask = batching.left_pad([self.prompt_ids(messages, sampling, side) for side, messages in rows], pad)
            extra = ({"logits_processor": [batching.RowSampler(sampling.temperature, sampling.top_p, sampling.seed)]}
                     if sampling.temperature > 0 else {})
            with torch.inference_mode():
                model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                               max_new_tokens=sampling.max_new_tokens, do_sample=False, streamer=streamer,
                               stopping_criteria=[_StopWhenSet(stop)], pad_token_id=pad, **extra)
        except Exception as error:  # shown in the pane, not lost in a thread
            message = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            for row in range(len(keys)):
                streamer.close(row, error=message)
        finally:
            streamer.end()

    def prompt_ids(self, messages: list[dict], sampling: Sampling, side: str = BASE) -> list[int]:
        return self.encode(messages, sampling, side)["input_ids"][0].tolist()


def _eos_ids(model, tokenizer) -> set[int]:
    wanted = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    wanted = wanted if wanted is not None else tokenizer.eos_token_id
    return set(wanted if isinstance(wanted, (list, tuple)) else [wanted]) - {None}


def _apply_event(pane: PaneState, kind: str, payload, at: float) -> None:
    if kind == "text":
        pane.text += payload
    elif kind == "tokens":
        pane.token_ids.extend(payload)
        pane.first_token_at = pane.first_token_at or at
    elif kind == "error":
        pane.error = payload
    elif kind == "done":
        pane.ended_at = at


class _StopWhenSet:
    """A stopping criterion (plain callable, as generate accepts) that ends generation on request."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


# ---- one engine per process ----------------------------------------------------------------

_ENGINE: ChatEngine | None = None
_ENGINE_LOCK = threading.Lock()


def engine_for(base_name: str) -> ChatEngine:
    """The cached engine for this base; another base replaces it (one base model in memory)."""
    global _ENGINE
    with _ENGINE_LOCK:
        wanted = models.resolve(base_name).path
        if _ENGINE is None or models.resolve(_ENGINE.base_name).path != wanted:
            _ENGINE = None  # let the old weights go before the new ones load
            _ENGINE = ChatEngine(base_name)
        return _ENGINE


def loaded_engine() -> ChatEngine | None:
    return _ENGINE
