"""One owner per fact, checked where it matters: core's errors share one base, every artifact is
written through the foundation's atomic step, the tag and Hub-id patterns have one home, a
recipe's dataset is resolved once, the Dataset tab keeps what a visitor opened in that visitor's
session, GPU-bound chat handlers are wrapped for ZeroGPU, and a surprise becomes one line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import StudioError
from core.workspace import ASSETS, atomic_path, workspace

ROOT = Path(__file__).resolve().parent.parent


def test_every_error_class_in_core_is_a_studio_error():
    import importlib

    classes = []
    for path in (ROOT / "core").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.bases and any(
                    ast.unparse(b).endswith(("Error", "Exception", "Input")) for b in node.bases):
                classes.append(getattr(importlib.import_module(module), node.name))
    names = {c.__name__ for c in classes}
    assert {"ModelNotFound", "QLoRANeedsCUDA", "RecipeError", "DatasetError", "RunError", "RunBusy", "ExportError",
            "PathOutsideWorkspace", "PromptSetError"} <= names
    assert [c.__name__ for c in classes if not issubclass(c, StudioError)] == []


def test_atomic_path_replaces_a_folder_or_file_only_when_complete(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as partial:
            partial.mkdir()
            (partial / "weights").write_text("half")
            raise RuntimeError("disk full")
    assert (target / "weights").read_text() == "v1" and not partial.exists()
    with atomic_path(target) as partial:  # a finished folder replaces the old one
        partial.mkdir()
        (partial / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    single = tmp_path / "out.jsonl"
    with atomic_path(single) as partial:
        partial.write_text("row\n")
    assert single.read_text() == "row\n" and sorted(p.name for p in tmp_path.iterdir()) == ["model", "out.jsonl"]


def test_no_writer_renames_a_partial_by_hand():
    """The write-then-rename step lives in core.workspace only."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")
                 if p.name != "workspace.py" and ("os.replace(" in p.read_text() or ".replace(out" in p.read_text())]
    assert offenders == []


def test_tags_have_one_owner():
    from core.chat import engine
    from core.dataset import checker, tags
    from studio.ui.dataset import render as dataset_render

    assert engine.split_think is tags.split_think
    assert checker.visible_words("<think>a b c</think> Four five. <think>x") == 2
    pattern = tags.mode_tag_pattern(["thought", "world"])
    assert pattern.findall("<thought>a</thought><world>") == [("", "thought"), ("/", "thought"), ("", "world")]
    html = dataset_render.render_text("<think>why</think><thought>x</thought>", {"dual": ["<thought>"]})
    assert "Thinking (1 words)" in html and 'title="dual mode tag"' in html


def test_hub_ids_have_one_owner():
    from core import models
    from core.dataset import reader
    from core.export import hub

    assert models.HUB_ID.match("Qwen/Qwen2.5-0.5B") and not models.HUB_ID.match("owner/name:split")
    assert reader.is_hub_dataset("owner/name:split") and not reader.is_hub_dataset(str(ASSETS / "modes.yaml"))
    assert hub.hub_datasets({"data": {"path": "my-org/data"}}) == ["my-org/data"]


def test_metrics_and_ab_rows_go_through_one_reader(tmp_path):
    from core.export import hub
    from core.train import run_dir

    (tmp_path / "status.json").write_text("{}")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.5}\n[1]\n{"step": 2, "lo')
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "ab-1.jsonl").write_text('{"side": "base"}\n')
    assert run_dir.read_metrics(tmp_path) == [{"step": 1, "split": "train", "loss": 1.5}]
    assert hub.losses(run_dir.read_metrics(tmp_path)) == {"final_train_loss": 1.5, "final_train_step": 1}
    assert run_dir.latest_ab_rows(tmp_path) == [{"side": "base"}]
    assert run_dir.run_holding(tmp_path / "checkpoints" / "checkpoint-4") == tmp_path


def test_a_recipes_dataset_is_resolved_once_when_it_loads(tmp_path, monkeypatch):
    from core import recipes

    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "d.jsonl").write_text("{}\n")
    (folder / "r.yaml").write_text("data: {path: d.jsonl}\n")
    recipe = recipes.load(folder / "r.yaml")
    assert recipe.resolved_data == ("d.jsonl", (folder / "d.jsonl").resolve())
    monkeypatch.setattr(recipes, "_resolve_dataset", lambda *_: pytest.fail("resolved a second time"))
    assert recipe.dataset_path() == (folder / "d.jsonl").resolve()


def test_one_yaml_error_phrasing(tmp_path):
    from core import recipes
    from core.dataset.contamination import ModesError, load_config
    from core.dataset.patterns import PatternError
    from core.eval.metrics import load_patterns

    for bad, error in ((tmp_path / "modes.yaml", ModesError), (tmp_path / "patterns.yaml", PatternError)):
        bad.write_text("a: [unclosed\n")
        with pytest.raises(error, match=rf"{bad.name}: line \d+ is not valid YAML"):
            (load_config if error is ModesError else load_patterns)(bad)
    with pytest.raises(recipes.RecipeError, match=r"the recipe YAML: line \d+ is not valid YAML"):
        from studio.ui.train import form as train_form

        train_form.parse_yaml("a: [unclosed")


