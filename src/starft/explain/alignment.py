"""How well relevance maps agree with masks: RobustViT's segmentation test and two more.

:func:`alignment_metrics` computes, over a set of maps ``R`` and masks ``M`` ``[N, H, W]``:

* ``pixel_acc``, ``miou``, ``map``: RobustViT's ``SegmentationTest/imagenet_seg_eval.py`` with its
  ``utils/metrices.py``. Each map is min-maxed to [0, 1]; a pixel is foreground when ``R > mean(R)``
  of its own image; correct pixels and per-class (background, foreground) intersections and unions
  are summed over the whole set; ``pixel_acc = Σcorrect / Σlabelled``; ``miou`` = mean over the two
  classes of ``Σinter / Σunion``; ``map`` = mean over images of the average precision of the
  two-channel scores ``[1 − R, R]`` against the one-hot mask ``[1 − M, M]``.
* ``ap``: mean over images (with some foreground) of the average precision of ``R`` against ``M``.
* ``energy_in_mask``: mean over images of ``Σ R·M / Σ R`` (the share of relevance on the object;
  soft masks weigh pixels).

Masks are binary or soft in [0, 1] (foreground = ``M > 0.5`` for the thresholded metrics);
pixels with the value ``-1`` are ignored, as the release's ``ignore_index``. A constant map has no
min-max: as in the release it scores 0 in both AP channels and predicts background everywhere.
Every metric is higher-is-better. Pure functions of tensors (no model, no registry).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from starft.errors import StarftError

#: name -> higher is better (for a metric registry)
ALIGNMENT_METRICS: dict[str, bool] = {
    "pixel_acc": True,
    "miou": True,
    "map": True,
    "ap": True,
    "energy_in_mask": True,
}
IGNORE = -1.0
_EPS = float(np.spacing(1, dtype=np.float64))  # the release's smoothing of the set ratios


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Average precision ``Σ_n (R_n − R_{n−1})·P_n`` over distinct score thresholds.

    scikit-learn's ``average_precision_score`` for binary targets (tied scores form one
    threshold); NaN when there is no positive.
    """
    targets = np.asarray(targets, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = targets.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    # the last index of every run of equal scores is a threshold
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_pos = np.cumsum(targets)[last]
    precision = true_pos / (last + 1)
    recall = true_pos / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _check(relevance: Tensor, masks: Tensor) -> tuple[np.ndarray, np.ndarray]:
    if relevance.ndim != 3 or relevance.shape != masks.shape:
        raise StarftError(
            f"alignment metrics need relevance and masks of the same shape [N, H, W], got "
            f"{tuple(relevance.shape)} and {tuple(masks.shape)}"
        )
    r = relevance.detach().double().cpu().numpy()
    m = masks.detach().double().cpu().numpy()
    valid = m != IGNORE
    if not np.isfinite(r).all():
        raise StarftError("alignment metrics: the relevance maps contain NaN or inf")
    if ((m[valid] < 0) | (m[valid] > 1)).any() or not np.isfinite(m).all():
        raise StarftError("alignment metrics: mask values must lie in [0, 1] (or -1 = ignore)")
    return r, m


def _minmax(r: np.ndarray) -> np.ndarray:
    """Per-image min-max; NaN for a constant image, as the release."""
    flat = r.reshape(r.shape[0], -1)
    low = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - low
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((flat - low) / span).reshape(r.shape)


def alignment_metrics(relevance: Tensor, masks: Tensor) -> dict[str, float]:
    """``pixel_acc``, ``miou``, ``map``, ``ap``, ``energy_in_mask`` (see the module doc)."""
    r, m = _check(relevance, masks)
    r = _minmax(r)
    correct = labelled = 0
    inter = np.zeros(2)
    union = np.zeros(2)
    two_channel_ap, ap, energy = [], [], []
    for image, mask in zip(r, m):
        valid = mask != IGNORE
        target = mask > 0.5
        fg_score = np.nan_to_num(image, nan=0.0)
        bg_score = np.nan_to_num(1.0 - image, nan=0.0)
        with np.errstate(invalid="ignore"):
            predicted = image > np.mean(image)  # NaN compares False: background
        correct += int(np.sum((predicted == target) & valid))
        labelled += int(np.sum(valid))
        for k, (p, t) in enumerate(((~predicted, ~target), (predicted, target))):
            both = int(np.sum(p & t & valid))
            inter[k] += both
            union[k] += int(np.sum(p & valid)) + int(np.sum(t & valid)) - both
        scores = np.concatenate([bg_score[valid], fg_score[valid]])
        onehot = np.concatenate([~target[valid], target[valid]])
        two_channel_ap.append(np.nan_to_num(average_precision(onehot, scores)))
        if target[valid].any():
            ap.append(average_precision(target[valid], fg_score[valid]))
        weight = np.where(valid, mask, 0.0)
        total = fg_score[valid].sum()
        energy.append(float((fg_score * weight).sum() / total) if total > 0 else 0.0)
    iou = inter / (_EPS + union)
    return {
        "pixel_acc": float(correct / (_EPS + labelled)),
        "miou": float(iou.mean()),
        "map": float(np.mean(two_channel_ap)),
        "ap": float(np.mean(ap)) if ap else float("nan"),
        "energy_in_mask": float(np.mean(energy)),
        "n_images": int(r.shape[0]),
    }


def masks_from_parts(parts: Tensor, weights: Tensor) -> Tensor:
    """Concept masks ``[B, P, H, W]`` with weights ``[B, P]`` -> ``max_p(w_p·mask_p) / max_p w_p``.

    CFT's combination of weighted concept masks, divided by the largest weight of the image so
    the result stays in [0, 1] (the alignment losses are BCEs against it). Padding parts carry
    weight 0; an image with no weighted part gets an empty mask.
    """
    if parts.ndim != 4 or weights.shape != parts.shape[:2]:
        raise StarftError(
            f"parts must be [B, P, H, W] with part_weights [B, P], got {tuple(parts.shape)} "
            f"and {tuple(weights.shape)}"
        )
    if (weights < 0).any():
        raise StarftError("part_weights must be >= 0")
    weighted = (weights[:, :, None, None] * parts).amax(dim=1)
    top = weights.amax(dim=1).clamp_min(torch.finfo(weighted.dtype).tiny)
    return weighted / top[:, None, None]
