"""The final linear projections of the two towers into the joint embedding space.

Regularisers on the projection matrices (CaRot's orthogonality constraint on the visual
projection) need the matrix itself, with gradients, whatever the architecture. Each backend knows
where its towers keep it (:meth:`ClipModel.visual_projection`); every matrix is returned in one
convention, ``features = pooled @ W`` with ``W`` of shape ``[pooled_dim, embed_dim]``.
"""

from __future__ import annotations

from torch import Tensor

from starft.models.protocol import ClipModel


def visual_projection(model: ClipModel) -> Tensor:
    """The image tower's projection to the joint space, ``[pooled_dim, embed_dim]``."""
    return model.visual_projection()


def text_projection(model: ClipModel) -> Tensor:
    """The text tower's projection to the joint space, ``[pooled_dim, embed_dim]``."""
    return model.text_projection()
