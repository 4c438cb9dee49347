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


def test_the_heap_is_trimmed_only_when_a_step_left_more_than_the_slack(monkeypatch):
    held, trims = [1000], []
    monkeypatch.setattr(cpu_memory, "resident_bytes", lambda: held[0])
    monkeypatch.setattr(cpu_memory, "trim", lambda: trims.append(held[0]) or True)
    monkeypatch.setattr(cpu_memory, "_held", [0])
    steps = [1000, 1050, 990, 1101, 1000, 1040, 1200]  # slack 100: the first step after a trim sets the mark
    done = [cpu_memory.trim_if_grown(slack=100) for held[0] in steps]
    assert done == [False, False, False, True, False, False, True] and trims == [1101, 1200]
    monkeypatch.setattr(cpu_memory, "resident_bytes", lambda: 0)  # no /proc: every step trims, as before
    assert cpu_memory.trim_if_grown() and cpu_memory.trim_if_grown()


def test_resident_memory_is_read_here():
    assert cpu_memory.resident_bytes() > 10 * 2**20


def test_a_child_process_reports_its_own_peak_not_its_parents():
    import subprocess
    import sys

    held = bytearray(800 * 2**20)  # this process: 800 MB resident
    held[::4096] = b"x" * len(held[::4096])
    probe = "from core.train.cpu_memory import peak_resident_bytes as p; print(p())"
    child = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert cpu_memory.peak_resident_bytes() > 800 * 2**20 > 4 * child  # a fresh Python holds far less
    del held