def test_ab_sides_are_built_in_one_place(tmp_path):
    from core.eval.ab import sides_for

    (tmp_path / "status.json").write_text("{}")
    for folder in (tmp_path / "adapter", tmp_path / "checkpoints" / "checkpoint-4"):
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
    adapter, checkpoint = str(tmp_path / "adapter"), str(tmp_path / "checkpoints" / "checkpoint-4")
    sides = sides_for(adapter, compare=[checkpoint, adapter])
    assert sides == {"base": None, "tuned": adapter, "checkpoint-4": checkpoint}
    assert list(sides_for(str(tmp_path), all_checkpoints=True)) == ["base", "final", "checkpoint-4"]


def test_each_visitor_keeps_their_own_open_dataset():
    from studio.ui.dataset import state as dataset_state
    from studio.ui.dataset import summary as dataset_summary
    from studio.ui.dataset import tab as dataset_tab

    target = workspace().datasets / "m.jsonl"
    target.write_bytes((ASSETS / "cognitive_modes_contaminated.jsonl").read_bytes())
    first, _ = dataset_tab.open_dataset(None, None, str(target), "auto", "")
    second, _ = dataset_tab.open_dataset(None, None, str(target), "modes", "")
    assert first == second == str(target)  # it reads as the path (the Train tab takes it as one)
    assert dataset_state.opened(first) is not dataset_state.opened(second)
    dataset_summary.check_dataset(first)
    assert dataset_state.opened(first).report is not None and dataset_state.opened(second).report is None
    assert dataset_state.opened(str(target)) is None  # a bare path opens nothing: no shared cache
    assert not [name for name, value in vars(dataset_state).items() if isinstance(value, dict) and not name.startswith("__")]


def test_a_surprise_in_a_handler_is_one_line_and_logged(monkeypatch, caplog):
    from core.dataset import tokens
    from studio.ui.dataset import summary as dataset_summary
    from studio.ui.dataset import tab as dataset_tab

    target = workspace().datasets / "s.jsonl"
    target.write_bytes((ASSETS / "friction_sample.jsonl").read_bytes())
    path, _ = dataset_tab.open_dataset(None, None, str(target), "auto", "")
    dataset_summary.check_dataset(path)
    monkeypatch.setattr(tokens, "tokenizer_for", lambda name: (_ for _ in ()).throw(KeyError("vocab")))
    with caplog.at_level("ERROR", logger="studio"):
        message, _ = dataset_summary.count_tokens(path, "embedded", 512)
    assert "KeyError" in message and "server log" in message and "Traceback" not in message
    assert caplog.records and caplog.records[0].exc_info


def test_gpu_bound_chat_handlers_are_wrapped_for_zerogpu(tmp_path):
    fake = tmp_path / "spaces"
    fake.mkdir()
    (fake / "__init__.py").write_text("def GPU(fn):\n    fn.zero_gpu = True\n    return fn\n")
    code = ("import studio.ui.chat.tab as c, studio.ui.chat.ab as ab\n"
            "print(getattr(c.send_message, 'zero_gpu', False), getattr(ab.run_ab, 'zero_gpu', False))")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "STUDIO_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_state_files_are_read_by_one_helper_each(tmp_path):
    """read_json / read_jsonl / append_jsonl (core.workspace): a missing, cut-off or wrong-shaped
    file is the empty value, a half-written JSONL line is skipped (the A/B view crashed on one)."""
    from core.workspace import append_jsonl, read_json, read_jsonl
    from studio.ui.chat.eval_view import _rows_from

    assert read_json(tmp_path / "missing.json") == {} and read_json(tmp_path / "missing.json", kind=list) == []
    (tmp_path / "cut.json").write_text('{"state": "runn')
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_json(tmp_path / "cut.json") == {} and read_json(tmp_path / "list.json") == {}
    assert read_json(tmp_path / "list.json", kind=list) == [1, 2]
    rows = tmp_path / "sub" / "rows.jsonl"
    append_jsonl(rows, {"prompt": "a", "base": "x"})
    append_jsonl(rows, {"prompt": "b", "base": "é"})
    with open(rows, "a") as handle:
        handle.write('{"prompt": "c", "ba')  # an A/B run still writing
    assert [r["prompt"] for r in read_jsonl(rows)] == ["a", "b"] == [r["prompt"] for r in _rows_from([str(rows)])]


def test_clients_are_built_in_one_place():
    """Ollama clients, HfApi and the token rule live in core.clients; nothing else constructs them."""
    import ast

    from tests.helpers.server import ROOT

    builders = []
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "studio").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name in ("Client", "HfApi") or (isinstance(node.func, ast.Attribute) and name == "Client"):
                    builders.append(f"{path.relative_to(ROOT)}:{name}")
            if isinstance(node, ast.FunctionDef) and node.name == "resolve_token":
                builders.append(f"{path.relative_to(ROOT)}:def resolve_token")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(":11434"):
                builders.append(f"{path.relative_to(ROOT)}:{node.value}")
    assert {b.split(":", 1)[0] for b in builders} == {"core/clients.py"}, builders
    assert {"core/clients.py:Client", "core/clients.py:HfApi", "core/clients.py:def resolve_token"} <= set(builders)
