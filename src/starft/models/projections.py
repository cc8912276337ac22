"""The final linear projections of the two towers into the joint embedding space.

Regularisers on the projection matrices (CaRot's orthogonality constraint on the visual
projection) need the matrix itself, with gradients, whatever the architecture. Where it lives
depends on the tower: a ``proj`` parameter after a ViT's pooled token, the output projection
``c_proj`` of a ModifiedResNet's attention pool, a ``text_projection`` parameter or linear layer.
The tower is recognised by its module type (never by the model's name), and every matrix is
returned in one convention, ``features = pooled @ W`` with ``W`` of shape
``[pooled_dim, embed_dim]``, so callers never care which layout the layer stores.
"""

from __future__ import annotations

from torch import Tensor, nn

from starft.errors import StarftError
from starft.models.clip_model import ClipModel


def visual_projection(model: ClipModel) -> Tensor:
    """The image tower's projection to the joint space, ``[pooled_dim, embed_dim]``."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    visual = model.model.visual
    if isinstance(visual, ModifiedResNet):
        # AttentionPool2d ends in c_proj, a Linear storing [embed_dim, width].
        return visual.attnpool.c_proj.weight.t()
    if isinstance(visual, VisionTransformer) and isinstance(visual.proj, nn.Parameter):
        return visual.proj
    head = getattr(getattr(visual, "head", None), "proj", None)
    if isinstance(head, nn.Linear):  # open_clip's TimmModel with a linear projection head
        return head.weight.t()
    raise StarftError(
        f"model '{model.name}': no linear projection to the joint space found in its image tower "
        f"({type(visual).__name__}); the visual-projection regulariser needs one"
    )


def text_projection(model: ClipModel) -> Tensor:
    """The text tower's projection to the joint space, ``[pooled_dim, embed_dim]``."""
    for owner in (model.model, getattr(model.model, "text", None)):
        proj = getattr(owner, "text_projection", None)
        if isinstance(proj, nn.Parameter):
            return proj
        if isinstance(proj, nn.Linear):
            return proj.weight.t()
    raise StarftError(
        f"model '{model.name}': no linear text projection to the joint space found; "
        "the cross-projection regulariser needs one"
    )
