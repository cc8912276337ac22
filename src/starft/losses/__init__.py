"""Losses: pure functions in :mod:`starft.losses.functional`, modules returning dicts of terms."""

from starft.losses.contrastive import ClipLoss
from starft.losses.functional import clip_contrastive_loss, star_regularization
from starft.losses.star import StarLoss

__all__ = ["ClipLoss", "StarLoss", "clip_contrastive_loss", "star_regularization"]
