"""Near duplicates (MinHash over word 3-shingles, LSH bands): the estimates agree with
datasketch's MinHash, planted paraphrases are found as clusters with one record to keep, and
look-alikes that are not the same sample (a shared system prompt, a different question in the
same template at a strict threshold) are not."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from datasketch import MinHash

from core.dataset import checks, near_dups
from core.dataset.pages import select

VOCABULARY = [f"{a}{b}" for a in ("sun", "rain", "stone", "river", "glass", "paper", "iron", "salt", "wool", "clay")
              for b in ("field", "house", "road", "song", "light", "bridge", "market", "garden", "letter", "engine")]


def _sentence(rng: random.Random, words: int = 40) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def _shingles(text: str) -> set[str]:
    words = text.lower().split()
    return {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}


def test_estimates_agree_with_datasketch():
    rng = random.Random(7)
    ours, reference = [], []
    for _ in range(150):
        base = _sentence(rng, 60).split()
        other = list(base)
        for _ in range(rng.randint(0, 15)):
            other[rng.randrange(len(other))] = rng.choice(VOCABULARY)
        left, right = " ".join(base), " ".join(other)
        truth = len(_shingles(left) & _shingles(right)) / len(_shingles(left) | _shingles(right))
        signature, counts = near_dups.signatures([left.encode(), right.encode()])
        assert counts.tolist() == [58, 58]
        ours.append(float(near_dups.similarity(signature[0], signature[1])) - truth)
        a, b = MinHash(num_perm=near_dups.NUM_PERM), MinHash(num_perm=near_dups.NUM_PERM)
        a.update_batch([s.encode() for s in _shingles(left)])
        b.update_batch([s.encode() for s in _shingles(right)])
        reference.append(a.jaccard(b) - truth)
    assert abs(np.mean(ours)) < 0.02  # no bias
    assert np.mean(np.abs(ours)) < 1.3 * np.mean(np.abs(reference)) + 0.01  # as close to the truth as datasketch


def test_words_ignore_case_and_punctuation_and_short_texts_still_sign():
    signature, counts = near_dups.signatures([b"Hello, World!", b"hello world", b"", b"... !!", "Grüße aus Köln".encode()])
    assert counts.tolist() == [1, 1, 0, 0, 1]  # one or two words: one shingle of them; no words: none
    assert (signature[0] == signature[1]).all() and not (signature[0] == signature[4]).all()


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _chat(question: str, answer: str, system: str | None = None) -> dict:
    turns = [{"role": "system", "content": system}] if system else []
    return {"messages": [*turns, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture
def planted(tmp_path):
    rng = random.Random(3)
    rows = [_chat(_sentence(rng, 12), _sentence(rng, 40)) for _ in range(60)]
    question, answer = rows[4]["messages"][0]["content"], rows[4]["messages"][1]["content"].split()
    for index in (5, 17, 30):  # a paraphrase: three words of the answer changed, and one word more
        answer[index] = "quite-" + answer[index]
    rows.append(_chat(question, " ".join(answer) + " indeed"))  # row 61 ~ row 5
    shouted = rows[10]["messages"][1]["content"].upper().replace(" ", "  ") + "!"
    rows.append(_chat(rows[10]["messages"][0]["content"] + "?", shouted))  # row 62 ~ row 11: case, spacing, punctuation
    rows.append(rows[20])  # row 63: an exact copy of row 21
    return _write(tmp_path / "planted.jsonl", rows)


def test_planted_paraphrases_are_clustered_with_one_record_to_keep(planted):
    report = checks.check(planted)
    clusters = {tuple(c["rows"]): c for c in report.duplicates["clusters"]}
    assert set(clusters) == {(5, 61), (11, 62), (21, 63)}
    assert clusters[(5, 61)]["keep"] == 61  # the longer reply (one word more) is proposed
    assert 0.7 <= clusters[(5, 61)]["similarity"] < 1.0 and clusters[(21, 63)]["similarity"] == 1.0
    assert report.counts["near_duplicates"] == 2 and report.counts["exact_duplicates"] == 1  # a copy counts once, as exact
    near = {entry["row"]: entry for entry in report.duplicates["near"]}
    assert set(near) == {5, 11} or set(near) == {5, 62}
    assert near[5]["same_as_row"] == 61 and near[5]["cluster_size"] == 2
    assert any("keep record 61" in message for message in report.findings[4])
    assert report.problems == 1  # the exact copy; near duplicates are a warning
    assert report.metrics["near_duplicates"]["status"] == "warn"
    # The browser's finding filter picks exactly the records that repeat another.
    shown = select(report, total=report.rows, with_findings="near duplicates")
    assert sorted((shown + 1).tolist()) == sorted(near)


def test_a_strict_threshold_keeps_only_what_differs_in_case_and_spacing(planted):
    report = checks.check(planted, near_threshold=0.95)
    assert {tuple(c["rows"]) for c in report.duplicates["clusters"]} == {(11, 62), (21, 63)}
    assert report.duplicates["threshold"] == 0.95
    with pytest.raises(ValueError, match="threshold 1.5"):
        checks.check(planted, near_threshold=1.5)


def test_a_shared_system_prompt_does_not_make_records_alike(tmp_path):
    rng = random.Random(5)
    system = _sentence(rng, 80)  # longer than each question and answer
    rows = [_chat(_sentence(rng, 10), _sentence(rng, 15), system=system) for _ in range(40)]
    report = checks.check(_write(tmp_path / "system.jsonl", rows))
    assert report.duplicates["clusters"] == [] and report.counts["near_duplicates"] == 0


def test_clusters_join_through_pairs_and_leave_empty_rows_out():
    rng = np.random.default_rng(0)
    signature = rng.integers(0, 256, (10, near_dups.NUM_PERM), dtype=np.uint8)
    signature[3] = signature[1]
    signature[7] = signature[3]
    signature[8] = signature[9] = 255  # rows without words: alike, but never a pair
    usable = np.ones(10, dtype=bool)
    usable[8:] = False
    lengths = np.array([5, 10, 5, 30, 5, 5, 5, 10, 5, 5])
    numbers = np.zeros(10, dtype=np.int64)
    signed = near_dups.Signed(signature, usable.astype(np.uint32), numbers)
    assert [(c.rows, c.keep) for c in near_dups.clusters(signed, 0.7, lengths=lengths)] == [([1, 3, 7], 3)]
    numbers[7] = 1  # record 7 holds other numbers: a different question, however alike
    assert [c.rows for c in near_dups.clusters(signed, 0.7, lengths=lengths)] == [[1, 3]]


def test_the_same_template_with_other_numbers_is_not_a_duplicate():
    signer = near_dups.Signer()
    for text in ("Hana collects 5 shells every day for 4 weeks. How many shells is that?",
                 "Hana collects 22 shells every day for 4 weeks. How many shells is that?",
                 "hana collects 5 shells every day, for 4 weeks: how many shells is that"):
        signer.add(text)
    assert [c.rows for c in near_dups.clusters(signer.result(), 0.7)] == [[0, 2]]


def test_a_run_is_warned_of_near_duplicates_before_start(planted):
    from core import recipes
    from core.train.preflight import dataset_summary

    recipe = recipes.from_dict({"name": "dups", "model": {"name": "embedded"}, "data": {"path": str(planted)}})
    summary = dataset_summary(recipe)
    assert summary["near_duplicates"] == 3  # rows 61, 62 and 63 each repeat an earlier one
    warning = next(w for w in summary["warnings"] if "nearly word for word" in w)
    assert warning.startswith("3 record(s) of planted.jsonl repeat another nearly word for word (3 group(s); "
                              "first: line 5 and line 61)")
