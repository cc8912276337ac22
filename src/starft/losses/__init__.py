"""Losses: pure functions in :mod:`starft.losses.functional`, modules returning dicts of terms."""

from starft.losses.contrastive import ClipLoss
from starft.losses.distillation import SelfDistillationLoss
from starft.losses.functional import (
    cft_loss,
    clip_contrastive_loss,
    confidence_cross_entropy,
    context_kl,
    cross_projection_penalty,
    lipsum_energy_loss,
    orthogonality_penalty,
    region_text_losses,
    relevance_bce_terms,
    relevance_mse_terms,
    robustvit_loss,
    self_distillation_loss,
    soft_cross_entropy,
    star_regularization,
)
from starft.losses.group_dro import GroupDROLoss, group_sums
from starft.losses.region import RegionAwareLoss
from starft.losses.relevance import RelevanceAlignmentLoss
from starft.losses.star import StarLoss

__all__ = [
    "ClipLoss",
    "GroupDROLoss",
    "RegionAwareLoss",
    "RelevanceAlignmentLoss",
    "SelfDistillationLoss",
    "StarLoss",
    "cft_loss",
    "clip_contrastive_loss",
    "confidence_cross_entropy",
    "context_kl",
    "cross_projection_penalty",
    "group_sums",
    "lipsum_energy_loss",
    "orthogonality_penalty",
    "region_text_losses",
    "relevance_bce_terms",
    "relevance_mse_terms",
    "robustvit_loss",
    "self_distillation_loss",
    "soft_cross_entropy",
    "star_regularization",
]
