"""Zero-shot classification heads built from class names x templates.

The head of class c is the mean of the L2-normalised embeddings of all its template captions,
renormalised (CLIP's recipe). All C x T captions go through the text tower in large batches rather
than one class at a time: for ImageNet (1000 x 80) that is 80 forward passes of 1000 captions
instead of 1000 passes of 80.

The same class x template table, averaged over *classes* instead of templates, gives one embedding
per template: the "context" prompts CAR-FT regularises (:func:`build_context_head`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from starft.models.protocol import ClipModel


@torch.no_grad()
def caption_embeddings(
    model: ClipModel,
    classnames: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> Tensor:
    """Normalised float32 embeddings of every ``template.format(class)``: ``[C, T, embed_dim]``."""
    if not classnames or not templates:
        raise ValueError("a zero-shot head needs at least one class name and one template")
    device = device if device is not None else next(model.parameters()).device
    captions = [template.format(name) for name in classnames for template in templates]
    chunks = []
    for start in range(0, len(captions), batch_size):
        tokens = model.tokenize(captions[start : start + batch_size]).to(device)
        chunks.append(model.encode_text(tokens, normalize=True).float())
    return torch.cat(chunks).view(len(classnames), len(templates), -1)


def build_zeroshot_head(
    model: ClipModel,
    classnames: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> Tensor:
    """Return the ``[num_classes, embed_dim]`` matrix of normalised class embeddings."""
    embeddings = caption_embeddings(
        model, classnames, templates, batch_size=batch_size, device=device
    )
    return F.normalize(embeddings.mean(dim=1), dim=-1)


def build_context_head(
    model: ClipModel,
    classnames: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> Tensor:
    """``[num_templates, embed_dim]``: per template, the normalised mean over classes of its
    normalised caption embeddings (CAR-FT's context prompts ``W_ctx``)."""
    embeddings = caption_embeddings(
        model, classnames, templates, batch_size=batch_size, device=device
    )
    return F.normalize(embeddings.mean(dim=0), dim=-1)


class ZeroShotClassifier(nn.Module):
    """Images -> logits ``s * normalize(f(x)) @ head.T + b`` with a fixed head.

    ``scale`` defaults to the model's own learned ``exp(logit_scale)``, so calibration metrics (ECE,
    NLL) reflect the temperature the model was trained with. ``b`` is the model's ``logit_bias``
    for sigmoid (SigLIP) models, so the logits are the model's own sigmoid logits; 0 otherwise.
    A bias shared by all classes changes neither the ranking nor the softmax over classes.
    """

    def __init__(self, model: ClipModel, head: Tensor, scale: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("head", head, persistent=False)
        self.scale = float(model.scale().item()) if scale is None else float(scale)
        bias = model.bias()
        self.bias = 0.0 if bias is None else float(bias.item())

    def forward(self, images: Tensor) -> Tensor:
        features = self.model.encode_image(images, normalize=True)
        return self.scale * features.float() @ self.head.t() + self.bias
