"""Token tensors built directly from token ids, bypassing the text -> tokenizer step.

Lipsum-FT feeds the text tower sequences of *random token ids*. Decoding random ids to a string
and tokenising it again would not give the same ids back (BPE merges across the pieces), so the
rows are assembled as the model's tokenizer lays them out (:class:`TokenLayout`, from the
backend): start-of-text if the tokenizer has one, the ids, end-of-text, padding to the context
length. Draws are uniform over the regular vocabulary (every id that is not a special token), as
in the Lipsum-FT release (``randint(0, 49406)`` for OpenAI's BPE).
"""

from __future__ import annotations

import torch
from torch import Tensor

from starft.errors import StarftError
from starft.models.protocol import ClipModel, TokenLayout

__all__ = ["TokenLayout", "token_layout", "tokens_from_ids"]


def token_layout(model: ClipModel) -> TokenLayout:
    """Special ids, regular vocabulary and context length of ``model``'s tokenizer."""
    return model.token_layout()


def tokens_from_ids(layout: TokenLayout, ids: Tensor) -> Tensor:
    """``[N, L]`` draws in ``[0, num_regular)`` -> ``[N, context_length]`` token rows."""
    count, length = ids.shape
    start = 0 if layout.sot is None else 1
    if length + start + 1 > layout.context_length:
        raise StarftError(
            f"random texts of {length} tokens plus start/end-of-text do not fit the model's "
            f"context length {layout.context_length}"
        )
    if layout.regular_ids is not None:
        ids = torch.tensor(layout.regular_ids, dtype=torch.long, device=ids.device)[ids]
    tokens = torch.full(
        (count, layout.context_length), layout.pad, dtype=torch.long, device=ids.device
    )
    if layout.sot is not None:
        tokens[:, 0] = layout.sot
    tokens[:, start : start + length] = ids
    tokens[:, start + length] = layout.eot
    return tokens
