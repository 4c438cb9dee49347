"""A CPU training process's memory, kept to what the run needs.

Without this, a CPU worker's resident memory grows with every new sequence length it meets:
oneDNN keeps a compiled primitive (with its buffers) for each matmul shape, up to 1,024 of them,
and glibc keeps the freed activations of each step in its heap instead of returning them.
Padding-free batches give nearly every step a new length, so the growth has no end.
Measured on the embedded model (LoRA, bf16 autocast, 2-core Xeon AMX, sequences of 300-1,200
tokens, 30 steps): resident 4.5 GB at step 30 (peak 5.2 GB) with the defaults; 1.5 GB (peak 3.8 GB)
with a cache of 64 primitives and the heap trimmed after each step, at the same speed (88 s vs
87 s). A cache of 0 is 3x slower (every matmul compiled again). With a fixed length nothing grows.
Padding each padding-free row to a multiple of PAD_TO tokens (trl's pad_to_multiple_of; packed
attention keeps the pads as one span) lowered the smoke recipe's peak further (2.74 to 2.58 GB) but
is not the default: trl counts the pads as tokens seen, so one process and two would disagree.

`bound()` must run before torch first multiplies (the worker calls it before importing the
trainer); `trim_if_grown()` runs after each optimizer step (core.train.callbacks.TrimHeap). It
trims only when the memory held after a step grew TRIM_SLACK past the most any earlier step held:
trimming after every step handed the next step's activations back to the system each time, and
taking them again cost about 170,000 page faults a step, 4-7% of the smoke recipe's step time
(2-core AMD EPYC, alternated runs: 1.88 s vs 1.76-1.82 s). Growth stays bounded either way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
PRIMITIVE_CACHE = 64  # a few sequence lengths' worth of shapes (forward and backward of each layer kind)
PAD_TO = 64  # tokens: at most 63 padded a step (measured above; not applied by default)
TRIM_SLACK = 256 * 2**20  # bytes the memory held after a step may grow past the previous high before a trim
_held = [0]  # what the first step after the last trim held (0: not seen yet)


def bound() -> None:
    """Cap oneDNN's primitive cache for this process, unless the person set it."""
    os.environ.setdefault(CACHE_ENV, str(PRIMITIVE_CACHE))


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def trim() -> bool:
    """Return the heap's free memory to the system; False where the C library can't."""
    call = _malloc_trim()
    return bool(call and call(0))


def resident_bytes() -> int:
    """This process's resident memory now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def trim_if_grown(slack: int = TRIM_SLACK) -> bool:
    """trim() when the memory held now is more than `slack` above what the first step after the
    last trim held (a larger step, or freed blocks the heap could not reuse); True when it trimmed.
    The step after a trim sets the mark again. Where resident memory can't be read, trims every time."""
    held = resident_bytes()
    if not held:
        return trim()
    if not _held[0]:
        _held[0] = held
        return False
    if held <= _held[0] + slack:
        return False
    _held[0] = 0
    return trim()


def peak_resident_bytes() -> int:
    """This process's peak resident memory since it started its program. Linux's VmHWM, not
    getrusage's ru_maxrss: that one carries the peak of the process that forked this one across
    exec (a worker started by a 2 GB server would report 2 GB before doing anything)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # elsewhere: KiB on Linux, bytes on macOS
