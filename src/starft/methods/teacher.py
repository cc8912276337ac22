"""A frozen copy of the zero-shot model, with an exact cache of its caption embeddings.

The teacher never changes, so the embedding of a caption is a pure function of the caption string.
StarFT's spurious captions come from a finite set (class x descriptor), so instead of running the
teacher's text tower on N captions every step we embed each distinct caption the first time it is
seen and look it up afterwards (for ImageNet x background: 58k captions once, then zero text-tower
passes). The cache is a growing float32 table plus a string -> row index, so a lookup is one
``index_select``. The image tower runs under ``torch.inference_mode`` (no autograd bookkeeping);
when the training samples are a pure function of their dataset row the trainer attaches an
:class:`~starft.methods.feature_cache.ImageFeatureCache` (``image_cache``) and a batch's features
are looked up by its ``index`` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from starft.methods.feature_cache import ImageFeatureCache
from starft.models import ClipModel


class FrozenTeacher(nn.Module):
    """Frozen deep copy of a :class:`ClipModel` taken at construction (the zero-shot start)."""

    def __init__(self, model: ClipModel, cache_text: bool = True) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.cache_text = cache_text
        self._rows: dict[str, int] = {}
        self._table: Tensor | None = None
        #: Set by the trainer when a row's training sample never changes (None: no image cache).
        self.image_cache: ImageFeatureCache | None = None
        # Fixed at construction: the teacher's logit multiplier s0.
        self.scale = float(self.model.scale().item())

    def train(self, mode: bool = True) -> FrozenTeacher:
        # The teacher stays in eval mode whatever the method's mode (no dropout, frozen norms).
        super().train(False)
        return self

    def image_features(self, images: Tensor, index: Any = None) -> Tensor:
        """Normalised teacher image features (a regular tensor, safe to use in autograd graphs).

        ``index``: the batch's dataset row indices (``batch["index"]``, on the host); with an
        image cache attached, rows seen before are looked up instead of encoded.
        """
        cache = self.image_cache
        if cache is not None and index is not None:
            cached = cache.lookup(index, images.device)
            if cached is not None:
                return cached
            return cache.store(index, self._encode_images(images))
        return self._encode_images(images)

    def _encode_images(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            features = self.model.encode_image(images, normalize=True)
        return features.clone()

    def token_features(self, tokens: Tensor) -> Tensor:
        """Normalised float32 teacher embeddings of ready-made token rows (never cached)."""
        with torch.inference_mode():
            features = self.model.encode_text(tokens, normalize=True).float()
        return features.clone()

    def text_features(self, captions: Sequence[str]) -> Tensor:
        """Normalised float32 teacher embeddings of ``captions`` (cached per string if enabled)."""
        device = next(self.model.parameters()).device
        if not self.cache_text:
            return self._encode(list(captions), device)
        missing = [c for c in dict.fromkeys(captions) if c not in self._rows]
        if missing:
            new = self._encode(missing, device)
            start = 0 if self._table is None else self._table.shape[0]
            self._table = new if self._table is None else torch.cat([self._table, new])
            for offset, caption in enumerate(missing):
                self._rows[caption] = start + offset
        assert self._table is not None
        index = torch.tensor([self._rows[c] for c in captions], device=self._table.device)
        return self._table.index_select(0, index)

    def _encode(self, captions: list[str], device: torch.device, chunk: int = 1024) -> Tensor:
        parts = []
        with torch.inference_mode():
            for start in range(0, len(captions), chunk):
                tokens = self.model.tokenize(captions[start : start + chunk]).to(device)
                parts.append(self.model.encode_text(tokens, normalize=True).float())
        return torch.cat(parts).clone()

    @property
    def num_cached(self) -> int:
        return len(self._rows)

    def cache_state(self) -> dict[str, Any]:
        """The caption table, for checkpoints.

        A resumed run must continue with the *same* table: re-embedding the captions in batches of
        a different composition changes float rounding (~1e-7), which Adam then amplifies. With
        the table restored, later misses arrive in the same batches as in an uninterrupted run.
        """
        if self._table is None:
            return {}
        return {"captions": list(self._rows), "table": self._table.cpu()}

    def load_cache_state(self, state: dict[str, Any]) -> None:
        if not state:
            self._rows, self._table = {}, None
            return
        device = next(self.model.parameters()).device
        self._rows = {caption: row for row, caption in enumerate(state["captions"])}
        self._table = state["table"].to(device)
