"""Token tensors built directly from token ids, bypassing the text -> BPE step.

Lipsum-FT feeds the text tower sequences of *random token ids*. Decoding random ids to a string
and tokenising it again would not give the same ids back (BPE merges across the pieces), so the
rows are assembled as the tokenizer itself would lay them out: start-of-text, the ids,
end-of-text, zero padding to the context length (open_clip's ``SimpleTokenizer``). The regular
vocabulary is every id below the first special token, as in the Lipsum-FT release
(``randint(0, 49406)`` for OpenAI's BPE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from starft.errors import StarftError
from starft.models.clip_model import ClipModel


@dataclass(frozen=True)
class TokenLayout:
    """Where a BPE tokenizer puts its special tokens: ids ``[0, num_regular)`` are words."""

    num_regular: int
    sot: int
    eot: int
    context_length: int


def token_layout(model: ClipModel) -> TokenLayout:
    """The start/end-of-text ids and vocabulary size of ``model``'s open_clip BPE tokenizer."""
    tokenizer = model.tokenizer
    sot = getattr(tokenizer, "sot_token_id", None)
    eot = getattr(tokenizer, "eot_token_id", None)
    special = list(getattr(tokenizer, "all_special_ids", []) or [])
    if sot is None or eot is None or not special:
        raise StarftError(
            f"model '{model.name}': random-token texts need open_clip's BPE tokenizer "
            f"(start/end-of-text ids), got {type(tokenizer).__name__}"
        )
    return TokenLayout(
        num_regular=int(min(special)),
        sot=int(sot),
        eot=int(eot),
        context_length=model.context_length,
    )


def tokens_from_ids(layout: TokenLayout, ids: Tensor) -> Tensor:
    """``[N, L]`` regular token ids -> ``[N, context_length]`` rows ``SOT ids EOT 0 ... 0``."""
    count, length = ids.shape
    if length + 2 > layout.context_length:
        raise StarftError(
            f"random texts of {length} tokens plus start/end-of-text do not fit the model's "
            f"context length {layout.context_length}"
        )
    tokens = torch.zeros(count, layout.context_length, dtype=torch.long, device=ids.device)
    tokens[:, 0] = layout.sot
    tokens[:, 1 : length + 1] = ids
    tokens[:, length + 1] = layout.eot
    return tokens
