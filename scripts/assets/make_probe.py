"""Write the studio's offline general-skills probe (assets/benchmarks/studio_probe/*.jsonl): a few
hundred items in four parts, written for this project, that lm-evaluation-harness scores through
the task YAML beside them. Seeded, so running it again writes the same files.

    .venv/bin/python scripts/assets/make_probe.py

- arithmetic: sums, differences and small products, four numeric choices (near misses)
- facts: everyday facts, four choices
- reading: a two-sentence story and a question about it, four choices
- format: an instruction on the reply's form ("only yes or no", "only the number"), answered
  with a short generation and scored by exact match
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "assets" / "benchmarks" / "studio_probe"

FACTS = [
    ("How many days are there in a week?", "seven", ["five", "ten", "twelve"]),
    ("What colour is a ripe banana?", "yellow", ["blue", "purple", "black"]),
    ("Which animal says moo?", "a cow", ["a cat", "a duck", "a horse"]),
    ("What do bees make?", "honey", ["milk", "silk", "wool"]),
    ("Which season comes after winter?", "spring", ["autumn", "summer", "winter"]),
    ("How many legs does a spider have?", "eight", ["six", "four", "ten"]),
    ("What is frozen water called?", "ice", ["steam", "sand", "glass"]),
    ("Which planet do we live on?", "Earth", ["Mars", "Venus", "Jupiter"]),
    ("What do you use to cut paper?", "scissors", ["a spoon", "a pillow", "a towel"]),
    ("Where do fish live?", "in water", ["in trees", "in the desert", "in clouds"]),
    ("How many hours are there in a day?", "twenty-four", ["twelve", "sixty", "ten"]),
    ("What is the opposite of hot?", "cold", ["warm", "loud", "tall"]),
    ("Which meal is eaten in the morning?", "breakfast", ["dinner", "supper", "midnight snack"]),
    ("What gas do people need to breathe?", "oxygen", ["helium", "neon", "carbon monoxide"]),
    ("How many months are there in a year?", "twelve", ["ten", "seven", "fifteen"]),
    ("What shape has three sides?", "a triangle", ["a square", "a circle", "a hexagon"]),
    ("Which animal has a trunk?", "an elephant", ["a giraffe", "a rabbit", "a snake"]),
    ("What do plants need from the sun?", "light", ["noise", "salt", "plastic"]),
    ("What is the capital of France?", "Paris", ["Berlin", "Madrid", "Rome"]),
    ("What is the capital of Japan?", "Tokyo", ["Beijing", "Seoul", "Bangkok"]),
    ("What is the largest ocean on Earth?", "the Pacific", ["the Atlantic", "the Indian", "the Arctic"]),
    ("How many continents are there?", "seven", ["three", "five", "nine"]),
    ("What do cows drink?", "water", ["milk", "oil", "juice"]),
    ("Which instrument has black and white keys?", "a piano", ["a drum", "a flute", "a violin"]),
    ("What do you call a baby dog?", "a puppy", ["a kitten", "a calf", "a foal"]),
    ("What colour do you get by mixing blue and yellow?", "green", ["red", "orange", "purple"]),
    ("Which body part do you use to see?", "the eyes", ["the ears", "the nose", "the elbows"]),
    ("What falls from clouds when it rains?", "water", ["sand", "leaves", "feathers"]),
    ("How many minutes are there in an hour?", "sixty", ["thirty", "one hundred", "twenty"]),
    ("What is the boiling point of water at sea level in Celsius?", "100 degrees", ["50 degrees", "0 degrees",
                                                                                     "212 degrees"]),
    ("Which bird is a symbol of peace?", "the dove", ["the crow", "the vulture", "the ostrich"]),
    ("What do you wear on your feet?", "shoes", ["gloves", "hats", "scarves"]),
    ("Which is the closest star to Earth?", "the Sun", ["Sirius", "Polaris", "Vega"]),
    ("What is the main language spoken in Brazil?", "Portuguese", ["Spanish", "French", "Italian"]),
    ("What do you call a person who treats sick animals?", "a vet", ["a pilot", "a baker", "a judge"]),
    ("Which fruit is known for keeping the doctor away?", "an apple", ["a lemon", "a plum", "a melon"]),
    ("How many wheels does a bicycle have?", "two", ["three", "four", "one"]),
    ("What is the opposite of up?", "down", ["left", "over", "near"]),
    ("Which month comes after June?", "July", ["May", "August", "March"]),
    ("What is used to write on a blackboard?", "chalk", ["ink", "soap", "paint thinner"]),
    ("Which animal is known as the king of the jungle?", "the lion", ["the mouse", "the sheep", "the frog"]),
    ("What is the largest planet in our solar system?", "Jupiter", ["Mercury", "Mars", "Earth"]),
    ("Who wrote Romeo and Juliet?", "William Shakespeare", ["Charles Dickens", "Jane Austen", "Mark Twain"]),
    ("What is the freezing point of water in Celsius?", "0 degrees", ["10 degrees", "100 degrees", "-40 degrees"]),
    ("What colour is grass?", "green", ["pink", "white", "orange"]),
    ("Which direction does the sun rise in?", "the east", ["the west", "the north", "the south"]),
    ("How many sides does a square have?", "four", ["three", "five", "six"]),
    ("What do you call frozen rain that falls as white flakes?", "snow", ["fog", "dew", "thunder"]),
    ("What does a thermometer measure?", "temperature", ["weight", "distance", "time"]),
    ("Which organ pumps blood through the body?", "the heart", ["the lungs", "the liver", "the stomach"]),
    ("What is the capital of Italy?", "Rome", ["Milan", "Venice", "Naples"]),
    ("What do caterpillars turn into?", "butterflies", ["bees", "spiders", "snails"]),
    ("Which is a vegetable?", "a carrot", ["a strawberry", "a banana", "a cherry"]),
    ("What do you call the person who flies a plane?", "a pilot", ["a sailor", "a chef", "a farmer"]),
    ("What is the tallest animal?", "the giraffe", ["the horse", "the dog", "the penguin"]),
    ("How many players are on a football (soccer) team on the field?", "eleven", ["five", "nine", "fifteen"]),
    ("What is the currency of the United States?", "the dollar", ["the euro", "the yen", "the rupee"]),
    ("Which gas do plants take in from the air?", "carbon dioxide", ["oxygen", "helium", "hydrogen"]),
    ("What is the opposite of empty?", "full", ["open", "quiet", "short"]),
    ("Where does the Pope live?", "Vatican City", ["London", "Moscow", "Cairo"]),
]

NAMES = ["Maria", "Tom", "Aisha", "Ken", "Lena", "Omar", "Sofia", "Ravi", "Nora", "Pablo", "Mei", "Jonas"]
THINGS = ["keys", "book", "phone", "wallet", "glasses", "umbrella", "hat", "letter"]
PLACES = ["the drawer", "the kitchen table", "the blue bag", "the car", "the shelf", "the garden shed",
          "the coat pocket", "the bedroom"]
COLOURS = ["red", "green", "yellow", "white", "black", "orange"]
PETS = ["dog", "cat", "parrot", "rabbit", "turtle", "goldfish"]

YES_NO = [("Is fire hot?", "yes"), ("Is ice hot?", "no"), ("Can fish swim?", "yes"), ("Can a stone fly?", "no"),
          ("Is the sky usually blue on a clear day?", "yes"), ("Do cats bark?", "no"), ("Is seven more than three?", "yes"),
          ("Is two more than nine?", "no"), ("Is the sun a star?", "yes"), ("Is a banana a vegetable?", "no"),
          ("Do birds have feathers?", "yes"), ("Is snow warm?", "no"), ("Is Paris in France?", "yes"),
          ("Is Tokyo in Brazil?", "no"), ("Do people need water to live?", "yes"), ("Does a triangle have four sides?", "no"),
          ("Is a week seven days long?", "yes"), ("Can a car drive on the moon without help?", "no"),
          ("Is milk usually white?", "yes"), ("Do trees grow underwater in the sea?", "no")]


def arithmetic(rng: random.Random, n: int = 80) -> list[dict]:
    items = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            question, answer = f"What is {a} + {b}?", a + b
        elif kind == 1:
            a, b = rng.randint(50, 199), rng.randint(10, 49)
            question, answer = f"What is {a} - {b}?", a - b
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            question, answer = f"What is {a} x {b}?", a * b
        wrong = set()
        while len(wrong) < 3:
            miss = answer + rng.choice([-10, -2, -1, 1, 2, 10, 3, -3])
            if miss != answer and miss >= 0:
                wrong.add(miss)
        items.append(_choices(rng, question, str(answer), [str(w) for w in sorted(wrong)]))
    return items


def facts(rng: random.Random) -> list[dict]:
    return [_choices(rng, question, right, wrong) for question, right, wrong in FACTS]


def reading(rng: random.Random, n: int = 60) -> list[dict]:
    items = []
    for i in range(n):
        name = rng.choice(NAMES)
        if i % 2 == 0:
            thing, other = rng.sample(THINGS, 2)
            place, elsewhere, *rest = rng.sample(PLACES, 4)
            story = f"{name} put the {thing} in {place} and the {other} in {elsewhere}."
            question = f"Where did {name} put the {thing}?"
            items.append(_choices(rng, f"{story}\n{question}", f"in {place}", [f"in {p}" for p in (elsewhere, *rest)]))
        else:
            pet = rng.choice(PETS)
            colour, *others = rng.sample(COLOURS, 4)
            friend = rng.choice([x for x in NAMES if x != name])
            story = f"{name} has a {colour} {pet}. {friend} has a {others[0]} one."
            question = f"What colour is {name}'s {pet}?"
            items.append(_choices(rng, f"{story}\n{question}", colour, others))
    return items


def formatting(rng: random.Random) -> list[dict]:
    items = [{"question": f"Reply with only the word yes or no.\nQuestion: {q}", "target": a} for q, a in YES_NO]
    for _ in range(20):
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        items.append({"question": f"Reply with only the number, nothing else.\nQuestion: What is {a} + {b}?",
                      "target": str(a + b)})
    return items


def _choices(rng: random.Random, question: str, right: str, wrong: list[str]) -> dict:
    options = [right, *wrong]
    rng.shuffle(options)
    return {"question": question, "choices": options, "answer": options.index(right)}


def main() -> None:
    rng = random.Random(2026)
    parts = {"arithmetic": arithmetic(rng), "facts": facts(rng), "reading": reading(rng), "format": formatting(rng)}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, items in parts.items():
        rows = [{"id": f"{name}-{i + 1:03d}", **item} for i, item in enumerate(items)]
        (OUT / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"{name}: {len(rows)} items")


if __name__ == "__main__":
    main()
