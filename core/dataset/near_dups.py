"""Near duplicates: records that say the same thing with a few words changed, found with MinHash
over word 3-shingles and LSH banding, as large-scale deduplication does it (datasketch's
MinHashLSH, the BigCode / SlimPajama dedup recipes).

What is compared: the words a record's turns say (system turns left out: a shared system prompt
is meant to repeat), lower-cased, punctuation dropped. Every record gets a 64-value signature;
records that agree on a whole band of it are candidates, and a candidate pair counts when the
share of equal signature values (the estimated Jaccard similarity of their 3-shingle sets) is at
least the threshold. Connected pairs form clusters; one record per cluster is proposed to keep.

Speed: the per-record work in Python is one `encode` and `translate`; words, shingles and
signatures are computed for a thousand records at a time in numpy (a million records cost a few
seconds, a signature 64 bytes). The permutations are `(a * x) ^ b` on 32-bit shingle hashes
that a 64-bit mix has already spread; tests compare the estimates with datasketch's MinHash.
This module knows nothing about readers, reports or the UI.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

NUM_PERM = 64
SHINGLE = 3
_BATCH_BYTES = 256 << 10
_MASK64 = (1 << 64) - 1
_P = 0x100000001B3  # the FNV prime: odd, so invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)

# Lower-case ASCII letters and digits stay, other ASCII bytes become spaces; UTF-8 bytes of other
# scripts (>= 128) stay, so words in any language keep their letters.
_TABLE = bytes((c + 32 if 65 <= c <= 90 else c) if (c >= 128 or chr(c).isalnum()) else 32 for c in range(256))

_BIN_BITS = 6  # NUM_PERM == 2 ** _BIN_BITS bins
_BIN_INDEX = np.arange(NUM_PERM, dtype=np.uint64)
_K = [np.uint64(k) for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)]
_powers: dict[str, np.ndarray] = {}


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i modulo 2**64 for i < n (uint64 arithmetic wraps modulo 2**64)."""
    if len(_powers.get("p", ())) < n:
        size = max(n, 2 * _BATCH_BYTES)
        with np.errstate(over="ignore"):
            for name, base in (("p", _P), ("inv", _P_INV)):
                _powers[name] = np.concatenate([[np.uint64(1)], np.cumprod(np.full(size - 1, base, dtype=np.uint64))])
    return _powers["p"][:n], _powers["inv"][:n]


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def shingles(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every word 3-shingle as uint32, the index of the text it belongs to), in order.
    A text of one or two words gives one shingle of its words; a text without words gives none."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    text_start = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=text_start[1:])
    raw = np.frombuffer(b" ".join(texts).translate(_TABLE), dtype=np.uint8)  # one space between texts
    letter = raw != 32
    if not letter.any():
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    edges = np.diff(np.concatenate([[False], letter, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    powers, inverse = _power_tables(len(raw))
    with np.errstate(over="ignore"):
        prefix = np.cumsum(raw.astype(np.uint64) * powers)
        before = np.where(starts > 0, prefix[np.maximum(starts - 1, 0)], np.uint64(0))
        words = _mix((prefix[ends - 1] - before) * inverse[starts] + (ends - starts).astype(np.uint64))
    owner = np.searchsorted(text_start, starts, side="right") - 1
    count = np.bincount(owner, minlength=n)
    padded_words = np.concatenate([words, np.zeros(SHINGLE - 1, np.uint64)])
    padded_owner = np.concatenate([owner, np.full(SHINGLE - 1, -1)])
    index = np.arange(len(words))
    second = np.where(padded_owner[index + 1] == owner, padded_words[index + 1], np.uint64(0))
    third_same = padded_owner[index + 2] == owner
    third = np.where(third_same, padded_words[index + 2], np.uint64(0))
    first_of_text = np.concatenate([[True], owner[1:] != owner[:-1]])
    keep = third_same | (first_of_text & (count[owner] < SHINGLE))
    with np.errstate(over="ignore"):
        hashed = _mix(words * _K[0] ^ second * _K[1] ^ third * _K[2])
    return (hashed[keep] >> np.uint64(32)).astype(np.uint32), owner[keep]


def signatures(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(MinHash signatures, one row of NUM_PERM bytes per text; shingle counts per text).

    One permutation hashing with densification by rotation (Li, Owen and Zhang 2012; Shrivastava
    and Li 2014): a shingle's hash picks one of NUM_PERM bins by its top bits, each bin keeps its
    smallest value, and an empty bin borrows the value of the next filled bin to its right, marked
    by the distance, so two texts agree on a bin with probability equal to their Jaccard
    similarity, at one hash per shingle instead of NUM_PERM. A byte of each value is kept (b-bit
    MinHash): equal-by-chance bytes are corrected for in `similarity`."""
    hashes, owner = shingles(texts)
    n = len(texts)
    signature = np.full((n, NUM_PERM), 255, dtype=np.uint8)
    counts = np.bincount(owner, minlength=n).astype(np.uint32)
    if not len(hashes):
        return signature, counts
    bins = (hashes >> np.uint32(32 - _BIN_BITS)).astype(np.intp)
    table = np.full(n * NUM_PERM, 0xFFFFFFFF, dtype=np.uint32)
    np.minimum.at(table, owner * NUM_PERM + bins, hashes & np.uint32((1 << (32 - _BIN_BITS)) - 1))
    filled = np.zeros(n, dtype=np.uint64)
    np.bitwise_or.at(filled, owner, np.uint64(1) << bins.astype(np.uint64))
    some = np.flatnonzero(filled)
    with np.errstate(over="ignore"):
        mask = filled[some, None]
        rotated = (mask >> _BIN_INDEX) | (mask << ((np.uint64(NUM_PERM) - _BIN_INDEX) & np.uint64(NUM_PERM - 1)))
        distance = np.bitwise_count((rotated & (~rotated + np.uint64(1))) - np.uint64(1))  # trailing zeros
        source = (_BIN_INDEX.astype(np.intp) + distance.astype(np.intp)) & (NUM_PERM - 1)
        values = np.take_along_axis(table.reshape(n, NUM_PERM)[some], source, axis=1)
        values += distance.astype(np.uint32) * np.uint32(0x9E3779B1)
        signature[some] = ((values * np.uint32(0x2545F491)) >> np.uint32(24)).astype(np.uint8)
    return signature, counts


def similarity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of signature rows (b-bit correction: two different minima
    share their low byte one time in 256)."""
    agree = (left == right).mean(axis=-1)
    return np.clip((agree - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)


@dataclass
class Signed:
    """What the clustering needs of each record: its signature, its shingle count (0: no words,
    takes part in nothing) and a hash of the digits it holds (records that differ in their numbers
    are different questions or answers, however alike their words: 5 shells a day or 22)."""

    signature: np.ndarray  # (records, NUM_PERM) uint8
    counts: np.ndarray  # (records,) uint32
    numbers: np.ndarray  # (records,) int64

    @classmethod
    def concat(cls, parts: list[Signed]) -> Signed:
        if not parts:
            return cls(np.zeros((0, NUM_PERM), np.uint8), np.zeros(0, np.uint32), np.zeros(0, np.int64))
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in ("signature", "counts", "numbers")))


_NOT_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)


class Signer:
    """Collects signatures for a stream of texts, a batch at a time."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._numbers = array("q")
        self._parts: list[Signed] = []

    def add(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        self._pending.append(data)
        self._numbers.append(hash(data.translate(None, _NOT_DIGITS)))
        self._pending_bytes += len(data)
        if self._pending_bytes >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            numbers = np.frombuffer(self._numbers, dtype=np.int64).copy()
            self._parts.append(Signed(*signatures(self._pending), numbers))
            self._pending, self._pending_bytes, self._numbers = [], 0, array("q")

    def result(self) -> Signed:
        """Every text added, in order."""
        self._flush()
        whole = Signed.concat(self._parts)
        self._parts = [whole]
        return whole


def bands_for(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) whose S-curve best separates pairs above and below `threshold`
    (false positives and misses weighted alike, as datasketch's MinHashLSH chooses them)."""
    grid = np.linspace(0, 1, 201)
    best, chosen = None, (num_perm // 4, 4)
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        caught = 1 - (1 - grid ** rows) ** bands
        loss = np.trapezoid(np.where(grid < threshold, caught, 1 - caught), grid)
        if best is None or loss < best:
            best, chosen = loss, (bands, rows)
    return chosen


@dataclass
class Cluster:
    rows: list[int]  # positions, in order
    keep: int  # the position proposed to keep
    similarity: float  # the lowest estimated similarity of a joined pair


def clusters(signed: Signed, threshold: float, lengths: np.ndarray | None = None) -> list[Cluster]:
    """Groups of records whose pairs are at least `threshold` similar and hold the same numbers
    (connected through such pairs), largest first; records without words take part in none. The
    record proposed to keep is the longest (`lengths`, e.g. reply words), the first of equals."""
    if not 0 < threshold <= 1:
        raise ValueError(f"near-duplicate threshold {threshold}: use a similarity above 0 and at most 1 (e.g. 0.7)")
    signature, usable = signed.signature, signed.counts > 0
    n = len(signature)
    if n < 2:
        return []
    bands, rows = bands_for(threshold, signature.shape[1])
    left, right = [], []
    for band in range(bands):
        order, ordered = _band_order(signature[:, band * rows:(band + 1) * rows], band)
        same = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        if not len(same):
            continue
        group_start = np.maximum.accumulate(np.where(np.concatenate([[True], ordered[1:] != ordered[:-1]]),
                                                     np.arange(len(ordered)), 0))
        left.append(order[same])
        right.append(order[group_start[same]])
    if not left:
        return []
    pairs = np.stack([np.concatenate(left), np.concatenate(right)], axis=1)
    pairs = pairs[usable[pairs[:, 0]] & usable[pairs[:, 1]]  # rows without words all look alike: never a pair
                  & (signed.numbers[pairs[:, 0]] == signed.numbers[pairs[:, 1]])]
    pairs = np.unique(pairs, axis=0)
    scores = similarity(signature[pairs[:, 0]], signature[pairs[:, 1]])
    joined = scores >= threshold - 1e-9
    pairs, scores = pairs[joined], scores[joined]
    if not len(pairs):
        return []
    labels = _components(n, pairs)
    members = np.unique(pairs)
    found: dict[int, list[int]] = {}
    for position in members.tolist():
        found.setdefault(int(labels[position]), []).append(position)
    lowest: dict[int, float] = {}
    for (a, _), score in zip(pairs.tolist(), scores.tolist()):
        label = int(labels[a])
        lowest[label] = min(lowest.get(label, 1.0), score)
    result = []
    for label, positions in found.items():
        keep = max(positions, key=lambda p: (int(lengths[p]) if lengths is not None else 0, -p))
        result.append(Cluster(sorted(positions), keep, round(lowest[label], 3)))
    return sorted(result, key=lambda c: (-len(c.rows), c.rows[0]))


def _band_order(block: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """(row order sorted by band key, the keys in that order): rows with equal keys agree on the
    whole band. A band of 8 one-byte values is its own 64-bit key."""
    if block.shape[1] == 8:
        keys = np.ascontiguousarray(block).view(np.uint64).ravel()
    else:
        weights = np.uint64(1) << (np.arange(block.shape[1], dtype=np.uint64) * np.uint64(8) % np.uint64(64))
        with np.errstate(over="ignore"):
            keys = _mix((block.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64) + np.uint64(band))
    order = np.argsort(keys)
    return order, keys[order]


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component labels (the smallest position of each component) over `pairs`."""
    labels = np.arange(n)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        low = np.minimum(labels[a], labels[b])
        changed = False
        for side in (a, b):
            before = labels[side]
            np.minimum.at(labels, side, low)
            changed |= bool((labels[side] != before).any())
        labels = labels[labels]  # pointer jumping
        if not changed:
            return labels
