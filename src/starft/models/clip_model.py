"""The one model protocol every method trains: a two-tower CLIP-like model.

:class:`ClipModel` wraps an open_clip model and exposes exactly what the methods need:
``encode_image`` / ``encode_text`` (with ``normalize=``), ``logit_scale`` (the *log* of the
multiplier, as in open_clip; :meth:`ClipModel.scale` gives ``exp``), a cached ``tokenize`` and the
train / eval preprocessing. ``forward`` returns a dict so that DDP can wrap the model (DDP only
syncs gradients of computations that go through the wrapped module's ``forward``).

Two exact speed-ups live here because every method benefits from them:

* Tokenisation is cached per string: fine-tuning captions come from a small set (class x template x
  descriptor), and BPE in Python costs more than the text tower of a tiny model.
* Causal text towers (OpenAI-style CLIP, pooled at the end-of-text token) are run on the tokens up
  to the longest end-of-text position in the batch instead of the full context (77 for CLIP). With a
  causal mask a position never attends to later ones, so the pooled feature is unchanged while the
  text tower does 3-5x less work on typical captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from starft.errors import StarftError


class ClipModel(nn.Module):
    """An open_clip model behind starft's model protocol.

    Args:
        model: the open_clip ``CLIP`` / ``CustomTextCLIP`` module.
        tokenizer: callable ``list[str] -> LongTensor[N, context_length]``.
        preprocess_train / preprocess_val: PIL image -> tensor transforms.
        model_cfg: the open_clip architecture config (saved beside exported weights).
        name / pretrained: where the model came from (recorded in results).
    """

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
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess_train = preprocess_train
        self.preprocess_val = preprocess_val
        self.model_cfg = model_cfg
        self.name = name
        self.pretrained = pretrained
        self._token_cache: dict[str, Tensor] = {}
        self._trim_text = _supports_trimming(model)

    # -- protocol -------------------------------------------------------------------------------
    @property
    def logit_scale(self) -> nn.Parameter:
        """The learnable *log* temperature (open_clip convention); ``scale()`` is its exp."""
        return self.model.logit_scale

    def scale(self) -> Tensor:
        """The logit multiplier ``s = exp(logit_scale)`` as a 0-d tensor."""
        return self.model.logit_scale.exp().reshape(())

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def context_length(self) -> int:
        return int(self.model_cfg["text_cfg"].get("context_length", 77))

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        return dict(getattr(self.model.visual, "preprocess_cfg", {}))

    def text_tower_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters of the text tower: everything but the image tower and the logit scale/bias.

        open_clip keeps the image tower under ``visual`` in both ``CLIP`` and ``CustomTextCLIP``.
        """
        return [
            (name, param)
            for name, param in self.model.named_parameters()
            if not name.startswith("visual.") and name not in ("logit_scale", "logit_bias")
        ]

    def load_text_tower(self, source: ClipModel) -> None:
        """Copy ``source``'s text tower and logit scale into this model (same text config)."""
        if source.model_cfg.get("text_cfg") != self.model_cfg.get("text_cfg"):
            raise StarftError(
                f"cannot copy the text tower of '{source.name}' into '{self.name}': their "
                "text_cfg differ"
            )
        theirs = source.model.state_dict()
        ours = {
            name: theirs[name]
            for name in self.model.state_dict()
            if not name.startswith("visual.") and name in theirs
        }
        self.model.load_state_dict(ours, strict=False)

    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor:
        features = self.model.encode_image(images)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
        if self._trim_text:
            features = _encode_text_trimmed(self.model, tokens)
        else:
            features = self.model.encode_text(tokens)
        return F.normalize(features, dim=-1) if normalize else features

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """Tokenise ``texts`` into a LongTensor ``[N, context_length]`` (cached per string)."""
        cache = self._token_cache
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            rows = self.tokenizer(missing)
            for text, row in zip(missing, rows):
                cache[text] = row
        return torch.stack([cache[t] for t in texts]) if texts else torch.empty(0, 0).long()

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


def _supports_trimming(model: nn.Module) -> bool:
    """True for open_clip's built-in causal text tower pooled at the end-of-text token.

    Decided from the module's structure (a causal ``attn_mask`` and argmax/eos pooling), never from
    the model's name: SigLIP-style bidirectional towers or 'last'-token pooling must see padding.
    """
    attn_mask = getattr(model, "attn_mask", None)
    pool = getattr(model, "text_pool_type", None)
    return (
        attn_mask is not None
        and hasattr(model, "positional_embedding")
        and hasattr(model, "token_embedding")
        and pool in ("argmax", "eos")
    )


def _text_end(model: nn.Module, tokens: Tensor) -> int:
    """Length to keep: one past the last end-of-text position of any row in the batch."""
    if model.text_pool_type == "argmax":
        ends = tokens.argmax(dim=-1)
    else:
        ends = (tokens == model.text_eos_id).int().argmax(dim=-1)
    return int(ends.max().item()) + 1


def _encode_text_trimmed(model: nn.Module, tokens: Tensor) -> Tensor:
    """open_clip ``CLIP.encode_text`` on the tokens up to the last end-of-text position.

    Mirrors open_clip's implementation line by line, slicing the positional embedding and the
    causal mask to the kept length. Exact because the mask is causal (see module docstring).
    """
    from open_clip.transformer import text_global_pool

    if tokens.shape[0] == 0:
        return model.encode_text(tokens)
    length = _text_end(model, tokens)
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=model.text_eos_id)
    if model.text_projection is not None:
        if isinstance(model.text_projection, nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return x
