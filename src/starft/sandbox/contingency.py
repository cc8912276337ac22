"""Class x marker contingency tables at a target Cramér's V, built as RaVL's generator does.

RaVL's synthetic settings (``generate_spurious_mnist.py`` in its release) fix how strongly a
spurious feature goes with one class by Cramér's V of the class x feature table: start from the
fully confounded table (every image of the spurious class has the feature, no other image does:
V = 1), then move a few samples per class toward independence until χ² ≤ V²·N. For a C x 2 table
Cramér's V is sqrt(χ² / N), so the loop stops at the first table whose V is at or just below the
target; the achieved V is recorded, never assumed.

Moves: every round visits the classes in random order and moves 1-3 samples of each toward the
count the current overall feature rate would give it (the spurious class loses, the others gain).
The stop test runs after every class's move rather than after a whole round, so the achieved V
lands within one small move of the target (RaVL checks per round; this keeps the same path,
stopping at a finer step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from starft.errors import StarftError

_SPREAD = 20  # per-class counts are N/C + U(-20, 20), as in RaVL's generator
_MAX_ROUNDS = 1_000_000


@dataclass(frozen=True)
class MarkerTable:
    """Per-class counts, how many of each carry the marker, and the table's Cramér's V."""

    counts: np.ndarray  # (C,) int64 images per class
    marked: np.ndarray  # (C,) int64 of them with the marker
    cramers_v: float


def cramers_v(counts: np.ndarray, marked: np.ndarray) -> float:
    """Cramér's V of the C x 2 table (marked, unmarked) per class: sqrt(χ² / N)."""
    table = np.stack([marked, counts - marked], 1).astype(np.float64)
    total = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    return float(np.sqrt(terms.sum() / total))


def class_counts(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """RaVL's per-class sizes: N/C + U(-20, 20) each (so the total is near, not exactly, N)."""
    if n // num_classes <= _SPREAD:
        raise StarftError(
            f"marker table: n={n} gives {n // num_classes} images per class, which the "
            f"±{_SPREAD} spread could empty; use n > {(_SPREAD + 1) * num_classes}"
        )
    return n // num_classes + rng.integers(-_SPREAD, _SPREAD + 1, size=num_classes)


def confounded_table(
    counts: np.ndarray, spurious: int, target_v: float, rng: np.random.Generator
) -> MarkerTable:
    """The table at Cramér's V just at or below ``target_v`` (``0 < target_v <= 1``)."""
    counts = np.asarray(counts, dtype=np.int64)
    if not 0 <= spurious < len(counts):
        raise StarftError(f"marker table: spurious class {spurious} outside [0, {len(counts)})")
    if not 0.0 < target_v <= 1.0:
        raise StarftError(f"marker table: Cramér's V must lie in (0, 1], got {target_v!r}")
    marked = np.zeros_like(counts)
    marked[spurious] = counts[spurious]
    rounds = 0
    while cramers_v(counts, marked) > target_v:
        rounds += 1
        if rounds > _MAX_ROUNDS:  # independence (V = 0) is reachable, so this means a bug
            raise StarftError(f"marker table: V {target_v} not reached in {_MAX_ROUNDS} rounds")
        for c in rng.permutation(len(counts)):
            step = int(rng.integers(1, 4))
            goal = counts[c] * marked.sum() / counts.sum()  # its count under independence
            if marked[c] > goal:
                marked[c] -= min(step, int(np.ceil(marked[c] - goal)))
            elif marked[c] < goal:
                marked[c] += min(step, int(np.ceil(goal - marked[c])))
            if cramers_v(counts, marked) <= target_v:
                break
    return MarkerTable(counts=counts, marked=marked, cramers_v=cramers_v(counts, marked))


def assign_markers(labels: np.ndarray, marked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean per row: ``marked[c]`` rows of class ``c``, chosen uniformly at random."""
    labels = np.asarray(labels)
    present = np.zeros(len(labels), dtype=bool)
    for c, count in enumerate(np.asarray(marked)):
        rows = np.flatnonzero(labels == c)
        if count > len(rows):
            raise StarftError(f"marker table: {count} marked rows for class {c} of {len(rows)}")
        present[rng.choice(rows, size=int(count), replace=False)] = True
    return present


def balanced_markers(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Evaluation presence: half of every class marked (p = 0.5, independent of the class)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    halves = counts // 2 + (rng.random(len(counts)) < (counts % 2) / 2)
    return assign_markers(labels, halves, rng)
