"""The open_clip backend: any open_clip ``CLIP`` / ``CustomTextCLIP`` behind starft's protocol.

Causal text towers run on the tokens up to the longest end-of-text position in the batch (exact;
:mod:`starft.models.backends.open_clip_text`).

Intermediates and region features are computed explicitly through the tower's own modules:
open_clip's attention runs with ``need_weights=False``, so attention probabilities are recomputed
from the same weights (``in_proj``, scaled dot product, softmax, ``out_proj``), which reproduces
``encode_image`` to float rounding. Supported image towers: ``VisionTransformer`` with standard
residual attention blocks, and ``ModifiedResNet``; other towers still train and evaluate, and
their regions go through crop-and-encode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from starft.errors import StarftError
from starft.models.backends.hf_tokens import hf_token_layout, hf_vocabulary_words
from starft.models.backends.open_clip_text import encode_text_trimmed, supports_trimming
from starft.models.protocol import ClipModel, ImageIntermediates, TokenLayout, normalized
from starft.models.regions import roi_resample, roi_tokens

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


class OpenClipModel(ClipModel):
    """An open_clip model behind starft's protocol (``self.model`` is the open_clip module)."""

    backend = "open_clip"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[[Sequence[str]], Tensor],
        preprocess_train: Callable[[Any], Tensor],
        preprocess_val: Callable[[Any], Tensor],
        model_cfg: dict[str, Any],
        name: str,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(tokenizer, preprocess_train, preprocess_val, name, pretrained)
        self.model = model
        self.model_cfg = model_cfg
        self._trim_text = supports_trimming(model)

    # -- protocol: basics ------------------------------------------------------------------------
    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    @property
    def logit_bias(self) -> nn.Parameter | None:
        return getattr(self.model, "logit_bias", None)

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def context_length(self) -> int:
        return int(self.model_cfg["text_cfg"].get("context_length", 77))

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        return dict(getattr(self.model.visual, "preprocess_cfg", {}))

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.preprocess_cfg.get("size", getattr(self.model.visual, "image_size", 224))
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor:
        return normalized(self.model.encode_image(images), normalize)

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
        if self._trim_text:
            features = encode_text_trimmed(self.model, tokens)
        else:
            features = self.model.encode_text(tokens)
        return normalized(features, normalize)

    # -- protocol: intermediates and regions -----------------------------------------------------
    def _tower_kind(self) -> str:
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        visual = self.model.visual
        if isinstance(visual, ModifiedResNet):
            return "resnet"
        if isinstance(visual, VisionTransformer) and hasattr(visual, "_embeds"):
            return "vit"
        return "other"

    def _require(self) -> str:
        kind = self._tower_kind()
        if kind == "other":
            raise StarftError(
                f"model '{self.name}': intermediates need an open_clip VisionTransformer or "
                f"ModifiedResNet image tower, got {type(self.model.visual).__name__}"
            )
        return kind

    def num_stages(self) -> int:
        if self._require() == "resnet":
            return 4
        return len(self.model.visual.transformer.resblocks)

    def image_intermediates(
        self, images: Tensor, stages: Sequence[int] | None = None, attention: bool = False
    ) -> ImageIntermediates:
        kind = self._require()
        chosen = self.stage_indices(stages)
        if kind == "resnet":
            return _resnet_intermediates(self.model.visual, images, chosen, attention)
        return _vit_intermediates(self.model.visual, images, chosen, attention)

    def has_fast_regions(self) -> bool:
        if self._tower_kind() == "vit":
            return getattr(self.model.visual, "attn_pool", None) is None
        return self._tower_kind() == "resnet"

    def fast_region_features(self, images: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        if not self.has_fast_regions():
            raise StarftError(
                f"model '{self.name}': no fast region path for {type(self.model.visual).__name__} "
                "(use method='crop')"
            )
        visual = self.model.visual
        if self._tower_kind() == "resnet":
            # RoIAlign on layer3 to 2x the attention-pool grid, then layer4 + attnpool (ViLLA).
            x = visual.layer3(visual.layer2(visual.layer1(visual.stem(images))))
            grid = math.isqrt(visual.attnpool.positional_embedding.shape[0] - 1)
            scale = x.shape[-1] / images.shape[-1]
            x = roi_resample(x, boxes, (2 * grid, 2 * grid), spatial_scale=scale)
            return visual.attnpool(visual.layer4(x))
        # ViT: patch tokens of the last block inside the box, averaged -> final norm -> projection.
        inter = _vit_intermediates(visual, images, [self.num_stages() - 1], False)
        tokens = roi_tokens(
            inter.features[self.num_stages() - 1], inter.grid, boxes, self.image_size
        )
        pooled = visual.ln_post(tokens.mean(dim=1))
        return pooled @ visual.proj if visual.proj is not None else pooled

    # -- protocol: hooks for methods -------------------------------------------------------------
    def image_tower(self) -> nn.Module:
        return self.model.visual

    def visual_projection(self) -> Tensor:
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        visual = self.model.visual
        if isinstance(visual, ModifiedResNet):
            # AttentionPool2d ends in c_proj, a Linear storing [embed_dim, width].
            return visual.attnpool.c_proj.weight.t()
        if isinstance(visual, VisionTransformer) and isinstance(visual.proj, nn.Parameter):
            return visual.proj
        head = getattr(getattr(visual, "head", None), "proj", None)
        if isinstance(head, nn.Linear):  # open_clip's TimmModel with a linear projection head
            return head.weight.t()
        raise StarftError(
            f"model '{self.name}': no linear projection to the joint space found in its image "
            f"tower ({type(visual).__name__})"
        )

    def text_projection(self) -> Tensor:
        for owner in (self.model, getattr(self.model, "text", None)):
            proj = getattr(owner, "text_projection", None)
            if isinstance(proj, nn.Parameter):
                return proj
            if isinstance(proj, nn.Linear):
                return proj.weight.t()
        raise StarftError(f"model '{self.name}': no linear text projection to the joint space")

    def _hf_tokenizer(self) -> Any:
        """The transformers tokenizer inside open_clip's ``HFTokenizer`` (SigLIP, ...), or None."""
        inner = getattr(self.tokenizer, "tokenizer", None)
        return inner if hasattr(inner, "all_special_ids") else None

    def token_layout(self) -> TokenLayout:
        if self._hf_tokenizer() is not None:
            return hf_token_layout(self._hf_tokenizer(), self.context_length, self.name)
        tokenizer = self.tokenizer
        sot = getattr(tokenizer, "sot_token_id", None)
        eot = getattr(tokenizer, "eot_token_id", None)
        special = list(getattr(tokenizer, "all_special_ids", []) or [])
        if sot is None or eot is None or not special:
            raise StarftError(
                f"model '{self.name}': random-token texts need open_clip's BPE tokenizer "
                f"(start/end-of-text ids), got {type(tokenizer).__name__}"
            )
        return TokenLayout(int(min(special)), int(sot), int(eot), 0, self.context_length)

    def vocabulary_words(self) -> list[str]:
        if self._hf_tokenizer() is not None:
            return hf_vocabulary_words(self._hf_tokenizer())
        encoder = getattr(self.tokenizer, "encoder", None)
        if not encoder:
            raise StarftError(
                f"model '{self.name}': its tokenizer ({type(self.tokenizer).__name__}) exposes no "
                "word vocabulary"
            )
        return sorted(w[:-4] for w in encoder if w.endswith("</w>") and w[:-4].isalpha())

    def library_state_dict(self) -> dict[str, Tensor]:
        return dict(self.model.state_dict())

    def save_to(self, folder: Path) -> None:
        """``open_clip_config.json`` + ``open_clip_model.safetensors``: an open_clip local-dir."""
        from safetensors.torch import save_file

        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        config = {"model_cfg": self.model_cfg, "preprocess_cfg": _jsonable(self.preprocess_cfg)}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- image tower internals ---------------------------------------------------------------------
def _attention_probs(q: Tensor, k: Tensor, heads: int) -> tuple[Tensor, Callable]:
    """Softmax attention ``[B, heads, T, T]`` of batch-first ``q``/``k`` and a value mixer."""
    batch, length, dim = q.shape
    head_dim = dim // heads

    def split(x: Tensor) -> Tensor:
        return x.reshape(batch, -1, heads, head_dim).transpose(1, 2)

    probs = torch.softmax((split(q) * head_dim**-0.5) @ split(k).transpose(-1, -2), dim=-1)

    def mix(v: Tensor) -> Tensor:
        return (probs @ split(v)).transpose(1, 2).reshape(batch, length, dim)

    return probs, mix


def _block_with_attention(block: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """One open_clip ``ResidualAttentionBlock`` (batch first) with explicit attention."""
    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention) or not attn._qkv_same_embed_dim:
        raise StarftError(
            f"attention capture needs nn.MultiheadAttention blocks, got {type(attn).__name__}"
        )
    h = block.ln_1(x)
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    probs, mix = _attention_probs(q, k, attn.num_heads)
    x = x + block.ls_1(attn.out_proj(mix(v)))
    x = x + block.ls_2(block.mlp(block.ln_2(x)))
    return x, probs


def _vit_intermediates(
    visual: nn.Module, images: Tensor, stages: list[int], attention: bool
) -> ImageIntermediates:
    from open_clip.transformer import ResidualAttentionBlock

    transformer = visual.transformer
    if not transformer.batch_first:
        raise StarftError("intermediates need a batch-first open_clip transformer")
    x = visual._embeds(images)
    gh, gw = images.shape[-2] // visual.patch_size[0], images.shape[-1] // visual.patch_size[1]
    features: dict[int, Tensor] = {}
    attentions: list[Tensor] = []
    last = len(transformer.resblocks) - 1 if attention else max(stages)
    for i, block in enumerate(transformer.resblocks):
        if i > last:
            x = block(x)
            continue
        if attention:
            if not isinstance(block, ResidualAttentionBlock) or hasattr(block, "ln_1_kv"):
                raise StarftError(
                    f"attention capture needs open_clip ResidualAttentionBlocks, got "
                    f"{type(block).__name__}"
                )
            x, probs = _block_with_attention(block, x)
            attentions.append(probs)
        else:
            x = block(x)
        if i in stages:
            features[i] = x[:, 1:]
    if x.shape[1] - 1 != gh * gw:
        raise StarftError(
            f"{x.shape[1] - 1} patch tokens do not form the {gh}x{gw} grid (patch dropout on?)"
        )
    pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    ordered = {s: features[s] for s in stages}
    return ImageIntermediates(
        ordered, "tokens", (gh, gw), pooled, attentions if attention else None, 1
    )


def _attnpool_with_attention(pool: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """open_clip's ``AttentionPool2d`` with explicit attention (query = every token)."""
    x = x.flatten(2).transpose(1, 2)  # [B, hw, C]
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + pool.positional_embedding.to(x.dtype)
    probs, mix = _attention_probs(pool.q_proj(x), pool.k_proj(x), pool.num_heads)
    return pool.c_proj(mix(pool.v_proj(x)))[:, 0], probs


def _resnet_intermediates(
    visual: nn.Module, images: Tensor, stages: list[int], attention: bool
) -> ImageIntermediates:
    x = visual.stem(images)
    features: dict[int, Tensor] = {}
    for i, layer in enumerate((visual.layer1, visual.layer2, visual.layer3, visual.layer4)):
        x = layer(x)
        if i in stages:
            features[i] = x
    attentions = None
    if attention:
        pooled, probs = _attnpool_with_attention(visual.attnpool, x)
        attentions = [probs]
    else:
        pooled = visual.attnpool(x)
    grid = (int(x.shape[-2]), int(x.shape[-1]))
    # The attention pool's first token is the mean of the map: one prefix token.
    return ImageIntermediates({s: features[s] for s in stages}, "map", grid, pooled, attentions, 1)
