"""Apply a :class:`~starft.data.label_space.ClassProjection` to a classifier's logits.

The classifier scores the source label space (e.g. ImageNet's 1000 classes); the wrapper turns it
into one logit per dataset class, the max over the source classes mapped to that class. Doing it in
the classifier (not after gathering) keeps the saved predictions, metrics and ECE in the dataset's
own label space with no extra pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from starft.data.label_space import ClassProjection


def project_logits_max(logits: Tensor, projection: ClassProjection) -> Tensor:
    """``[N, S]`` source logits -> ``[N, K]``; column k = max over ``projection.indices[k]``."""
    if logits.shape[-1] != len(projection.source_classnames):
        raise ValueError(
            f"project_logits_max: logits have {logits.shape[-1]} classes, the projection's source "
            f"space '{projection.space}' has {len(projection.source_classnames)}"
        )
    if projection.is_selection:
        index = torch.tensor([g[0] for g in projection.indices], device=logits.device)
        return logits.index_select(-1, index)
    # Pad every group to the longest with its own first index (max is unchanged), then gather.
    width = max(len(g) for g in projection.indices)
    padded = [list(g) + [g[0]] * (width - len(g)) for g in projection.indices]
    index = torch.tensor(padded, device=logits.device)  # [K, width]
    gathered = logits[..., index.flatten()].reshape(*logits.shape[:-1], *index.shape)
    return gathered.amax(dim=-1)


class ProjectedClassifier(nn.Module):
    """Wrap a source-space classifier so it returns logits over the projected classes."""

    def __init__(self, classifier: Callable[[Tensor], Tensor], projection: ClassProjection):
        super().__init__()
        self.classifier = classifier
        self.projection = projection

    def forward(self, images: Tensor) -> Tensor:
        return project_logits_max(self.classifier(images), self.projection)
