"""The architecture is a test: core stays UI-free and cheap to import, its rooms depend only
downward (foundation < dataset < train < chat/eval < export), and no module imports in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"": 0, "dataset": 1, "train": 2, "chat": 3, "eval": 3, "export": 4}


def _core_modules(root: str = "core") -> dict[str, Path]:
    return {".".join(p.with_suffix("").parts).removesuffix(".__init__"): p
            for p in (ROOT / root).rglob("*.py") for p in [p.relative_to(ROOT)]}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every core module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name in known}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""


def test_core_never_imports_gradio():
    modules = sorted(_core_modules())
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('gradio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "a core module imported gradio"


def test_importing_the_ui_does_not_import_torch():
    code = "import sys, studio.ui.app, studio.cli\nprint('torch' in sys.modules, 'transformers' in sys.modules, 'trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False False", "heavy libraries must load when first needed, not at start-up"


HEAVY = {"torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes", "gradio", "pandas", "plotly",
         "numpy", "llama_cpp", "lm_eval"}


def _heavy_modules() -> dict[str, str]:
    """{our module: the heavy library importing it loads}, following module-level imports through
    our own modules (and their packages' __init__)."""
    modules = {**_core_modules(), **_core_modules("studio")}
    direct = {}
    for name, path in modules.items():
        tree = ast.parse((ROOT / path).read_text())
        imports = set()
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                imports |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imports |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, (ast.Try, ast.If)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        imports |= {a.name for a in inner.names}
                    elif isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                        imports |= {inner.module}
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        direct[name] = {m for m in imports | parents if m in modules or m.split(".")[0] in HEAVY}
    heavy: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, imports in direct.items():
            if name in heavy:
                continue
            why = next((m.split(".")[0] for m in sorted(imports) if m.split(".")[0] in HEAVY), None)
            why = why or next((heavy[m] for m in sorted(imports) if m in heavy), None)
            if why:
                heavy[name], changed = why, True
    return heavy


def test_an_import_inside_a_function_defers_a_heavy_library():
    """Our own modules are imported at the top of a module, unless importing them loads a heavy
    library (torch, transformers, gradio, pandas, ...): then inside the function that needs it, so
    `studio runs` and the UI's start stay light (issue 23). No import hides a circle (see below)."""
    modules = {**_core_modules(), **_core_modules("studio")}
    heavy = _heavy_modules()
    light = []
    for name, path in modules.items():
        for fn in ast.walk(ast.parse((ROOT / path).read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                               for a in node.names]
                else:
                    continue
                ours = [t for t in targets if t in modules]
                deferred = {heavy[t] for t in ours if t in heavy} - {heavy.get(name)}  # what the importer does not load anyway
                if ours and not deferred:
                    light.append(f"{path}:{node.lineno} imports {', '.join(ours)} inside a function")
    assert light == []
    assert {"core.chat.engine", "core.train.training", "studio.ui.app"} <= set(heavy)  # the rule sees heavy ones
    assert not {"core.recipes", "core.workspace", "core.train.runs", "core.eval.metrics", "studio.cli.commands"} & set(heavy)


def _circles(modules: dict[str, Path]) -> list[str]:
    edges = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    circles = []
    for start in edges:  # depth-first search for a path back to `start`
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    circles.append(" -> ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return sorted(set(circles))


def test_core_has_no_import_circles():
    circles = _circles(_core_modules())
    assert not circles, f"import circles in core: {circles[:5]}"


def test_studio_has_no_import_circles_and_the_ui_never_imports_the_cli():
    """studio/ is ui/ (a package per tab, the app assembly) and cli/; neither side reaches into the
    other's modules through a function-level import to dodge a circle (issue 23)."""
    modules = _core_modules("studio")
    circles = _circles(modules)
    assert not circles, f"import circles in studio: {circles[:5]}"
    ui_to_cli = [f"{m} imports {t}" for m, p in modules.items() if m.startswith("studio.ui")
                 for t in _imports(p, set(modules)) if t.startswith("studio.cli")]
    assert not ui_to_cli, ui_to_cli
    assert {m.split(".")[1] for m in modules if m.count(".") >= 1} == {"ui", "cli"}, "studio/ holds ui/ and cli/ only"


def test_core_rooms_depend_only_downward():
    modules = _core_modules()
    upward = [f"{m} imports {t}" for m, p in modules.items() for t in _imports(p, set(modules))
              if LAYERS[_room(t)] > LAYERS[_room(m)]]
    assert not upward, "a room imports one above it: " + "; ".join(upward)


def _project_modules() -> set[str]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for root in ("core", "studio") for p in (ROOT / root).rglob("*.py")}


def _module_aliases(tree: ast.AST, known: set[str]) -> set[str]:
    """Names a file binds to another project module (`from core import models`, `import core.x as y`)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases |= {a.asname or a.name for a in node.names if f"{node.module}.{a.name}" in known}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.asname and a.name in known}
    return aliases


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reaches_into_another_modules_private_names():
    """Neither `from core.x import _name` nor `module._name`: what others use is public."""
    known, offenders = _project_modules(), []
    for path in list((ROOT / "core").rglob("*.py")) + list((ROOT / "studio").rglob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = _module_aliases(tree, known)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("core", "studio")):
                offenders += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if _is_private(a.name)]
            elif isinstance(node, ast.Attribute) and _is_private(node.attr):
                value = node.value
                dotted = ast.unparse(value)
                if (isinstance(value, ast.Name) and value.id in aliases) or dotted in known:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {dotted}.{node.attr}")
    assert not offenders, offenders


def test_the_private_name_check_catches_attribute_access(tmp_path):
    tree = ast.parse("from core import models\nfrom core.dataset import reader as r\nmodels._HUB_ID.match('a/b')\nr._reason\n")
    aliases = _module_aliases(tree, _project_modules())
    caught = [f"{ast.unparse(n.value)}.{n.attr}" for n in ast.walk(tree)
              if isinstance(n, ast.Attribute) and _is_private(n.attr) and ast.unparse(n.value) in aliases]
    assert sorted(caught) == ["models._HUB_ID", "r._reason"]


def test_tests_share_helpers_not_each_other():
    """A test module imports what it shares from tests/helpers, never from another test module or
    the conftest; bench/ and scripts/ may use the helpers, never a test module."""
    found = []
    for path in sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                last = name.split(".")[-1]
                if last.startswith("test_") or last == "conftest" or name in ("tests.ollama_standin", "tests.hub_standin"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert found == []


def test_no_source_file_is_a_catch_all():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in list((ROOT / "core").rglob("*.py")) + list((ROOT / "studio").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 450]
    assert not long, f"split these by job: {long}"


def test_ruff_is_clean():
    """The house's lint (pyproject's [tool.ruff]: pyflakes, pycodestyle, sorted imports, bugbear, pyupgrade)."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "core", "studio", "tests", "bench", "scripts"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
