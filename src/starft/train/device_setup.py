"""Per-device speed settings of the models a method trains: memory format and ``torch.compile``.

* **channels_last** for convolutional image towers on CUDA: cuDNN's convolutions and batch norms
  run in NHWC with tensor cores, NCHW pays transposes around each one. A tower counts as
  convolutional when it holds more than one ``Conv2d`` (a ViT has exactly one, its patch
  embedding, and stays as it is). Converting the weights is enough: a convolution whose weight is
  channels_last returns channels_last activations, so the whole tower runs NHWC.
* **torch.compile** (``compile: true`` in the run config, off by default): each image tower is
  compiled in place (``nn.Module.compile``), so parameter names, state dicts and checkpoints are
  unchanged. Only image towers: text towers run on batch-dependent lengths (trimmed at the last
  end-of-text token), which would recompile often, and cost a few percent of a step.

Both apply to every model inside the method (the trained one and frozen teachers alike) and change
no number beyond float rounding.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from starft.models import ClipModel

log = logging.getLogger(__name__)


def is_convolutional(tower: nn.Module) -> bool:
    """More than one ``Conv2d``: a CNN, not a ViT's single patch embedding."""
    return sum(isinstance(m, nn.Conv2d) for m in tower.modules()) > 1


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` holds batch norms (their running statistics change in training)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def clip_models(module: nn.Module) -> list[ClipModel]:
    """Every :class:`ClipModel` inside ``module`` (itself included), each once."""
    return [m for m in module.modules() if isinstance(m, ClipModel)]


def prepare_for_device(
    module: nn.Module,
    device: torch.device,
    *,
    compile: bool = False,
    channels_last: bool | None = None,
) -> list[str]:
    """Apply the settings above to the models in ``module`` (already on ``device``), in place.

    ``channels_last``: None = on CUDA only. Logs and returns one line per change.
    """
    if channels_last is None:
        channels_last = device.type == "cuda"
    done: list[str] = []
    for model in clip_models(module):
        tower = model.image_tower()
        if channels_last and is_convolutional(tower):
            tower.to(memory_format=torch.channels_last)
            done.append(f"{model.name}: image tower in channels_last")
        if compile:
            tower.compile()
            done.append(f"{model.name}: image tower compiled (torch.compile)")
    for line in done:
        log.info(line)
    return done
