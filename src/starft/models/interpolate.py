"""Weight-space interpolation between a zero-shot and a fine-tuned model (WiSE-FT).

``θ_α = (1 − α)·θ_zero-shot + α·θ_fine-tuned`` for every floating-point tensor of the state dict
(parameters and buffers such as batch-norm statistics), written in that form rather than as
``θ0 + α(θ1 − θ0)`` so that α = 0 and α = 1 give the two endpoints *bit for bit*. Integer buffers
(e.g. batch-norm ``num_batches_tracked``) cannot be averaged; they come from the nearer endpoint.
Both models must have the same architecture: the same keys with the same shapes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import TypeVar

import torch
from torch import Tensor, nn

from starft.errors import StarftError

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in [0, 1], else a one-line error."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise StarftError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise StarftError(f"alpha must be in [0, 1], got {alpha}")
    return float(alpha)


def check_same_architecture(
    zeroshot: Mapping[str, Tensor], finetuned: Mapping[str, Tensor], what: str = "models"
) -> None:
    """Same keys, same shapes, else a one-line error naming the first difference."""
    missing = sorted(set(zeroshot) ^ set(finetuned))
    if missing:
        side = "fine-tuned" if missing[0] in zeroshot else "zero-shot"
        raise StarftError(
            f"{what} differ in architecture: '{missing[0]}' is missing from the {side} weights "
            f"({len(missing)} key(s) differ)"
        )
    for key, value in zeroshot.items():
        if value.shape != finetuned[key].shape:
            raise StarftError(
                f"{what} differ in architecture: '{key}' has shape {tuple(value.shape)} "
                f"(zero-shot) vs {tuple(finetuned[key].shape)} (fine-tuned)"
            )


def interpolate_state_dicts(
    zeroshot: Mapping[str, Tensor], finetuned: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """``(1 − α)·zeroshot + α·finetuned`` per floating tensor (see the module docstring)."""
    alpha = check_alpha(alpha)
    check_same_architecture(zeroshot, finetuned)
    out: dict[str, Tensor] = {}
    for key, theta0 in zeroshot.items():
        theta1 = finetuned[key].to(theta0.device)
        if torch.is_floating_point(theta0):
            out[key] = (1.0 - alpha) * theta0 + alpha * theta1.to(theta0.dtype)
        else:
            out[key] = (theta0 if alpha < 0.5 else theta1).clone()
    return out


def interpolate_weights(
    zeroshot: ModuleT, finetuned: ModuleT, alpha: float, *, out: ModuleT | None = None
) -> ModuleT:
    """A model with weights ``θ_α``: ``out`` (overwritten) or a copy of ``finetuned``.

    ``out`` lets a sweep over α reuse one module instead of copying the model each time.
    """
    state = interpolate_state_dicts(zeroshot.state_dict(), finetuned.state_dict(), alpha)
    target = out if out is not None else copy.deepcopy(finetuned)
    target.load_state_dict(state)
    return target
