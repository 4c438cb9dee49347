"""Bad input to `studio train` and `studio check`: one clear line and the documented exit code,
never a traceback, and the dry run refusing exactly what the real run refuses (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import recipes
from core.train import training
from core.workspace import workspace
from studio.cli import commands as cli


def _recipe(folder: Path, data: str, model: str = "embedded", name: str = "r.yaml") -> Path:
    path = folder / name
    path.write_text(f"name: bad\nmodel:\n  name: {json.dumps(model)}\ndata:\n  path: {json.dumps(data)}\n")
    return path


def _truncated_parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["a"] * 50, "completion": ["b"] * 50}), path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _bad_datasets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "empty.jsonl").write_text("")
    return {
        "unsupported file": (tmp_path / "notes.txt", "unsupported file type"),
        "folder with no data": (tmp_path / "empty-folder", "holds no"),
        "truncated parquet": (_truncated_parquet(tmp_path / "cut.parquet"), "not a readable Parquet file"),
        "empty file": (tmp_path / "empty.jsonl", "empty"),
    }


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))  # an exception escaping here is the traceback a person would see
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real-run"])
def test_train_with_an_unreadable_dataset_is_one_line_and_exit_2(tmp_path, capsys, dry_run):
    for case, (data, reason) in _bad_datasets(tmp_path).items():
        recipe = _recipe(tmp_path, str(data), name=f"{case.replace(' ', '-')}.yaml")
        code, _, err = _run(capsys, "train", str(recipe), *(["--dry-run"] if dry_run else []))
        assert code == 2, case
        assert err.startswith("error: ") and err.count("\n") == 1, (case, err)
        assert "data.path" in err and reason in err and str(recipe) in err, (case, err)
    assert not any(workspace().runs.iterdir()), "a refused start must not leave a run folder"


@pytest.mark.parametrize("content, reason", [
    ("- model\n- data\n", "holds a list"),
    ("just some words\n", "holds plain text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not a text file"),
    ("model: [unclosed\n", "not valid YAML"),
    ("[" * 1500 + "]" * 1500, "nested too deeply"),
    (None, "a folder, not a recipe file"),
], ids=["list", "plain-text", "binary", "bad-yaml", "deep-nesting", "folder"])
def test_train_with_a_bad_recipe_file_is_one_line_and_exit_2(tmp_path, capsys, content, reason):
    path = tmp_path / "recipe.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    for extra in ([], ["--dry-run"], ["--dry-run", "--json"]):
        code, out, err = _run(capsys, "train", str(path), *extra)
        assert code == 2 and err.startswith(f"error: {path}") and reason in err and err.count("\n") == 1, err
        if "--json" in extra:
            assert json.loads(out) == {"ok": False, "error": err[len("error: "):].strip()}


def test_bad_set_value_is_a_recipe_error(tmp_path, capsys):
    recipe = _recipe(tmp_path, "x.jsonl")
    code, _, err = _run(capsys, "train", str(recipe), "--set", "training.epochs=[", "--dry-run")
    assert code == 2 and "--set training.epochs=[" in err


def test_dry_run_refuses_the_model_path_a_real_run_refuses(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    not_a_model = tmp_path / "no-model-here"
    for extra in (["--dry-run"], []):
        code, _, err = _run(capsys, "train", str(_recipe(tmp_path, str(data), model=str(not_a_model))), *extra)
        assert code == 2 and str(not_a_model) in err and "neither 'embedded'" in err, err
    folder = tmp_path / "folder-without-config"
    folder.mkdir()
    recipe = recipes.load(_recipe(tmp_path, str(data), model=str(folder)))
    with pytest.raises(Exception, match="no config.json"):
        training.plan(recipe)


def test_dry_run_notes_qlora_without_cuda_instead_of_failing(tmp_path):
    from core.train.preflight import QLORA_NOTE, preflight

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    recipe = recipes.load(_recipe(tmp_path, str(data)), ["training.tuning=qlora"])
    assert preflight(recipe, dry_run=True) == [QLORA_NOTE]


def test_dataset_of_no_known_format_is_refused_before_a_run_starts(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    code, _, err = _run(capsys, "train", str(_recipe(tmp_path, str(data))))
    assert code == 2 and "no known format" in err and "data.path" in err
    code, _, err = _run(capsys, "train", str(_recipe(tmp_path, str(data))), "--set", "data.format=csv")
    assert code == 2 and "data.format: expected auto or one of" in err


# ---------------------------------------------------------------- empty files, where a finding is, missing paths


@pytest.mark.parametrize("name, content, reason", [
    ("empty.jsonl", "", "the file is empty (0 bytes)"),
    ("blank.jsonl", "  \n\n\t \r\n", "only blank lines or whitespace"),
    ("header.csv", "prompt,completion\n", "a header but no rows"),
    ("empty.json", "[]", "holds no rows"),
])
def test_empty_files_are_unreadable_not_one_row(tmp_path, capsys, name, content, reason):
    path = tmp_path / name
    path.write_text(content)
    code, out, err = _run(capsys, "check", str(path))
    assert code == 2 and reason in err and "row None" not in out + err and "1 rows" not in out, err
    code, out, _ = _run(capsys, "check", str(path), "--json")
    assert code == 2 and json.loads(out)["ok"] is False


def test_no_usable_rows_are_not_graded(tmp_path, capsys):
    path = tmp_path / "broken.jsonl"
    path.write_text("not json\n[1, 2]\n")
    code, out, _ = _run(capsys, "check", str(path))
    assert code == 1 and "not graded (no usable examples)" in out and "Average reply length" not in out
    code, out, _ = _run(capsys, "check", str(path), "--json")
    assert json.loads(out)["metrics"] == {}


def test_findings_in_a_json_array_name_the_row_not_line_none(tmp_path, capsys):
    rows = [{"messages": [{"role": "user", "content": "hi"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "not an object"]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    code, out, _ = _run(capsys, "check", str(path))
    assert code == 1 and "None" not in out, out
    assert "role order  row 1 (row-1): no assistant turn" in out
    assert "exact duplicate  row 3 same as row 2" in out
    assert f"bad row  {path}:row 4: expected an object per row" in out


def test_missing_relative_path_is_no_such_file_not_a_hub_dataset(tmp_path, capsys, monkeypatch):
    from core.dataset import reader

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for missing in ("data/missing.jsonl", "data/missing", "someone/missing.csv"):
        code, _, err = _run(capsys, "check", missing)
        assert code == 2 and "no such file" in err and "Hub" not in err, (missing, err)
    assert reader.is_hub_dataset("HuggingFaceH4/ultrafeedback:train")
    assert not reader.is_hub_dataset("data/anything")  # its first part is a local folder: a path, not owner/name


def test_ui_resolves_a_typed_relative_path_against_the_workspace(tmp_path, monkeypatch):
    from studio.ui.dataset import tab as dataset_tab

    monkeypatch.chdir(tmp_path)  # the server's folder holds nothing by that name
    mine = workspace().datasets / "mine.jsonl"
    mine.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    path, status = dataset_tab.open_dataset(None, None, "datasets/mine.jsonl", "auto", "")
    assert path == str(mine.resolve()) and "1 records" in status, status
    path, status = dataset_tab.open_dataset(None, None, "datasets/missing.jsonl", "auto", "")
    assert path == "" and "no such file" in status and "Hub" not in status, status


def test_runs_shows_why_a_run_failed(capsys):
    run = workspace().runs / "broken-run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({
        "state": "failed", "step": 3, "total_steps": 10, "started_at": "2026-01-01T00:00:00+00:00",
        "error": "RecipeError: data.path: no usable examples (the full traceback is in train.log)\nmore"}))
    code, out, _ = _run(capsys, "runs")
    assert code == 0 and "why: RecipeError: data.path: no usable examples" in out and "more" not in out
    code, out, _ = _run(capsys, "runs", "--json")
    assert json.loads(out)["runs"][0]["error"].startswith("RecipeError: data.path")


def test_tiny_or_partly_broken_data_is_said_before_the_run(tmp_path, capsys, tiny_model_dir):
    """Issue 22: a run on 2 examples and a broken row was planned without a word. The dry run and
    a real start both say so first (the start still goes on: it is the person's call)."""
    good = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})
    data = tmp_path / "two.jsonl"
    data.write_text(f"{good}\n{{broken\n{good}\n")
    recipe = _recipe(tmp_path, str(data), model=str(tiny_model_dir))
    code, out, _ = _run(capsys, "train", str(recipe), "--dry-run")
    assert code == 0
    assert "Warning: 1 of 3 rows of two.jsonl can't be used" in out and "(first: line 2: not valid JSON" in out
    assert "Warning: Only 2 usable example(s) in two.jsonl" in out
    code, _, err = _run(capsys, "train", str(recipe), "--set", "training.max_steps=1", "--set", "eval.after_training=false")
    assert err.startswith("warning: 1 of 3 rows") and "warning: Only 2 usable" in err
