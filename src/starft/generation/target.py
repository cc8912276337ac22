"""Checks that need the model a pool is generated for: caption length and text embeddings.

A descriptor must fit the target model's text context once it is formatted with the longest clean
caption of the task, or training would silently truncate it; two descriptors that move a caption's
embedding in almost the same direction add nothing but weight to one spurious feature.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.data.pools import spurious_caption
from starft.errors import StarftError
from starft.models import ClipModel

NEUTRAL_CLASS = "object"


class TargetText:
    """The target model's tokenizer and text tower, and the captions descriptors are checked with.

    Args:
        model: the model the pool will train (its tokenizer and text tower are used).
        template: the clean-caption template (one ``{}`` for the class name).
        classnames: the task's classes; the longest caption (in tokens) is the one every
            descriptor must fit with. Without classes, ``template`` is filled with "object".
    """

    def __init__(self, model: ClipModel, template: str, classnames: Sequence[str] = ()) -> None:
        if template.count("{}") != 1:
            raise StarftError(f"template {template!r} must contain exactly one '{{}}'")
        self.model = model
        self.template = template
        self.context_length = model.context_length
        captions = [template.format(c) for c in classnames] or [template.format(NEUTRAL_CLASS)]
        counts = self.token_counts(captions)
        self.longest_caption = captions[int(torch.tensor(counts).argmax())]
        self.neutral_caption = template.format(NEUTRAL_CLASS)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text needs, start/end tokens included (capped at twice the context)."""
        if not texts:
            return []
        length = 2 * self.context_length + 8
        tokenizer = self.model.tokenizer
        pad = tokenizer([""], context_length=length)[0, -1]
        rows = tokenizer(list(texts), context_length=length)
        return [int(n) for n in (rows != pad).sum(dim=-1)]

    def fits(self, descriptors: Sequence[str]) -> list[bool]:
        """Whether each descriptor, formatted with the longest clean caption, fits the context."""
        captions = [spurious_caption(d, self.longest_caption) for d in descriptors]
        return [n <= self.context_length for n in self.token_counts(captions)]

    @torch.inference_mode()
    def embed(self, descriptors: Sequence[str], batch_size: int = 256) -> Tensor:
        """What each descriptor adds to a caption, in the target model's text space.

        The normalised difference between the embedding of a neutral caption with the descriptor
        and that of the caption alone: the shared caption would otherwise dominate every
        embedding and make all descriptors look alike.
        """
        captions = [self.neutral_caption] + [
            spurious_caption(d, self.neutral_caption) for d in descriptors
        ]
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()  # no dropout; the caller's mode is restored below
        try:
            chunks = [
                self.model.encode_text(
                    self.model.tokenizer(captions[i : i + batch_size]).to(device), normalize=True
                ).float()
                for i in range(0, len(captions), batch_size)
            ]
        finally:
            self.model.train(was_training)
        embeddings = torch.cat(chunks)
        return F.normalize(embeddings[1:] - embeddings[:1], dim=-1)
