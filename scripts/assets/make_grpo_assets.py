"""Write the GRPO prompt sets in assets/ (deterministic; rerun to regenerate).

- grpo_math.jsonl: 400 arithmetic word problems (two or three steps, whole-number answers) in
  the messages format with an `answer` field, for the GPU recipe's numeric answer reward.
- grpo_format.jsonl: 24 short everyday questions with a one-word reference answer, for the CPU
  recipe whose format reward teaches the embedded model to open with "The answer is".

Run: python scripts/assets/make_grpo_assets.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets"
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo", "Nia"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells"]

TEMPLATES = [
    (lambda r, n, i: (a := r.randint(12, 90), b := r.randint(2, 9), c := r.randint(1, a - 1),
                      (f"{n} has {a} {i}. A friend gives {n} {b} bags with {b} {i} in each, and then {n} gives away {c}. "
                      f"How many {i} does {n} have now?"), a + b * b - c)),
    (lambda r, n, i: (a := r.randint(3, 12), b := r.randint(4, 15), c := r.randint(2, 6),
                      f"A box holds {a} rows of {b} {i}. {n} buys {c} boxes. How many {i} is that?", a * b * c)),
    (lambda r, n, i: (b := r.randint(3, 9), q := r.randint(4, 20), extra := r.randint(1, 30),
                      (f"{n} shares {b * q} {i} equally among {b} friends, then finds {extra} more and keeps them. "
                      f"How many {i} does each friend get, plus the ones {n} kept?"), q + extra)),
    (lambda r, n, i: (p := r.randint(2, 9), k := r.randint(3, 12), paid := r.randint(p * k + 1, p * k + 60),
                      (f"{i.capitalize()} cost {p} dollars each. {n} buys {k} of them and pays with {paid} dollars. "
                      f"How much change does {n} get?"), paid - p * k)),
    (lambda r, n, i: (d := r.randint(5, 30), w := r.randint(2, 6),
                      f"{n} collects {d} {i} every day for {w} weeks. How many {i} is that?", d * 7 * w)),
]

FORMAT_QUESTIONS = [
    ("What is the capital of France?", "Paris"), ("What color is grass?", "green"),
    ("How many legs does a cat have?", "four"), ("What is the opposite of hot?", "cold"),
    ("Which planet do we live on?", "Earth"), ("What is frozen water called?", "ice"),
    ("What animal says moo?", "cow"), ("What is the capital of Italy?", "Rome"),
    ("What color is the sky on a clear day?", "blue"), ("How many days are in a week?", "seven"),
    ("What do bees make?", "honey"), ("What is the largest ocean?", "Pacific"),
    ("What gas do plants take in?", "carbon dioxide"), ("What is the capital of Japan?", "Tokyo"),
    ("What do you call a baby dog?", "puppy"), ("Which season comes after winter?", "spring"),
    ("What is the boiling point of water in Celsius?", "100"), ("What is 3 plus 4?", "7"),
    ("What is the opposite of up?", "down"), ("What shape has three sides?", "triangle"),
    ("What is the capital of Spain?", "Madrid"), ("What metal is a coin often made of?", "copper"),
    ("What do cows drink?", "water"), ("Which star is closest to Earth?", "Sun"),
]
# The embedded model opens with "The answer is" in about one reply in five (measured on 16 samples:
# 3); with "Answer:" and no example it never did (0 of 12), and with an example nearly always (13
# of 16). A reward needs spread within a group to teach anything, so the first is the demo.
FORMAT_SYSTEM = "Start your reply with 'The answer is' and give the answer in a few words."


def math_rows(count: int = 400, seed: int = 17) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        template = TEMPLATES[i % len(TEMPLATES)]
        *_, question, answer = template(rng, rng.choice(NAMES), rng.choice(ITEMS))
        rows.append({"id": f"math-{i + 1:03d}", "messages": [{"role": "user", "content": question}], "answer": str(answer)})
    return rows


def format_rows() -> list[dict]:
    return [{"id": f"fmt-{i + 1:02d}", "messages": [{"role": "system", "content": FORMAT_SYSTEM},
                                                   {"role": "user", "content": q}], "answer": a}
            for i, (q, a) in enumerate(FORMAT_QUESTIONS)]


def write(name: str, rows: list[dict]) -> None:
    with open(ASSETS / name, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    write("grpo_math.jsonl", math_rows())
    write("grpo_format.jsonl", format_rows())
