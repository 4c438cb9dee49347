"""The bad-input corpus (issue 12): datasets and recipes a hostile visitor or a new user with messy
files would bring, each with what `studio check` and `studio train --dry-run` must answer.

`build(folder)` writes every file into `folder` and returns the cases. Each case names the exit
codes (check: 0 clean, 1 problems found, 2 unreadable; train --dry-run: 0 plan printed, 2 user
error) and the words the output must hold: the file, and the line or row where there is one.
Files are generated, not shipped, so the 5 MB line and the binary files cost nothing in git.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

CHAT = {"messages": [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]}
ALPACA = {"instruction": "Add two and two.", "input": "", "output": "Four."}


@dataclass
class Case:
    name: str
    path: str  # relative to the corpus folder ("" for the recipe-only cases)
    check_rc: int | None  # None: not a dataset case
    check_says: list[str] = field(default_factory=list)
    train_rc: int = 2  # `studio train --dry-run` on a recipe that points at it
    train_says: list[str] = field(default_factory=list)
    recipe: str | None = None  # the recipe file's own text, for recipe cases


def _lines(*rows) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


def _datasets(folder: Path) -> list[Case]:
    def write(name, data):
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))

    good = [_chat(i) for i in range(4)]
    write("empty.jsonl", "")
    write("whitespace.jsonl", "   \n\t\n\r\n  ")
    write("bom.jsonl", "\ufeff" + _lines(*good))
    write("crlf.jsonl", _lines(*good).replace("\n", "\r\n"))
    write("latin1.jsonl", _lines(good[0]).encode() + '{"messages": [{"role": "user", "content": "café"}]}\n'.encode("latin-1")
          + _lines(*good[1:]).encode())
    big = {"messages": [{"role": "user", "content": "Summarize."}, {"role": "assistant", "content": "word " * 50_000}]}
    write("long-line.jsonl", _lines(good[0], big, '{"messages": "' + "x" * 5_000_000, *good[1:]))
    write("array-in.jsonl", json.dumps(good) + "\n")
    write("mixed-lines.jsonl", _lines(good[0], "42", '"text"', "null", "[1, 2]", good[1]))
    write("mixed-formats.jsonl", _lines(*good[:3], ALPACA))
    bad_role = {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}
    write("bad-roles.jsonl", _lines(good[0], bad_role, good[1]))
    write("deep.jsonl", _lines(good[0], '{"messages": ' + "[" * 5000 + "]" * 5000 + "}", good[1]))
    write("deep.json", "[" * 100_000 + "]" * 100_000)
    write("stray-quote.csv", 'prompt,completion\n"hi,there\nsecond,row\nthird" x,row\nfourth,ok\n')
    write("unclosed-quote.csv", 'prompt,completion\nfirst,ok\n"never closed,yo\nline4,b\nline5,c\n')
    write("extra-fields.csv", "prompt,completion\na,b,c\nd,e\n")
    write("missing-fields.csv", "prompt,completion\nonly\nd,e\n")
    write("latin1.csv", "prompt,completion\ncaf\xe9,x\nok,y\n".encode("latin-1"))
    write("duplicate-header.csv", "prompt,prompt\na,b\n")
    write("header-only.csv", "prompt,completion\n")
    _parquet(folder / "ok.parquet")
    whole = (folder / "ok.parquet").read_bytes()
    write("truncated.parquet", whole[: len(whole) // 2])
    (folder / "ok.parquet").unlink()
    noise = random.Random(12).randbytes(4096)
    write("binary.jsonl", noise)
    write("binary.json", noise)
    write("binary.parquet", noise)
    (folder / "empty-folder").mkdir()
    write("notes.txt", "not a dataset")

    def p(name):
        return str(folder / name)

    return [
        Case("empty file", "empty.jsonl", 2, [p("empty.jsonl"), "empty (0 bytes)"]),
        Case("whitespace only", "whitespace.jsonl", 2, [p("whitespace.jsonl"), "only blank lines"]),
        Case("byte-order mark", "bom.jsonl", 0, ["4 rows, 4 usable"], 0),
        Case("CRLF line ends", "crlf.jsonl", 0, ["4 rows, 4 usable"], 0),
        Case("a Latin-1 line", "latin1.jsonl", 1, [f"{p('latin1.jsonl')}:2: not UTF-8", "0xe9"], 0, ["1 bad rows"]),
        Case("5 MB lines", "long-line.jsonl", 1, [f"{p('long-line.jsonl')}:3: not valid JSON"], 0, ["1 bad rows"]),
        Case("JSON array in .jsonl", "array-in.jsonl", 1, [f"{p('array-in.jsonl')}:1: expected a JSON object per line, got list"],
             2, ["data.path", "no readable rows (first: line 1"]),
        Case("mixed line types", "mixed-lines.jsonl", 1,
             [f"{p('mixed-lines.jsonl')}:{n}: expected a JSON object per line" for n in (2, 3, 4, 5)], 0, ["4 bad rows"]),
        Case("mixed formats", "mixed-formats.jsonl", 1, [f"{p('mixed-formats.jsonl')}:4: row looks like alpaca"], 0),
        Case("bad roles", "bad-roles.jsonl", 1, [f"{p('bad-roles.jsonl')}:2: messages[1].role"], 0),
        Case("deep nesting (JSONL)", "deep.jsonl", 1, [f"{p('deep.jsonl')}:2: not valid JSON"], 0),
        Case("deep nesting (JSON)", "deep.json", 2, [p("deep.json"), "nested too deeply"]),
        Case("CSV stray quote", "stray-quote.csv", 1, [f"{p('stray-quote.csv')}:2: a quote opened on line 2 runs to line 4",
                                                       "4 rows, 3 usable"], 0),
        Case("CSV unclosed quote", "unclosed-quote.csv", 1, [f"{p('unclosed-quote.csv')}:3: a quote opened on line 3 never closes",
                                                             "4 rows, 3 usable"], 0),
        Case("CSV extra fields", "extra-fields.csv", 1, [f"{p('extra-fields.csv')}:2: 3 fields but the header has 2"], 0),
        Case("CSV missing fields", "missing-fields.csv", 1, [f"{p('missing-fields.csv')}:2: 1 field but the header has 2"], 0),
        Case("CSV Latin-1", "latin1.csv", 1, [f"{p('latin1.csv')}:2: not UTF-8"], 0),
        Case("CSV duplicate header", "duplicate-header.csv", 2, [p("duplicate-header.csv"), "line 1", "twice"]),
        Case("CSV header only", "header-only.csv", 2, [p("header-only.csv"), "a header but no rows"]),
        Case("truncated Parquet", "truncated.parquet", 2, [p("truncated.parquet"), "not a readable Parquet file"]),
        Case("binary as .jsonl", "binary.jsonl", 1, [f"{p('binary.jsonl')}:1: "], 2, ["data.path", "no readable rows"]),
        Case("binary as .json", "binary.json", 2, [p("binary.json"), "not UTF-8"]),
        Case("binary as .parquet", "binary.parquet", 2, [p("binary.parquet"), "not a readable Parquet file"]),
        Case("empty folder", "empty-folder", 2, [p("empty-folder"), "holds no"]),
        Case("unsupported file", "notes.txt", 2, [p("notes.txt"), "unsupported file type"]),
        Case("missing path", "missing/nothing.jsonl", 2, [p("missing/nothing.jsonl"), "no such file"]),
    ]


def _parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(200)], "completion": [f"a{i}" for i in range(200)]}), path)


def _recipes(folder: Path) -> list[Case]:
    ok_data = folder / "bom.jsonl"
    (folder / "no-config-model").mkdir()
    data = json.dumps(str(ok_data))
    texts = {
        "list.yaml": ("recipe is a YAML list", "- model\n- data\n", ["holds a list"]),
        "text.yaml": ("recipe is plain text", "train my model please\n", ["holds plain text"]),
        "binary.yaml": ("recipe is binary", None, ["not a text file"]),
        "invalid.yaml": ("recipe is invalid YAML", "model: [unclosed\n", ["line 2", "not valid YAML"]),
        "deep.yaml": ("recipe nested too deeply", "[" * 3000 + "]" * 3000, ["nested too deeply"]),
        "unknown-key.yaml": ("recipe has an unknown key", f"data:\n  path: {data}\ntraning:\n  epochs: 1\n",
                             ["unknown key 'traning'", "did you mean 'training'"]),
        "wrong-type.yaml": ("recipe has a wrong type", f"data:\n  path: {data}\ntraining:\n  epochs: lots\n",
                            ["training.epochs", "expected a number"]),
        "missing-data.yaml": ("recipe's dataset is missing", "data:\n  path: nowhere/at-all.jsonl\n",
                              ["data.path", "not found"]),
        "no-model.yaml": ("recipe's model path is missing",
                          f"model:\n  name: {json.dumps(str(folder / 'no-model'))}\ndata:\n  path: {data}\n",
                          ["no-model", "neither 'embedded'"]),
        "no-config-model.yaml": ("recipe's model folder has no config.json",
                                 f"model:\n  name: {json.dumps(str(folder / 'no-config-model'))}\ndata:\n  path: {data}\n",
                                 ["no-config-model", "no config.json"]),
        "bad-format.yaml": ("recipe names an unknown format", f"data:\n  path: {data}\n  format: tsv\n",
                            ["data.format", "'tsv'"]),
        "bad-template.yaml": ("recipe has a broken friction template",
                              f"data:\n  path: {data}\n  format: friction\n  format_template: '<think>{{x}}</think>'\n",
                              ["data.format_template", "thought_stream"]),
    }
    cases = []
    for name, (label, text, says) in texts.items():
        if text is None:
            (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + random.Random(3).randbytes(64))
        else:
            (folder / name).write_text(text)
        cases.append(Case(label, "", None, train_says=[str(folder / name), *says], recipe=name))
    (folder / "folder.yaml").mkdir()
    cases.append(Case("recipe is a folder", "", None, train_says=[str(folder / "folder.yaml"), "a folder"], recipe="folder.yaml"))
    cases.append(Case("recipe file is missing", "", None, train_says=["missing.yaml", "not found"], recipe="missing.yaml"))
    return cases


def build(folder: Path) -> list[Case]:
    """Write the whole corpus into `folder`; every dataset case also gets a recipe pointing at it."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = _datasets(folder)
    for case in cases:
        case.recipe = f"recipe-{case.path.replace('/', '-')}.yaml"
        (folder / case.recipe).write_text(f"name: corpus\nmodel:\n  name: embedded\ndata:\n  path: {json.dumps(str(folder / case.path))}\n"
                                          "  max_length: 64\ntraining:\n  max_steps: 2\n")
        if case.train_rc == 2 and not case.train_says:
            case.train_says = ["data.path", *case.check_says[:1]]
    return cases + _recipes(folder)
