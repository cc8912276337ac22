"""Multinomial logistic regression on cached features, fitted full-batch with L-BFGS.

This is the linear probe of LP and LP-FT. Because the encoder is frozen, the image features are
computed once and the head is the minimiser of a smooth, strictly convex objective (for ``l2 > 0``)

    L(W, b) = (1/N) Σ_i CE_ε(W x_i + b, y_i) + (l2 / 2) · ‖W‖²_F        (bias not regularised)

where ``CE_ε`` is cross-entropy with label smoothing ε. Full-batch L-BFGS reaches its optimum in a
few dozen iterations, with no learning rate or epoch count to tune and a deterministic result;
the starting point (the zero-shot head) only changes how fast. The loss and its gradient are
computed by hand in row chunks, so the memory use is one chunk of logits, not ``N x C`` plus an
autograd graph (ImageNet: 1.28M x 1000 logits).

The L2 strength is chosen from a grid by accuracy on a validation set (:func:`select_l2`); ties go
to the *larger* l2, the simpler model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from starft.errors import StarftError

CHUNK_ROWS = 65536


@dataclass
class LogisticFit:
    """A fitted head ``logits = features @ weight.T + bias`` and how the fit ended."""

    weight: Tensor
    bias: Tensor
    loss: float
    iterations: int


def _objective(
    features: Tensor,
    labels: Tensor,
    weight: Tensor,
    bias: Tensor,
    l2: float,
    label_smoothing: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Loss and its exact gradients ``(loss, dL/dW, dL/db)``, accumulated over row chunks."""
    n, num_classes = features.shape[0], weight.shape[0]
    loss = features.new_zeros(())
    grad_w = torch.zeros_like(weight)
    grad_b = torch.zeros_like(bias)
    for start in range(0, n, CHUNK_ROWS):
        x = features[start : start + CHUNK_ROWS]
        y = labels[start : start + CHUNK_ROWS]
        log_p = torch.log_softmax(x @ weight.t() + bias, dim=1)
        target = torch.full_like(log_p, label_smoothing / num_classes)
        target[torch.arange(y.numel(), device=y.device), y] += 1.0 - label_smoothing
        loss = loss - (target * log_p).sum()
        residual = log_p.exp() - target  # d CE / d logits, per row
        grad_w += residual.t() @ x
        grad_b += residual.sum(dim=0)
    loss = loss / n + 0.5 * l2 * (weight * weight).sum()
    return loss, grad_w / n + l2 * weight, grad_b / n


def fit_logistic_regression(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    l2: float,
    *,
    init_weight: Tensor | None = None,
    init_bias: Tensor | None = None,
    label_smoothing: float = 0.0,
    max_iter: int = 1000,
) -> LogisticFit:
    """Minimise the objective of the module docstring with full-batch L-BFGS (strong Wolfe).

    ``features`` ``[N, D]`` and ``labels`` ``[N]`` (long, in ``[0, num_classes)``) stay on their
    device and in their dtype; the head starts at ``init_weight``/``init_bias`` (default zeros).
    Stops when the largest gradient entry is below 1e-7 or after ``max_iter`` iterations.
    """
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(
            f"features must be [N, D] and labels [N], got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise StarftError("logistic regression: no training samples")
    if not (math.isfinite(l2) and l2 >= 0):
        raise StarftError(f"logistic regression: l2 must be a finite number >= 0, got {l2}")
    labels = labels.to(features.device).long()
    dim = features.shape[1]
    weight = features.new_zeros(num_classes, dim)
    bias = features.new_zeros(num_classes)
    if init_weight is not None:
        weight.copy_(init_weight)
    if init_bias is not None:
        bias.copy_(init_bias)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        loss, grad_w, grad_b = _objective(features, labels, weight, bias, l2, label_smoothing)
        weight.grad, bias.grad = grad_w, grad_b
        return loss

    with torch.no_grad():
        optimizer.step(closure)
        loss, _, _ = _objective(features, labels, weight, bias, l2, label_smoothing)
    iterations = int(optimizer.state[optimizer.param_groups[0]["params"][0]].get("n_iter", 0))
    return LogisticFit(weight.detach(), bias.detach(), float(loss), iterations)


def accuracy(fit: LogisticFit, features: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy of the fitted head on ``features``/``labels``."""
    if labels.numel() == 0:
        raise StarftError("logistic regression: no validation samples")
    logits = features @ fit.weight.t() + fit.bias
    return (logits.argmax(dim=1) == labels.to(logits.device)).double().mean().item()


def holdout_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Deterministic ``(fit_indices, holdout_indices)`` of ``range(n)``, holdout = ``fraction``.

    A seeded random permutation (not stratified); the holdout has ``round(fraction·n)`` samples,
    at least one, and at least one sample is left to fit on.
    """
    if not 0.0 < fraction < 1.0:
        raise StarftError(f"method.val_fraction must be in (0, 1), got {fraction}")
    n_holdout = max(1, round(fraction * n))
    if n_holdout >= n:
        raise StarftError(
            f"method.val_fraction={fraction} leaves no training sample out of {n}: "
            "use more data, a smaller fraction, a validation set (data.val) or a fixed method.l2"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    return order[n_holdout:].sort().values, order[:n_holdout].sort().values


def select_l2(
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    num_classes: int,
    grid: Sequence[float],
    *,
    init_weight: Tensor | None = None,
    init_bias: Tensor | None = None,
    label_smoothing: float = 0.0,
    max_iter: int = 1000,
) -> tuple[float, dict[float, float]]:
    """The l2 of ``grid`` whose fit on ``train`` is most accurate on ``val`` (ties: larger l2).

    ``train`` and ``val`` are ``(features, labels)`` pairs. Returns ``(best_l2, {l2: val_acc})``.
    """
    if not grid:
        raise StarftError("method.l2_grid is empty")
    scores: dict[float, float] = {}
    for l2 in grid:
        fit = fit_logistic_regression(
            *train,
            num_classes,
            float(l2),
            init_weight=init_weight,
            init_bias=init_bias,
            label_smoothing=label_smoothing,
            max_iter=max_iter,
        )
        scores[float(l2)] = accuracy(fit, *val)
    best = max(scores, key=lambda l2: (scores[l2], l2))
    return best, scores
