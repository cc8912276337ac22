"""The Hugging Face backend: ``transformers`` ``CLIPModel`` and ``SiglipModel`` behind the protocol.

Which model types are supported, and how each pools its image tower, is one table
(:data:`HF_ARCHS`). Intermediates run the vision encoder layer by layer through the layers' own
modules (layer norms, q/k/v/out projections, MLP) with explicit softmax attention, so attention
probabilities are part of the autograd graph whatever attention kernel the model was loaded with,
and the pooled embedding reproduces ``get_image_features`` to float rounding.

SigLIP has no class token: its image embedding is a multi-head attention pooling (MAP) head over
all patch tokens, and its "projection" is that head. Its region fast path therefore applies the
final norm and the MAP head to the patch tokens resampled inside the box; CaRot's orthogonality
penalty uses the head's last linear layer (``head.mlp.fc2``) as the visual projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from starft.models.backends.hf_tokens import hf_token_layout, hf_vocabulary_words
from starft.models.protocol import ClipModel, ImageIntermediates, TokenLayout, normalized
from starft.models.regions import roi_tokens


@dataclass(frozen=True)
class HFArch:
    """How one ``transformers`` model type is driven."""

    model_class: str  # class name in ``transformers``
    prefix_tokens: int  # tokens before the patches (class token)
    description: str


HF_ARCHS: dict[str, HFArch] = {
    "clip": HFArch("CLIPModel", 1, "OpenAI-style CLIP (softmax): class-token pooling, projection"),
    "siglip": HFArch("SiglipModel", 0, "SigLIP (sigmoid, logit_bias): attention-pooling head"),
}


class HFTokenize:
    """``list[str] -> LongTensor[N, context_length]`` with a ``transformers`` tokenizer.

    Pads to the full context (SigLIP pools the last position and was trained on padded text).
    Shared, not copied, by deep copies of the model (frozen teachers): it holds no weights.
    """

    def __init__(self, tokenizer: Any, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: Sequence[str]) -> Tensor:
        return self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )["input_ids"]

    def __deepcopy__(self, memo: dict) -> HFTokenize:
        return self


class HFClipModel(ClipModel):
    """A ``transformers`` CLIP/SigLIP model (``self.model``) behind starft's protocol."""

    backend = "hf"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        image_processor: Any,
        preprocess_train: Any,
        preprocess_val: Any,
        preprocess_cfg: dict[str, Any],
        name: str,
    ) -> None:
        context = int(model.config.text_config.max_position_embeddings)
        super().__init__(HFTokenize(tokenizer, context), preprocess_train, preprocess_val, name)
        self.model = model
        self.arch = HF_ARCHS[model.config.model_type]
        self.hf_tokenizer = tokenizer
        self.image_processor = image_processor
        self._preprocess_cfg = preprocess_cfg
        self._context_length = context

    # -- basics ----------------------------------------------------------------------------------
    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    @property
    def logit_bias(self) -> nn.Parameter | None:
        return getattr(self.model, "logit_bias", None)

    @property
    def embed_dim(self) -> int:
        return int(self.text_projection().shape[1])

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def image_size(self) -> tuple[int, int]:
        size = int(self.model.config.vision_config.image_size)
        return (size, size)

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        return dict(self._preprocess_cfg)

    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor:
        return normalized(_pooled(self.model.get_image_features(pixel_values=images)), normalize)

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
        return normalized(_pooled(self.model.get_text_features(input_ids=tokens)), normalize)

    # -- intermediates and regions ---------------------------------------------------------------
    def num_stages(self) -> int:
        return len(self.model.vision_model.encoder.layers)

    def _run(
        self, images: Tensor, stages: list[int], attention: bool
    ) -> tuple[Tensor, dict[int, Tensor], list[Tensor]]:
        vision = self.model.vision_model
        h = vision.embeddings(images)
        if hasattr(vision, "pre_layrnorm"):
            h = vision.pre_layrnorm(h)
        features: dict[int, Tensor] = {}
        attentions: list[Tensor] = []
        for i, layer in enumerate(vision.encoder.layers):
            h, probs = _layer(layer, h)
            if attention:
                attentions.append(probs)
            if i in stages:
                features[i] = h[:, self.arch.prefix_tokens :]
        return h, features, attentions

    def _pool(self, h: Tensor) -> Tensor:
        vision = self.model.vision_model
        if self.arch.prefix_tokens:  # CLIP: class token -> post norm -> projection
            return self.model.visual_projection(vision.post_layernorm(h[:, 0]))
        return vision.head(vision.post_layernorm(h))

    def _grid(self, images: Tensor) -> tuple[int, int]:
        patch = int(self.model.config.vision_config.patch_size)
        return images.shape[-2] // patch, images.shape[-1] // patch

    def image_intermediates(
        self, images: Tensor, stages: Sequence[int] | None = None, attention: bool = False
    ) -> ImageIntermediates:
        chosen = self.stage_indices(stages)
        h, features, attentions = self._run(images, chosen, attention)
        return ImageIntermediates(
            {s: features[s] for s in chosen},
            "tokens",
            self._grid(images),
            self._pool(h),
            attentions if attention else None,
            self.arch.prefix_tokens,
        )

    def has_fast_regions(self) -> bool:
        return self.arch.prefix_tokens == 1 or hasattr(self.model.vision_model, "head")

    def fast_region_features(self, images: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        last = self.num_stages() - 1
        _, features, _ = self._run(images, [last], False)
        tokens = roi_tokens(features[last], self._grid(images), boxes, self.image_size)
        vision = self.model.vision_model
        if self.arch.prefix_tokens:  # mean of the box's tokens -> post norm -> projection
            return self.model.visual_projection(vision.post_layernorm(tokens.mean(dim=1)))
        return vision.head(vision.post_layernorm(tokens))  # SigLIP: MAP head over the box

    # -- hooks for methods -----------------------------------------------------------------------
    def image_tower(self) -> nn.Module:
        if self.arch.prefix_tokens:
            return nn.ModuleList([self.model.vision_model, self.model.visual_projection])
        return self.model.vision_model

    def visual_projection(self) -> Tensor:
        if self.arch.prefix_tokens:
            return self.model.visual_projection.weight.t()
        return self.model.vision_model.head.mlp.fc2.weight.t()

    def text_projection(self) -> Tensor:
        if self.arch.prefix_tokens:
            return self.model.text_projection.weight.t()
        return self.model.text_model.head.weight.t()

    def token_layout(self) -> TokenLayout:
        return hf_token_layout(self.hf_tokenizer, self.context_length, self.name)

    def vocabulary_words(self) -> list[str]:
        return hf_vocabulary_words(self.hf_tokenizer)

    def library_state_dict(self) -> dict[str, Tensor]:
        return dict(self.model.state_dict())

    def save_to(self, folder: Path) -> None:
        """``save_pretrained`` of model, tokenizer and image processor."""
        self.model.save_pretrained(str(folder))
        self.hf_tokenizer.save_pretrained(str(folder))
        self.image_processor.save_pretrained(str(folder))


def _pooled(output: Any) -> Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output with ``pooler_output``."""
    return output if isinstance(output, Tensor) else output.pooler_output


def _layer(layer: nn.Module, h: Tensor) -> tuple[Tensor, Tensor]:
    """One CLIP/SigLIP encoder layer with explicit attention: ``(output, probs [B, H, T, T])``."""
    attn = layer.self_attn
    x = layer.layer_norm1(h)
    batch, length, dim = x.shape
    heads = attn.num_heads
    head_dim = dim // heads

    def split(t: Tensor) -> Tensor:
        return t.view(batch, length, heads, head_dim).transpose(1, 2)

    q, k, v = split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x))
    probs = torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1, dtype=torch.float32)
    probs = probs.to(q.dtype)
    mixed = torch.nn.functional.dropout(probs, p=attn.dropout, training=attn.training) @ v
    h = h + attn.out_proj(mixed.transpose(1, 2).reshape(batch, length, dim))
    h = h + layer.mlp(layer.layer_norm2(h))
    return h, probs
