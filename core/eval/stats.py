"""Uncertainty for a base-vs-tuned change measured on the same prompts.

A paired bootstrap: resample the prompts (with replacement), keep each prompt's pair of scores
together, and read the 2.5th and 97.5th percentiles of the mean difference; a change is "beyond
its uncertainty" when that interval leaves out zero. An exact two-sided sign test (wins, losses,
ties) is given beside it, since with 15 questions the interval alone is easy to over-read. This
module knows nothing about prompts, answers or models: it takes lists of numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Change:
    n: int  # prompts with a score on both sides
    base: float | None
    tuned: float | None
    delta: float | None  # tuned minus base, on the paired prompts
    low: float | None  # 95% paired bootstrap interval of delta
    high: float | None
    wins: int  # prompts where tuned scored higher
    losses: int
    ties: int
    sign_p: float | None  # exact two-sided sign test over wins and losses

    @property
    def beyond_uncertainty(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return asdict(self) | {"beyond_uncertainty": self.beyond_uncertainty}


def paired(base: list, tuned: list) -> tuple[list[float], list[float]]:
    """The pairs where both sides have a number (None is 'not measured for this prompt')."""
    pairs = [(float(b), float(t)) for b, t in zip(base, tuned) if b is not None and t is not None]
    return [b for b, _ in pairs], [t for _, t in pairs]


def bootstrap_interval(differences: list[float], *, resamples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `differences`, resampled with a fixed seed.
    >>> bootstrap_interval([1.0] * 10)
    (1.0, 1.0)
    """
    import numpy as np

    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return round(float(low), 4), round(float(high), 4)


def sign_test(wins: int, losses: int) -> float | None:
    """Exact two-sided binomial p-value of wins vs losses (ties left out); None without either.
    >>> round(sign_test(9, 1), 4)
    0.0215
    """
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def change(base: list, tuned: list, *, resamples: int = 2000, seed: int = 0) -> Change:
    """The change from `base` to `tuned` (per-prompt scores in the same order), with its uncertainty."""
    b, t = paired(base, tuned)
    if not b:
        return Change(0, None, None, None, None, None, 0, 0, 0, None)
    differences = [y - x for x, y in zip(b, t)]
    wins = sum(1 for d in differences if d > 0)
    losses = sum(1 for d in differences if d < 0)
    low, high = bootstrap_interval(differences, resamples=resamples, seed=seed)
    return Change(len(b), round(sum(b) / len(b), 4), round(sum(t) / len(t), 4),
                  round(sum(differences) / len(differences), 4), low, high, wins, losses,
                  len(differences) - wins - losses, sign_test(wins, losses))


BETTER_WORSE = "prompts tuned better / worse / same"


def better_worse(found: Change, prefer: str | None) -> dict:
    """Prompts where the tuned answer is better, worse or the same by the metric's own direction
    (`prefer`: more | fewer): a higher cut-off rate or latency is worse, never a win. A metric with
    no better direction (words per answer) has no better or worse."""
    if prefer is None:
        return {"better": None, "worse": None, "same": found.ties}
    better, worse = (found.wins, found.losses) if prefer == "more" else (found.losses, found.wins)
    return {"better": better, "worse": worse, "same": found.ties}
