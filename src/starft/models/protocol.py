"""What a model is in starft: a two-tower CLIP-like model behind one protocol.

Every backend (:mod:`starft.models.backends`) subclasses :class:`ClipModel` and implements the
abstract members; methods, evaluation and the CLI see only this interface, never the library
underneath (open_clip, ``transformers``).

The protocol:

* ``encode_image(images, normalize=)`` / ``encode_text(tokens, normalize=)``: joint-space features.
* ``logit_scale``: the learnable *log* multiplier (open_clip / HF convention); :meth:`scale` is its
  exp. ``logit_bias``: the additive bias of sigmoid (SigLIP) models, None for softmax CLIPs.
* ``tokenize(texts)``: cached per string; ``preprocess_train`` / ``preprocess_val``: PIL -> tensor.
* ``embed_dim``, ``context_length``, ``image_size``, ``preprocess_cfg``.
* ``image_intermediates(images, stages=..., attention=False)``: per stage feature maps or patch
  tokens, the pooled embedding and (optionally) per-block attention probabilities, all inside the
  autograd graph (:class:`ImageIntermediates`).
* ``region_features(images, boxes, method=...)``: a normalised embedding per box, by
  crop-and-encode (any backbone) or the backbone's fast path (:mod:`starft.models.regions`).
* hooks the methods need: ``image_tower()`` (FT trains it alone), ``visual_projection()`` /
  ``text_projection()`` (CaRot), ``token_layout()`` (Lipsum-FT's random texts),
  ``vocabulary_words()`` (StarFT's random-token suffixes), ``library_state_dict()`` and
  ``save_to(folder)`` (export in the library's own format).

``forward`` returns a dict so that DDP can wrap the model (DDP only syncs gradients of
computations that go through the wrapped module's ``forward``). Tokenisation is cached per string:
fine-tuning captions come from a small set (class x template x descriptor) and tokenising in
Python costs more than the text tower of a tiny model.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from starft.errors import StarftError

REGION_METHODS = ("auto", "crop", "fast")


@dataclass(frozen=True)
class TokenLayout:
    """How a tokenizer lays out one text: ``[sot] ids eot pad ... pad``.

    Ids ``[0, num_regular)`` are ordinary vocabulary entries; ``sot`` is None for tokenizers
    without a start token (SigLIP).
    """

    num_regular: int
    sot: int | None
    eot: int
    pad: int
    context_length: int
    #: the regular ids in draw order when they are not simply ``range(num_regular)``
    regular_ids: tuple[int, ...] | None = None


@dataclass
class ImageIntermediates:
    """What :meth:`ClipModel.image_intermediates` returns.

    - ``features``: stage index -> ``[B, C, h, w]`` feature map (CNN) or ``[B, N, D]`` patch
      tokens without class/prefix tokens (ViT), in the order of ``stages``.
    - ``kind``: ``"map"`` or ``"tokens"``; ``grid``: ``(h, w)`` of the patch tokens (ViT) or of
      the last feature map (CNN).
    - ``pooled``: the image embedding, unnormalised (equals ``encode_image``).
    - ``attentions``: per block ``[B, heads, T, T]`` attention probabilities (ViT: every
      transformer block, T including prefix tokens; ModifiedResNet: the attention pool, T = 1 + hw)
      when requested, else None. They are part of the autograd graph.
    - ``num_prefix_tokens``: tokens before the patches in the attention matrices (1 for a CLS).
    """

    features: dict[int, Tensor]
    kind: str
    grid: tuple[int, int]
    pooled: Tensor
    attentions: list[Tensor] | None = None
    num_prefix_tokens: int = 0


class ClipModel(nn.Module, abc.ABC):
    """Base of every backend: shared caching, ``forward`` and the region-feature dispatch."""

    #: the backend's registry name (``open_clip``, ``hf``)
    backend: str = ""

    def __init__(
        self,
        tokenizer: Callable[[Sequence[str]], Tensor],
        preprocess_train: Callable[[Any], Tensor],
        preprocess_val: Callable[[Any], Tensor],
        name: str,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.preprocess_train = preprocess_train
        self.preprocess_val = preprocess_val
        self.name = name
        self.pretrained = pretrained
        self._token_cache: dict[str, Tensor] = {}

    # -- what every backend implements ---------------------------------------------------------
    @property
    @abc.abstractmethod
    def logit_scale(self) -> nn.Parameter:
        """The learnable *log* multiplier; ``scale()`` is its exp."""

    @property
    def logit_bias(self) -> nn.Parameter | None:
        """Additive logit bias of sigmoid (SigLIP) models; None for softmax CLIPs."""
        return None

    @property
    @abc.abstractmethod
    def embed_dim(self) -> int: ...

    @property
    @abc.abstractmethod
    def context_length(self) -> int: ...

    @property
    @abc.abstractmethod
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the images the image tower takes."""

    @property
    @abc.abstractmethod
    def preprocess_cfg(self) -> dict[str, Any]:
        """``size``, ``mean``, ``std``, ``interpolation`` of the evaluation transform."""

    @abc.abstractmethod
    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor: ...

    @abc.abstractmethod
    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor: ...

    @abc.abstractmethod
    def image_intermediates(
        self, images: Tensor, stages: Sequence[int] | None = None, attention: bool = False
    ) -> ImageIntermediates:
        """Per-stage features (``stages``: indices, negative from the end; default the last)."""

    @abc.abstractmethod
    def num_stages(self) -> int:
        """How many stages ``image_intermediates`` can return (blocks of a ViT, layers of a CNN)."""

    def has_fast_regions(self) -> bool:
        """Whether :meth:`fast_region_features` supports this model's image tower."""
        return True

    @abc.abstractmethod
    def fast_region_features(self, images: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        """Unnormalised box embeddings from one pass of the image tower (backbone-specific)."""

    @abc.abstractmethod
    def image_tower(self) -> nn.Module:
        """The modules that map images to image features (what FT trains)."""

    @abc.abstractmethod
    def visual_projection(self) -> Tensor:
        """The image tower's last linear map to the joint space, ``[pooled_dim, embed_dim]``."""

    @abc.abstractmethod
    def text_projection(self) -> Tensor:
        """The text tower's linear map to the joint space, ``[pooled_dim, embed_dim]``."""

    @abc.abstractmethod
    def token_layout(self) -> TokenLayout: ...

    @abc.abstractmethod
    def vocabulary_words(self) -> list[str]:
        """Whole-word alphabetic entries of the tokenizer's vocabulary, sorted."""

    @abc.abstractmethod
    def library_state_dict(self) -> dict[str, Tensor]:
        """The state dict in the underlying library's own key names."""

    @abc.abstractmethod
    def save_to(self, folder: Path) -> None:
        """Write the model into the (new, empty) ``folder`` in the library's own format."""

    # -- shared ----------------------------------------------------------------------------------
    def text_tower_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters of the text tower: all but the image tower's and the logit scale/bias."""
        skip = {id(p) for p in self.image_tower().parameters()} | {id(self.logit_scale)}
        if self.logit_bias is not None:
            skip.add(id(self.logit_bias))
        return [(name, p) for name, p in self.named_parameters() if id(p) not in skip]

    @torch.no_grad()
    def load_text_tower(self, source: ClipModel) -> None:
        """Copy ``source``'s text tower and logit scale into this model (same text tower)."""
        theirs = dict(source.named_parameters())
        mine = self.text_tower_named_parameters()
        differ = [n for n, p in mine if n not in theirs or theirs[n].shape != p.shape]
        if type(source) is not type(self) or differ or not mine:
            raise StarftError(
                f"cannot copy the text tower of '{source.name}' into '{self.name}': their text "
                f"towers differ ({differ[0] if differ else type(source).__name__})"
            )
        for name, param in mine:
            param.copy_(theirs[name])
        self.logit_scale.copy_(source.logit_scale)

    def scale(self) -> Tensor:
        """The logit multiplier ``s = exp(logit_scale)`` as a 0-d tensor."""
        return self.logit_scale.exp().reshape(())

    def bias(self) -> Tensor | None:
        """The logit bias as a 0-d tensor, or None."""
        bias = self.logit_bias
        return None if bias is None else bias.reshape(())

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """Tokenise ``texts`` into a LongTensor ``[N, context_length]`` (cached per string)."""
        cache = self._token_cache
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            rows = self.tokenizer(missing)
            for text, row in zip(missing, rows):
                cache[text] = row
        return torch.stack([cache[t] for t in texts]) if texts else torch.empty(0, 0).long()

    def stage_indices(self, stages: Sequence[int] | None) -> list[int]:
        """``stages`` as non-negative indices, checked; None means the last stage."""
        count = self.num_stages()
        chosen = [count - 1] if stages is None else list(stages)
        out = []
        for stage in chosen:
            index = stage + count if stage < 0 else stage
            if not 0 <= index < count:
                raise StarftError(
                    f"model '{self.name}': stage {stage} is out of range (it has {count} stages)"
                )
            out.append(index)
        return out

    def region_features(
        self, images: Tensor, boxes: Sequence[Tensor], method: str = "auto"
    ) -> Tensor:
        """Normalised embeddings ``[sum_i K_i, embed_dim]`` of every box of every image.

        ``boxes[i]`` is a ``[K_i, 4]`` float tensor of ``(x1, y1, x2, y2)`` pixel coordinates in
        ``images[i]``. ``method``: ``crop`` (crop, resize, encode: the reference), ``fast`` (the
        backbone's one-pass path) or ``auto`` (``fast`` where the tower has one, else ``crop``).
        """
        from starft.models.regions import check_boxes, crop_and_encode

        if method not in REGION_METHODS:
            raise StarftError(f"region method must be one of {REGION_METHODS}, got '{method}'")
        boxes = check_boxes(images, boxes)
        if method == "crop" or (method == "auto" and not self.has_fast_regions()):
            features = crop_and_encode(self, images, boxes)
        else:
            features = self.fast_region_features(images, boxes)
        return F.normalize(features, dim=-1)

    def forward(
        self,
        images: Tensor | None = None,
        tokens: Tensor | None = None,
        normalize: bool = True,
    ) -> dict[str, Tensor]:
        """Encode whichever inputs are given; returns ``image_features``/``text_features``."""
        out: dict[str, Tensor] = {"logit_scale": self.logit_scale}
        if images is not None:
            out["image_features"] = self.encode_image(images, normalize=normalize)
        if tokens is not None:
            out["text_features"] = self.encode_text(tokens, normalize=normalize)
        return out


def normalized(features: Tensor, normalize: bool) -> Tensor:
    return F.normalize(features, dim=-1) if normalize else features
