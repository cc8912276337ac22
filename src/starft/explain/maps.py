"""Relevance maps as pure tensor functions: gradient-weighted attention rollout, Grad-CAM, and
the upsample + per-image min-max every map goes through.

The rollout is Chefer et al.'s rule as both RobustViT and CFT release it: for every block ``b``,
``Ā_b = mean over heads of (∇_{A_b} s ⊙ A_b)⁺``, then ``R ← R + Ā_b·R`` from ``R = I`` over the
blocks in order; the relevance of the patches is the class token's row. The gradients are passed
in: computed without ``create_graph`` they are constants, so a loss on the map back-propagates
through the attention probabilities only (as released).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def rollout(
    attentions: Sequence[Tensor], gradients: Sequence[Tensor], num_prefix_tokens: int = 1
) -> Tensor:
    """Patch relevance ``[B, N]`` from per-block attentions and their gradients ``[B, h, T, T]``.

    With a class token (``num_prefix_tokens >= 1``) the class token's row is returned over the
    patch tokens (prefix tokens such as registers dropped). Without one (SigLIP's attention-pool
    head reads every token) the mean of all rows is returned.
    """
    if not attentions or len(attentions) != len(gradients):
        raise ValueError("rollout needs one gradient per attention map, and at least one block")
    batch, _, tokens, _ = attentions[0].shape
    relevance = torch.eye(tokens, dtype=attentions[0].dtype, device=attentions[0].device)
    relevance = relevance.unsqueeze(0).expand(batch, tokens, tokens)
    for attention, gradient in zip(attentions, gradients):
        cam = (gradient * attention).clamp(min=0).mean(dim=1)
        relevance = relevance + cam @ relevance
    if num_prefix_tokens > 0:
        return relevance[:, 0, num_prefix_tokens:]
    return relevance.mean(dim=1)


def grad_cam(features: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM ``ReLU(Σ_c w_c·A_c)`` with ``w_c`` the spatial mean of the gradient: ``[B, h, w]``.

    ``features`` / ``gradients``: ``[B, C, h, w]``.
    """
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return (weights * features).sum(dim=1).clamp(min=0)


def tokens_to_map(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """Patch tokens ``[B, N, D]`` as a feature map ``[B, D, h, w]`` (row-major patch order)."""
    batch, count, dim = tokens.shape
    if count != grid[0] * grid[1]:
        raise ValueError(f"{count} tokens do not form a {grid[0]}x{grid[1]} grid")
    return tokens.transpose(1, 2).reshape(batch, dim, grid[0], grid[1])


def upsample_minmax(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B, h, w]`` -> ``[B, H, W]``: bilinear upsampling, then per-image min-max to [0, 1].

    Bilinear with ``align_corners=False`` (the releases' ``scale_factor=16`` from 14x14 to 224 is
    the same sampling). A constant map becomes all zeros instead of the releases' NaN.
    """
    up = F.interpolate(maps.unsqueeze(1).float(), size=size, mode="bilinear", align_corners=False)
    flat = up.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    span = (high - low).clamp_min(torch.finfo(flat.dtype).tiny)
    return ((flat - low) / span).view(maps.shape[0], *size)
