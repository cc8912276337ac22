"""LP and LP-FT: a linear probe fitted on frozen features, alone (LP) or then fine-tuned (LP-FT).

Both are FT with a different start. The linear probe (:func:`fit_linear_probe`):

1. extracts normalised image features of the training set once, under the *evaluation* transform
   (no augmentation), sharded across ranks and gathered through :func:`starft.eval.predict`, so
   every rank holds all of them;
2. chooses the L2 strength from ``l2_grid`` by accuracy on a validation split: the run's
   ``data.val`` set when it has one, else a deterministic held-out ``val_fraction`` of the
   training set (never a test set); a fixed ``l2`` skips the choice;
3. refits on the *whole* training set with the chosen l2 (the held-out part included) and writes
   the result into the FT head, which starts as the zero-shot head (so the exported
   ``classification_head.safetensors`` and ``starft eval`` work exactly as for FT).

Each rank fits identically from the same gathered features; the loop then copies rank 0's head to
the others, so tiny GPU rounding differences between ranks cannot survive. LP runs no gradient step
(``trains_by_gradient = False``); LP-FT continues with FT's cross-entropy training from the probe.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from starft.errors import StarftError
from starft.eval.predict import predict
from starft.method_configs import LPConfig
from starft.methods.base import PrepareContext, Task
from starft.methods.ft import FT
from starft.methods.logreg import accuracy, fit_logistic_regression, holdout_split, select_l2
from starft.models import ClipModel


class _ImageFeatures(nn.Module):
    """Images -> normalised image features (a "classifier" for :func:`predict` to gather)."""

    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.encode_image(images, normalize=True)


def extract_features(
    model: ClipModel, dataset: Dataset, context: PrepareContext
) -> tuple[Tensor, Tensor]:
    """Normalised image features ``[N, D]`` (float32) and labels ``[N]`` of every sample."""
    extractor = _ImageFeatures(model).eval()
    out = predict(
        extractor,
        dataset,
        batch_size=context.batch_size,
        num_workers=context.num_workers,
        device=context.device,
        autocast_dtype=context.autocast_dtype,
        dist=context.dist,
    )
    if len(out) == 0:
        raise StarftError("linear probe: the dataset yielded no readable image")
    return F.normalize(out.logits.float(), dim=-1), out.labels


def _on(device: torch.device, tensors: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return tensors[0].to(device), tensors[1].to(device)


def fit_linear_probe(method: FT, context: PrepareContext) -> dict[str, Any]:
    """Fit ``method.head`` as a linear probe (see the module docstring); returns the report."""
    config: LPConfig = method.config  # type: ignore[assignment]
    device = context.device
    num_classes = len(method.task.classnames)
    train_x, train_y = _on(device, extract_features(method.model, context.train_set, context))
    init = {"init_weight": method.head.weight.detach(), "init_bias": method.head.bias.detach()}
    common = {"label_smoothing": config.label_smoothing, "max_iter": config.max_iter, **init}
    report: dict[str, Any] = {"n_train": int(train_y.numel())}
    if config.l2 is not None or len(config.l2_grid) == 1:
        l2 = float(config.l2 if config.l2 is not None else config.l2_grid[0])
        report["l2_selection"] = "fixed"
    else:
        if context.val_set is not None:
            val_x, val_y = _on(device, extract_features(method.model, context.val_set, context))
            fit_x, fit_y = train_x, train_y
            report["l2_selection"] = "validation set (data.val)"
        else:
            fit_idx, val_idx = _on(
                device, holdout_split(len(train_y), config.val_fraction, context.seed)
            )
            fit_x, fit_y = train_x[fit_idx], train_y[fit_idx]
            val_x, val_y = train_x[val_idx], train_y[val_idx]
            report["l2_selection"] = f"held-out {config.val_fraction:g} of the training set"
        l2, scores = select_l2(
            (fit_x, fit_y), (val_x, val_y), num_classes, config.l2_grid, **common
        )
        report["n_val"] = int(val_y.numel())
        report["val_top1"] = {f"{k:g}": v for k, v in scores.items()}
    fit = fit_logistic_regression(train_x, train_y, num_classes, l2, **common)
    with torch.no_grad():
        method.head.weight.copy_(fit.weight)
        method.head.bias.copy_(fit.bias)
    train_top1 = accuracy(fit, train_x, train_y)
    report.update(l2=l2, train_loss=fit.loss, train_top1=train_top1, iterations=fit.iterations)
    return report


class LP(FT):
    """Linear probe: the encoder stays frozen, the head is logistic regression fitted by L-BFGS.

    ``forward`` is FT's cross-entropy on the head alone (the encoder has no trainable parameter),
    but the loop never calls it: the whole fit happens in :meth:`prepare`.
    """

    Config = LPConfig
    trains_by_gradient = False

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: LPConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        model.requires_grad_(False)

    def prepare(self, context: PrepareContext) -> dict[str, Any]:
        return fit_linear_probe(self, context)


class LPFT(FT):
    """LP-FT (Kumar et al., 2022): fit the linear probe, then FT from that head."""

    Config = LPConfig

    def prepare(self, context: PrepareContext) -> dict[str, Any]:
        return fit_linear_probe(self, context)
