"""An exponential-moving-average teacher of the model being trained (CaRot's self-distillation).

Unlike :class:`~starft.methods.teacher.FrozenTeacher`, this teacher changes during training:
every ``every_steps`` optimiser steps ``θ_T ← m·θ_T + (1−m)·θ``. Its weights are therefore part
of the training state (a resumed run must continue from the same teacher, or it would silently
restart from the zero-shot model).

The momentum follows CaRot's released schedule: linear from ``momentum_start`` at step 0 to
``momentum`` at ``warmup_fraction`` of training, constant afterwards. The release averages the
parameters and leaves the teacher in training mode; here the teacher always runs in eval mode
(no dropout, frozen norms), so floating-point *buffers* (BatchNorm running statistics of a
ResNet tower) are averaged too, keeping them consistent with the averaged weights. ViT towers
have no such buffers: for them both choices are identical.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from starft.models import ClipModel


class EmaTeacher(nn.Module):
    """A moving average of a :class:`ClipModel`, starting as a copy of it."""

    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def train(self, mode: bool = True) -> EmaTeacher:
        super().train(False)  # always eval, whatever the method's mode
        return self

    @torch.no_grad()
    def update(self, student: ClipModel, momentum: float) -> None:
        """``θ_T ← m·θ_T + (1−m)·θ`` over parameters and floating-point persistent buffers."""
        student_state = student.state_dict()
        for name, value in self.model.state_dict().items():
            if value.is_floating_point():
                value.mul_(momentum).add_(student_state[name].detach(), alpha=1.0 - momentum)

    def features(self, images: Tensor, captions: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised teacher image features, per-caption text features and the teacher's scale.

        Each distinct caption is encoded once; results are regular tensors (usable as targets).
        """
        rows: dict[str, int] = {}
        for caption in captions:
            rows.setdefault(caption, len(rows))
        device = images.device
        with torch.inference_mode():
            tokens = self.model.tokenize(list(rows)).to(device, non_blocking=True)
            out = self.model(images=images, tokens=tokens, normalize=True)
            scale = self.model.scale()
        index = torch.tensor([rows[c] for c in captions], device=device)
        text = out["text_features"].clone().index_select(0, index)
        return out["image_features"].clone(), text, scale.clone()


def ema_momentum(
    step: int,
    total_steps: int,
    *,
    every_steps: int,
    momentum: float,
    momentum_start: float,
    warmup_fraction: float,
) -> float | None:
    """CaRot's schedule: the momentum to apply after optimiser step ``step`` (0-based), or None.

    Updates happen when ``step % every_steps == 0`` (never if ``every_steps == 0``). The momentum
    rises linearly from ``momentum_start`` to ``momentum`` over the first
    ``warmup_fraction·total_steps`` steps, then stays at ``momentum``.
    """
    if every_steps <= 0 or step % every_steps != 0:
        return None
    warmup = warmup_fraction * total_steps
    if step < warmup:
        return momentum_start + (momentum - momentum_start) * step / warmup
    return momentum
