"""One figure per discovered cluster: its top region crops and its per-class accuracy table.

Crops are cut from the image the model saw (its evaluation transform, undone to RGB with the
model's normalisation mean and std), at the region's pixel box. Drawn with matplotlib's object API
on the Agg canvas (never ``pyplot``), so writing a report changes no global state; the PNG is
written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from starft.discovery.discover import DiscoveredCluster
from starft.discovery.inputs import DiscoveryInputs, model_view
from starft.discovery.naming import DescriptorScore
from starft.discovery.regions import pixel_bounds
from starft.models import ClipModel
from starft.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    from starft.data.base import ClassificationDataset

TOP_CROPS = 10


def to_rgb(model: ClipModel, image: torch.Tensor) -> np.ndarray:
    """A normalised model input ``[3, H, W]`` back to ``uint8 [H, W, 3]``."""
    mean = torch.tensor(model.preprocess_cfg.get("mean", (0.0, 0.0, 0.0))).view(3, 1, 1)
    std = torch.tensor(model.preprocess_cfg.get("std", (1.0, 1.0, 1.0))).view(3, 1, 1)
    pixels = (image.float().cpu() * std + mean).clamp(0, 1)
    return (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def region_crops(
    model: ClipModel,
    dataset: ClassificationDataset,
    inputs: DiscoveryInputs,
    regions: Sequence[int],
) -> list[np.ndarray]:
    """RGB crops ``[h, w, 3]`` of ``regions`` (indices into ``inputs``) from the model's view."""
    crops = []
    for region in regions:
        index = int(inputs.image_indices[int(inputs.region_image[region])])
        sample = dataset[index]
        if sample is None:  # unreadable now though it was read before: show nothing rather than lie
            crops.append(np.zeros((1, 1, 3), np.uint8))
            continue
        rgb = to_rgb(model, model_view(model, sample["image"], f"{dataset!r} sample {index}"))
        left, top, right, bottom = pixel_bounds(
            inputs.region_boxes[region], rgb.shape[1], rgb.shape[0]
        )
        crops.append(rgb[top:bottom, left:right])
    return crops


def plot_cluster(
    path: str | Path,
    *,
    title: str,
    crops: Sequence[np.ndarray],
    crop_labels: Sequence[str],
    cluster: DiscoveredCluster,
    classnames: Sequence[str],
    names: Sequence[DescriptorScore] = (),
) -> Path:
    """Top: the crops, most similar to the medoid first. Bottom: accuracy of each class's images
    with and without a region in the cluster (the gap table)."""
    from matplotlib.figure import Figure

    columns = max(len(crops), 1)
    fig = Figure(figsize=(max(1.25 * columns, 7.5), 5.4), layout="constrained")
    grid = fig.add_gridspec(2, columns, height_ratios=[1, 1.6])
    for i, (crop, label) in enumerate(zip(crops, crop_labels)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(crop, interpolation="nearest")
        ax.set_title(label, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    bars = fig.add_subplot(grid[1, :])
    rows = list(cluster.gaps.values())
    xs = np.arange(len(rows))
    bars.bar(xs - 0.2, [r.acc_in for r in rows], 0.4, label="with the cluster", color="#c0392b")
    bars.bar(xs + 0.2, [r.acc_out for r in rows], 0.4, label="without", color="#7f8c8d")
    labels = [f"{classnames[r.label]}\n{r.n_in} / {r.n_out}" for r in rows]
    bars.set_xticks(xs, labels, fontsize=8)
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("accuracy")
    bars.set_xlabel("class (images with / without a region in the cluster)")
    bars.grid(axis="y", alpha=0.3)
    bars.legend(loc="upper right", fontsize=8)
    named = "; ".join(f"{n.descriptor} ({n.score:.3f})" for n in names[:3])
    fig.suptitle(title + (f"\nnames: {named}" if named else ""), fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
