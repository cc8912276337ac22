"""Relevance-alignment losses of RobustViT (MSE) and CFT (BCE) as a module returning its terms."""

from __future__ import annotations

from torch import Tensor, nn

from starft.losses.functional import (
    confidence_cross_entropy,
    relevance_bce_terms,
    relevance_mse_terms,
)

#: kind -> (term function, names of its (outside, inside) terms)
ALIGNMENT_KINDS = {
    "robustvit": (relevance_mse_terms, ("background", "foreground")),
    "cft": (relevance_bce_terms, ("context", "concept")),
}


class RelevanceAlignmentLoss(nn.Module):
    """``λ_out·term(R⊙(1−M), 0) + λ_in·term(R⊙M, M)`` as ``alignment``, and the confidence CE.

    ``forward`` returns ``{outside name, inside name, "alignment"}`` plus ``"confidence"``
    (``CE(z/T, argmax z)``) when logits are given; the method weights and sums them.
    """

    def __init__(
        self, kind: str, lambda_outside: float, lambda_inside: float, temperature: float = 1.0
    ) -> None:
        super().__init__()
        if kind not in ALIGNMENT_KINDS:
            raise ValueError(f"alignment loss kind must be one of {sorted(ALIGNMENT_KINDS)}")
        self.terms, self.names = ALIGNMENT_KINDS[kind]
        self.lambda_outside = lambda_outside
        self.lambda_inside = lambda_inside
        self.temperature = temperature

    def forward(
        self, relevance: Tensor, mask: Tensor, logits: Tensor | None = None
    ) -> dict[str, Tensor]:
        outside, inside = self.terms(relevance, mask)
        out = {
            self.names[0]: outside,
            self.names[1]: inside,
            "alignment": self.lambda_outside * outside + self.lambda_inside * inside,
        }
        if logits is not None:
            out["confidence"] = confidence_cross_entropy(logits, self.temperature)
        return out
