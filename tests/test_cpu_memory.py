"""A CPU training process's memory stays what the run needs (core.train.cpu_memory): oneDNN's
primitive cache is capped unless the person set it, and the heap can be trimmed after each step. The memory it saves is measured by
bench/estimate_accuracy.py (a unit test holds no measurements)."""

from __future__ import annotations

import os

from core.train import cpu_memory
from core.train.callbacks import TrimHeap


def test_the_primitive_cache_is_capped_unless_set(monkeypatch):
    monkeypatch.delenv(cpu_memory.CACHE_ENV, raising=False)
    cpu_memory.bound()
    assert os.environ[cpu_memory.CACHE_ENV] == str(cpu_memory.PRIMITIVE_CACHE)
    monkeypatch.setenv(cpu_memory.CACHE_ENV, "1024")
    cpu_memory.bound()
    assert os.environ[cpu_memory.CACHE_ENV] == "1024"  # the person's own setting wins


def test_trimming_the_heap_works_here():
    assert cpu_memory.trim() is True  # glibc: the call exists and returned memory (or had none to return)
    TrimHeap().on_step_end(None, None, None)


def test_a_child_process_reports_its_own_peak_not_its_parents():
    import subprocess
    import sys

    held = bytearray(800 * 2**20)  # this process: 800 MB resident
    held[::4096] = b"x" * len(held[::4096])
    probe = "from core.train.cpu_memory import peak_resident_bytes as p; print(p())"
    child = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert cpu_memory.peak_resident_bytes() > 800 * 2**20 > 4 * child  # a fresh Python holds far less
    del held
