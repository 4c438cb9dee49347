"""Shared fixtures: a private workspace per test session, the embedded model, a tiny random model.

No test touches the network: HF_HUB_OFFLINE is set before anything imports huggingface_hub.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Training precision is pinned for reproducible numbers; tests/test_precision.py covers the measured choice.
os.environ.setdefault("STUDIO_CPU_PRECISION", "fp32")
# LoRA layers pinned to the fused pass (core.train.fused_lora) for the same reason; tests/test_fused_lora.py covers the choice.
os.environ.setdefault("STUDIO_FUSED_LORA", "on")
# And the LM head's chunked loss (core.train.head_loss); tests/test_head_loss.py covers the choice.
os.environ.setdefault("STUDIO_FUSED_HEAD", "on")
# Every temporary file of the session (gradio's upload cache, read when gradio is imported; torch's
# and the servers' own) goes to one folder of this session's, TMPDIR for this process and every
# process it starts, removed at the end: tests write nowhere else. pytest's own numbered folders
# stay where they were (PYTEST_DEBUG_TEMPROOT), kept for a look after a failure.
_SESSION_TMP = None
if "STUDIO_TESTS_TMP" not in os.environ:
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    os.environ["STUDIO_TESTS_TMP"] = os.environ["TMPDIR"] = _SESSION_TMP = tempfile.mkdtemp(prefix="studio-tests-")
    tempfile.tempdir = _SESSION_TMP
    os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(_SESSION_TMP, "gradio"))

# `make test` runs the suite in one process per core (pytest-xdist): each gets its share of the
# cores for torch and for every process it starts, so two workers training at once do not fight
# over the same cores (two threads each on 2 cores made a KTO run 4x slower).
IN_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # one of xdist's test processes, not the main one
if IN_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.fixtures import adapter_source, busy_slot, ollama_stand_in  # noqa: E402,F401  (fixtures for every test)
from tests.helpers.server import SHARED_MODELS, studio_processes  # noqa: E402


@pytest.fixture(autouse=True)
def studio_home(tmp_path_factory, monkeypatch):
    """Every test gets a fresh workspace whose models/ points at the shared converted models."""
    home = tmp_path_factory.mktemp("studio_home")
    SHARED_MODELS.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(SHARED_MODELS, target_is_directory=True)
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The converted embedded model folder (converted once per machine)."""
    os.environ["STUDIO_HOME"] = str(SHARED_MODELS.parent / "fixture-home")
    Path(os.environ["STUDIO_HOME"]).mkdir(parents=True, exist_ok=True)
    link = Path(os.environ["STUDIO_HOME"]) / "models"
    SHARED_MODELS.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(SHARED_MODELS, target_is_directory=True)
    from core import models

    return models.embedded_model_dir()


@pytest.fixture(scope="session")
def embedded_tokenizer(embedded_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer random Llama with the embedded model's tokenizer and chat template: trains in
    a fraction of a second per step, so tests can check what changed without waiting."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def tiny_model_is_a_model_folder(request, monkeypatch):
    """The tiny random model lives in a temporary folder outside the workspace: name it as a model
    folder the operator allows (STUDIO_MODEL_DIRS), as a team machine would for /srv/models."""
    if "tiny_model_dir" in request.fixturenames:
        monkeypatch.setenv("STUDIO_MODEL_DIRS", str(request.getfixturevalue("tiny_model_dir")))


# ---------------------------------------------------------------- one process per core
# With workers (`-n 2 --dist loadscope`, as `make test` runs it), a unit of work is a test module
# (its module fixtures are built once), and the browser tests are one unit (one Chromium and one
# studio server at a time, on one worker); the longest units are handed out first, so the last to
# finish is a short one. (pytest-xdist's own `loadgroup` marks rename the tests, which pytest 9
# no longer allows, so the scheduler is told the units directly.)

BROWSER = "tests/e2e/"


def _unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "browser" if path.startswith(BROWSER) else path


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: the suite also runs without it
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None  # xdist's own scheduler for the other modes
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return Units(config, log)


def pytest_collection_modifyitems(config, items):
    """In each worker: the browser unit first, then the modules with slow tests, then the rest;
    the order inside a module is kept (the sort is stable)."""
    if not IN_WORKER:
        return
    units = {item: _unit(item.nodeid) for item in items}
    slow_units = {units[item] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (units[item] != "browser", units[item] not in slow_units))


# ---------------------------------------------------------------- the suite leaves nothing behind


def _tree_state() -> set[str] | None:
    """`git status` lines of the checkout (None outside a git checkout)."""
    import subprocess

    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


def pytest_sessionstart(session):
    if not IN_WORKER:
        session.config._tree_before = _tree_state()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a test wrote into the checkout or left a studio process running (the
    leftovers are ended, and named). With workers, the main process looks once they have all
    finished: a worker done early must not take the other's running processes for leftovers."""
    import signal
    import time

    if IN_WORKER:
        return
    problems = []
    before, after = getattr(session.config, "_tree_before", None), _tree_state()
    if before is not None and after is not None and after - before:
        problems.append("tests changed the checkout (git status): " + ", ".join(sorted(after - before)[:10]))
    factory = getattr(session.config, "_tmp_path_factory", None)
    homes = [SHARED_MODELS.parent]
    if factory is not None and getattr(factory, "_basetemp", None) is not None:
        homes.append(factory.getbasetemp())
    time.sleep(0.5)  # a process told to stop by a test's last step gets a moment to go
    left = studio_processes(homes)
    if left:
        problems.append("tests left processes running: " + "; ".join(f"{pid} {cmd[:160]}" for pid, cmd in left))
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if _SESSION_TMP:
        import shutil

        shutil.rmtree(_SESSION_TMP, ignore_errors=True)
    if problems and session.exitstatus == 0:
        session.exitstatus = 1
    session.config._hygiene = problems


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for problem in getattr(config, "_hygiene", []):
        terminalreporter.write_line(f"FAILED suite hygiene: {problem}", red=True)
