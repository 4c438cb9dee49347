"""Preflight: the checks every start makes before anything is written or loaded (QLoRA without
CUDA, a dataset that is missing or can't be read, an unknown model, GRPO rewards that can't run
here). The dry run, the UI and the worker all call this one function, so a recipe the dry run
accepts is one the real run accepts; the dry run only turns "QLoRA needs CUDA" into a note,
because validating a GPU recipe on a laptop is what it is for. Knows nothing about processes or
trainers."""

from __future__ import annotations

from core.dataset import formats, privacy, reader
from core.dataset.checker import NEAR_THRESHOLD, said
from core.dataset.leakage import LeakIndex, asked
from core.models import (
    ModelNotFound,
    QLoRANeedsCUDA,
    device_policy,
    four_bit_config,
    resolve,
)
from core.recipes import Recipe, RecipeError, check_dataset_exists
from core.train import trackers
from core.train.rewards import check_rewards

QLORA_NOTE = "QLoRA needs a CUDA GPU: this machine can validate the recipe but not run it (use tuning: lora here)."


def preflight(recipe: Recipe, *, dry_run: bool = False) -> list[str]:
    """Fail before anything loads: QLoRA without CUDA (a note in a dry run), a dataset that is
    missing, unreadable, empty or of no known format, a model name that resolves to nothing.
    Returns the notes a dry run shows."""
    notes = []
    if recipe.training.tuning == "qlora":
        try:
            four_bit_config(device_policy())  # raises QLoRANeedsCUDA with the way out
        except QLoRANeedsCUDA:
            if not dry_run:
                raise
            notes.append(QLORA_NOTE)
    check_dataset_readable(recipe)
    try:
        resolve(recipe.model.name)
    except ModelNotFound as error:
        where = f"{recipe.source}: " if recipe.source else ""
        raise RecipeError(f"{where}model.name: {error}") from None
    trackers.check_installed(recipe)
    if recipe.training.method == "grpo":
        check_rewards(recipe)
    return notes


def check_dataset_readable(recipe: Recipe) -> None:
    """Open the dataset the way training will and read its first rows: an unsupported file, an
    empty folder, a truncated Parquet file or rows of no known format fail here, naming data.path."""
    where = f"{recipe.source}: " if recipe.source else ""
    data = recipe.data
    if data.format not in ("auto",) + formats.FORMATS:
        raise RecipeError(f"{where}data.format: expected auto or one of {', '.join(formats.FORMATS)}, got {data.format!r}")
    path = check_dataset_exists(recipe)
    try:
        opened = reader.stream(path, data.format, format_template=data.format_template, system_prompt=data.system_prompt)
    except reader.DatasetError as error:
        raise RecipeError(f"{where}data.path: {error}") from None
    except ValueError as error:  # a friction template that can't be filled
        raise RecipeError(f"{where}data.format_template: {error}") from None
    if opened.format == "unknown":
        raise RecipeError(f"{where}data.path: {path}: {opened.evidence}")


TINY_DATA = 20  # fewer usable examples than this: a run memorizes them instead of learning a behaviour
SUMMARY_ROWS = 200_000  # the Train tab's summary reads at most this many rows (a dry run counts them all)


def dataset_summary(recipe: Recipe, *, limit: int | None = SUMMARY_ROWS, leaks: LeakIndex | None = None) -> dict:
    """What a person should know about a run's dataset before Start: the file, how many examples
    it holds, how many rows can't be used (the first one named), and a plain-words warning for
    each thing worth a second look (tiny data, broken rows, personal data, and with `leaks`
    (core.eval.prompts.recipe_leak_index) evaluation prompts), all in one pass over the rows.
    Raises RecipeError when the dataset can't be read at all, as preflight does."""
    from core.dataset import near_dups  # numpy: loaded when a run's data is summarized, not by every importer

    check_dataset_readable(recipe)
    data = recipe.data
    path = recipe.dataset_path()
    examples, bad, first_bad, complete = 0, 0, None, True
    signer, lines = near_dups.Signer(), []
    private, first_private, kinds = 0, None, set()
    leaked, first_leak, prompts = 0, None, {}
    for index, item in enumerate(reader.stream(path, data.format, format_template=data.format_template,
                                               system_prompt=data.system_prompt)):
        if limit is not None and index >= limit:
            complete = False
            break
        lines.append(_where(item))
        if isinstance(item, reader.BadRow):
            bad += 1
            first_bad = first_bad or bad_row_where(item)
            signer.add("")
        else:
            examples += 1
            texts = [message["content"] for message in item.messages] + [item.chosen or "", item.rejected or ""]
            signer.add(said(item))
            found = [f for text in texts for f in privacy.scan(text)]
            if found:
                private += 1
                kinds.update(f.label for f in found)
                first_private = first_private or _where(item)
            held = leaks.find(asked(item.messages)) if leaks else []
            if held:
                leaked += 1
                prompts.update(dict.fromkeys(f"{prompt} ({name})" for name, prompt in held))
                first_leak = first_leak or _where(item)
    warnings = data_warnings(path.name, examples, bad, first_bad, complete)
    groups = near_dups.clusters(signer.result(), NEAR_THRESHOLD)
    repeats = sum(len(group.rows) - 1 for group in groups)
    if repeats:
        first = min(groups, key=lambda group: group.rows[0])
        warnings.append(f"{repeats} record(s) of {path.name} repeat another nearly word for word ({len(groups)} group(s); "
                        f"first: {lines[first.rows[0]]} and {lines[first.rows[1]]}): each counts several times in training. "
                        "Open it in the Dataset tab and keep one per group, or run studio check --fix dedupe.")
    leak_warnings = []
    if leaked:
        shown = ", ".join(list(prompts)[:5]) + (" ..." if len(prompts) > 5 else "")
        leak_warnings.append(f"{leaked} record(s) of {path.name} hold evaluation prompts ({shown}; first: {first_leak}): "
                             "the evaluation after training would grade memory, not learning. Remove them, or evaluate "
                             "on other prompts.")
    if private:
        warnings.append(f"{private} record(s) of {path.name} hold personal data or secrets ({', '.join(sorted(kinds))}; "
                        f"first: {first_private}). A model learns and repeats them: open it in the Dataset tab to edit them "
                        "out or reject those records.")
    return {"path": str(path), "examples": examples, "bad_rows": bad, "first_bad": first_bad, "complete": complete,
            "private_records": private, "near_duplicates": repeats, "leak_warnings": leak_warnings, "warnings": warnings + leak_warnings}


def _where(item) -> str:
    """A record by its line in the file, else its row (JSON arrays, Parquet)."""
    return f"line {item.line}" if item.line else f"row {item.row}" if item.row else "a row"



def bad_row_where(bad) -> str:
    """'line 2: not valid JSON (...)': a bad row by its line (or row) in the file the warning names."""
    return f"{_where(bad)}: {bad.reason}"


def data_warnings(name: str, examples: int, bad_rows: int, first_bad: str | None, complete: bool = True) -> list[str]:
    """Plain-words warnings about a dataset's size and broken rows (what it means, what to do)."""
    warnings = []
    if bad_rows:
        warnings.append(f"{bad_rows} of {examples + bad_rows} rows of {name} can't be used and will be skipped "
                        f"(first: {first_bad}). Open it in the Dataset tab to see and fix them.")
    if complete and examples < TINY_DATA:
        warnings.append(f"Only {examples} usable example(s) in {name}: a model shown so few memorizes them instead of "
                        f"learning the behaviour. Use at least {TINY_DATA}, better a few hundred, or check that this "
                        "is the dataset you meant.")
    return warnings
