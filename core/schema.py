"""Schema: what a typed dataclass tree (the recipe) knows about itself. Each field's attribute
docstring is its help text; a tree turns into plain YAML-ready dicts; `Section | None` hints name
their section. Also the one way a YAML syntax error is told. Knows nothing about recipes' fields,
trainers or files."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache
from pathlib import Path
from typing import Any

import yaml


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        # An optional section that is absent (grpo, a reward) stays out of the YAML rather than reading `null`.
        hints = typing.get_type_hints(type(value))
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if not f.metadata.get("internal")
                and not (getattr(value, f.name) is None and dataclasses.is_dataclass(section_type(hints[f.name])))}
    if isinstance(value, Path):
        return str(value)
    return value


def section_type(hint: Any) -> Any:
    """The dataclass inside `Section | None`, else the hint itself."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    return inner[0] if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) else hint


@cache
def docs_of(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right under a field), read from the class source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[node.target.id] = after.value.value.strip()
    return docs


def field_help(root: type, dotted: str) -> str:
    """The one-line help of a field of the tree under `root`, e.g. (Recipe, 'training.learning_rate')."""
    cls: type = root
    parts = dotted.split(".")
    for part in parts[:-1]:
        cls = section_type(typing.get_type_hints(cls)[part])
    return docs_of(cls).get(parts[-1], "")


def all_fields(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every leaf field of the tree under `cls` as (dotted name, type, help)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        hint = section_type(hints[f.name])
        if dataclasses.is_dataclass(hint):
            out += all_fields(hint, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", hint, docs_of(cls).get(f.name, "")))
    return out


def yaml_error_text(where: str | Path, error: yaml.YAMLError) -> str:
    """The one way a YAML syntax error is told: where, the line when known, and what is wrong.
    >>> yaml_error_text("r.yaml", yaml.YAMLError("bad"))
    'r.yaml: not valid YAML: bad'
    """
    mark = getattr(error, "problem_mark", None)
    line = f" line {mark.line + 1} is" if mark else ""
    return f"{where}:{line} not valid YAML: {getattr(error, 'problem', None) or error}"
