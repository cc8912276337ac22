"""Seeds as pure functions of integers: every random draw in training is keyed by (seed, ...).

Shared by the training loop (data order, augmentation, per-step draws) and by methods called
outside it (``StepInfo.at``), so both draw exactly the same numbers.
"""

from __future__ import annotations

import torch

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads nearby seeds apart


def mix_seed(*parts: int) -> int:
    """Deterministic 63-bit seed from integers (stable across processes and Python versions)."""
    value = 0
    for part in parts:
        value = (value * _MIX + int(part) + 1) % (1 << 63)
    return value


def seeded_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with :func:`mix_seed` of ``parts``."""
    generator = torch.Generator()
    generator.manual_seed(mix_seed(*parts))
    return generator
