"""Evaluate a model on a dataset: its trained linear head if it has one for these classes,
else a zero-shot head built from the dataset's class names and templates.

With a label-space projection (ImageNet-R/-A, ObjectNet) the head scores the source space
(ImageNet's 1000 classes, so an ImageNet-trained linear head is used as is) and the logits are
projected onto the dataset's classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from starft.data.label_space import ClassProjection
from starft.eval.harness import ModelSubject, evaluate_subject
from starft.eval.predict import Predictions
from starft.models import ClipModel
from starft.utils.distributed import DistInfo


def evaluate_model(
    model: ClipModel,
    dataset: Dataset,
    *,
    templates: Sequence[str] | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    dist: DistInfo | None = None,
    progress: bool = False,
    autocast_dtype: torch.dtype | None = None,
    linear_head: tuple[nn.Linear, list[str]] | None = None,
    projection: ClassProjection | None = None,
) -> tuple[dict, dict, Predictions]:
    """Evaluate ``model`` on one built ``dataset`` (:class:`~starft.eval.harness.ModelSubject`).

    ``linear_head`` (a trained head and its class names, see :func:`starft.models.heads.load_head`)
    is used when its classes are the dataset's; otherwise the head is zero-shot
    (``dataset.classnames`` x ``dataset.templates`` unless ``templates``). With ``projection`` the
    head's classes are ``projection.source_classnames`` and its logits are projected onto the
    dataset's classes (see :mod:`starft.data.label_space`). Suites and every command evaluate
    through :func:`~starft.eval.harness.evaluate_entries`, which uses the same subject.
    """
    return evaluate_subject(
        ModelSubject(model, linear_head, templates),
        dataset,
        projection,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        dist=dist,
        progress=progress,
        autocast_dtype=autocast_dtype,
    )
