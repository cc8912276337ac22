"""Zero-shot classification heads built from class names x templates.

The head of class c is the mean of the L2-normalised embeddings of all its template captions,
renormalised (CLIP's recipe). All C x T captions go through the text tower in batches that span
classes, ordered by caption length: causal text towers run only up to the longest caption of a
batch (``open_clip_text``), so batches of equally long captions carry almost no padding, whereas a
class-by-class batch always holds the longest template. The batch size depends on the device
(:func:`text_batch_size`): on a CPU, batches of a few hundred captions keep the activations in
cache (batches of 1024 captions of a tiny text tower were slower than class-by-class batches of
80); a GPU wants thousands.

The same class x template table, averaged over *classes* instead of templates, gives one embedding
per template: the "context" prompts CAR-FT regularises (:func:`build_context_head`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from starft.models.protocol import ClipModel

#: captions per text-tower call by device type (measured: docs/performance.md)
TEXT_BATCH_SIZES = {"cpu": 256, "cuda": 2048}
DEFAULT_TEXT_BATCH_SIZE = 512


def text_batch_size(device: str | torch.device) -> int:
    """Captions per text-tower call when building heads on ``device``."""
    return TEXT_BATCH_SIZES.get(torch.device(device).type, DEFAULT_TEXT_BATCH_SIZE)


@torch.no_grad()
def caption_embeddings(
    model: ClipModel,
    classnames: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Normalised float32 embeddings of every ``template.format(class)``: ``[C, T, embed_dim]``.

    ``batch_size``: captions per text-tower call (default: :func:`text_batch_size`).
    """
    if not classnames or not templates:
        raise ValueError("a zero-shot head needs at least one class name and one template")
    device = torch.device(device if device is not None else next(model.parameters()).device)
    batch_size = batch_size or text_batch_size(device)
    captions = [template.format(name) for name in classnames for template in templates]
    # Longest first (stable): similar lengths share a batch, and the first batch shows the
    # largest activation size at once.
    order = sorted(range(len(captions)), key=lambda i: -len(captions[i]))
    out: Tensor | None = None
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        tokens = model.tokenize([captions[i] for i in rows]).to(device)
        features = model.encode_text(tokens, normalize=True).float()
        if out is None:
            out = features.new_empty(len(captions), features.shape[-1])
        out[torch.tensor(rows, device=device)] = features
    assert out is not None
    return out.view(len(classnames), len(templates), -1)


def build_zeroshot_head(
    model: ClipModel,
    classnames: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int | None = None,
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
    batch_size: int | None = None,
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
