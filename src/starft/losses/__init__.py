"""Losses: pure functions in :mod:`starft.losses.functional`, modules returning dicts of terms."""

from starft.losses.contrastive import ClipLoss
from starft.losses.distillation import SelfDistillationLoss
from starft.losses.functional import (
    clip_contrastive_loss,
    context_kl,
    cross_projection_penalty,
    lipsum_energy_loss,
    orthogonality_penalty,
    region_text_losses,
    self_distillation_loss,
    soft_cross_entropy,
    star_regularization,
)
from starft.losses.region import RegionAwareLoss
from starft.losses.star import StarLoss

__all__ = [
    "ClipLoss",
    "RegionAwareLoss",
    "SelfDistillationLoss",
    "StarLoss",
    "clip_contrastive_loss",
    "context_kl",
    "cross_projection_penalty",
    "lipsum_energy_loss",
    "orthogonality_penalty",
    "region_text_losses",
    "self_distillation_loss",
    "soft_cross_entropy",
    "star_regularization",
]
