"""How many CPU threads the chat engine decodes with, measured once when its model loads.

The studio decodes in worker threads (gradio's handlers, the engine's per-model threads), never
in the main thread, and a LoRA adapter adds ~200 tiny matrix products a token, each a fork and join
of torch's thread team; with more OpenMP threads in the process than cores, those joins stop
spinning and sleep. Measured on a 2-core CPU with the embedded model (bench/chat_speed.py and
the profile behind it): in a worker thread, torch's two intra-op threads decoded a base + tuned
pair at 11-12 tokens/s and one thread at 19; in the main thread both gave 18-19. Batched decoding
of 8 rows in a worker thread: 41 tokens/s with two threads, 52-54 with one. Many-core machines
may well go the other way, so the engine does not guess: when its first adapter is attached it times
a short base + tuned pair, the real path, at torch's default thread count and at one thread, in a
worker thread like the ones that will decode, and keeps the faster (the default unless one thread is clearly faster). STUDIO_DECODE_THREADS
fixes the number instead. The choice is process-wide (torch's thread count is), and the engine
puts it back in place before each generation. This module knows nothing about adapters or panes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

ENV = "STUDIO_DECODE_THREADS"
CLEARLY_FASTER = 0.85  # one thread must take at most this share of the default's time to be chosen


def choose(device: str, timed: Callable[[int], float]) -> dict:
    """{"threads": n or None (leave torch alone), "why": str, "seconds": {threads: seconds}}.
    `timed(count)` decodes a few tokens the way the engine will, with `count` threads, in a worker
    thread, and returns the seconds it took."""
    import torch

    if device != "cpu":
        return {"threads": None, "why": f"decoding on {device}", "seconds": {}}
    fixed = os.environ.get(ENV, "").strip()
    if fixed:
        if not fixed.isdigit() or int(fixed) < 1:
            return {"threads": None, "why": f"{ENV}={fixed!r} is not a positive whole number; torch's default kept",
                    "seconds": {}}
        return {"threads": int(fixed), "why": f"set by {ENV}", "seconds": {}}
    default = torch.get_num_threads()
    if default <= 1:
        return {"threads": default, "why": "torch uses one thread here", "seconds": {}}
    seconds: dict[int, float] = {}
    for count in (default, 1, default, 1):  # alternate, keep each count's best: a busy moment hits both
        taken = in_worker(timed, count)
        seconds[count] = min(seconds.get(count, taken), taken)
    torch.set_num_threads(default)
    if seconds[1] <= CLEARLY_FASTER * seconds[default]:
        chosen, why = 1, f"one thread decoded {seconds[default] / seconds[1]:.2f}x faster than {default} in a worker thread"
    else:
        chosen, why = default, f"{default} threads decoded as fast as or faster than one in a worker thread"
    return {"threads": chosen, "why": why, "seconds": {str(k): round(v, 4) for k, v in seconds.items()}}


def apply(choice: dict | None) -> None:
    """Put the chosen thread count in place (torch's count is process-wide; something else may
    have changed it since)."""
    import torch

    if choice and choice.get("threads") and torch.get_num_threads() != choice["threads"]:
        torch.set_num_threads(choice["threads"])


def in_worker(timed: Callable[[int], float], count: int) -> float:
    """`timed(count)` in a fresh worker thread, with torch set to `count` threads there."""
    import torch

    result: list[float] = []

    def work():
        torch.set_num_threads(count)
        result.append(timed(count))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join()
    return result[0] if result else float("inf")
