"""Fixtures more than one test module uses; tests/conftest.py registers them for every test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core import recipes
from core.train import runs
from tests.helpers.models import make_adapter
from tests.helpers.ollama_create import ollama_stand_in  # noqa: F401  (registered through this module)


@pytest.fixture
def busy_slot(tmp_path):
    """A 'live' run: a real process that sleeps, recorded as the running worker."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    run = runs.create_run(recipes.from_dict({"name": "live", "data": {"path": "x"}}))
    import psutil

    runs.update_status(run, state="running", pid=sleeper.pid, pid_started=psutil.Process(sleeper.pid).create_time())
    yield run
    sleeper.kill()
    sleeper.wait()


@pytest.fixture(scope="module")
def adapter_source(tiny_model_dir, tmp_path_factory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("tab-adapter") / "adapter")
