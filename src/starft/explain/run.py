"""Explain a few images of a dataset with several models: maps, the grid and alignment metrics.

Each model sees the dataset through its own evaluation transform (models may differ in input
size); the grid shows the first model's view and resizes every other model's map to it. Masks,
when the dataset's samples carry ``mask``, go through the same transform, and the alignment
metrics of a model use its own view of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from starft.errors import StarftError
from starft.explain.alignment import alignment_metrics
from starft.explain.relevance import explain, text_head
from starft.models import ClipModel, build_zeroshot_head
from starft.utils.io import atomic_write_json

TEXT_PREFIX = "text:"


@dataclass
class ModelMaps:
    label: str
    maps: Tensor  # [N, H, W]
    targets: list[int]
    predictions: list[int]
    masks: Tensor | None
    metrics: dict[str, float] | None = None


@dataclass
class ExplainRun:
    indices: list[int]
    images: np.ndarray  # [N, H, W, 3] in [0, 1], the first model's view
    labels: list[int]
    classnames: list[str]
    target: str
    models: list[ModelMaps] = field(default_factory=list)


def parse_target(target: str) -> tuple[str, str | None]:
    """``label`` | ``pred`` | ``text:SOME TEXT`` -> (kind, text)."""
    if target in ("label", "pred"):
        return target, None
    if target.startswith(TEXT_PREFIX) and target[len(TEXT_PREFIX) :].strip():
        return "text", target[len(TEXT_PREFIX) :].strip()
    raise StarftError(f"--target must be label, pred or text:\"SOME TEXT\", got '{target}'")


def _batch(dataset: Any, indices: Sequence[int]) -> dict[str, Any]:
    samples = [dataset[i] for i in indices]
    if any(s is None for s in samples):
        raise StarftError("an image among the explained samples could not be read")
    out: dict[str, Any] = {"image": torch.stack([s["image"] for s in samples])}
    out["label"] = torch.tensor([int(s["label"]) for s in samples])
    if all("mask" in s for s in samples):
        out["mask"] = torch.stack([torch.as_tensor(s["mask"]).float() for s in samples])
    return out


def _unnormalise(images: Tensor, cfg: dict[str, Any]) -> np.ndarray:
    mean = torch.tensor(cfg.get("mean", (0.0, 0.0, 0.0))).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (1.0, 1.0, 1.0))).view(1, 3, 1, 1)
    return (images.cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def explain_dataset(
    models: Sequence[tuple[str, ClipModel]],
    make_dataset: Callable[[ClipModel], Any],
    *,
    n: int = 16,
    target: str = "pred",
    method: str = "auto",
    stage: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
) -> ExplainRun:
    """Maps of the first ``n`` samples of the dataset for every model (see the module doc)."""
    kind, text = parse_target(target)
    if n < 1:
        raise StarftError(f"--n must be >= 1, got {n}")
    run: ExplainRun | None = None
    for label, model in models:
        model.eval().to(device)
        dataset = make_dataset(model)
        indices = list(range(min(n, len(dataset))))
        if not indices:
            raise StarftError("the dataset is empty")
        if kind == "text":
            head = text_head(model, [text])  # type: ignore[list-item]
        else:
            head = build_zeroshot_head(model, dataset.classnames, dataset.templates)
        maps, targets, preds, masks, images = [], [], [], [], []
        starts = range(0, len(indices), batch_size)
        for start in starts:
            batch = _batch(dataset, indices[start : start + batch_size])
            x = batch["image"].to(device)
            wanted = {"label": batch["label"], "pred": None}.get(kind)
            if kind == "text":
                wanted = torch.zeros(len(x), dtype=torch.long)
            out = explain(model, x, head, wanted, method=method, stage=stage)
            maps.append(out.maps.detach().cpu())
            targets += out.targets.tolist()
            preds += out.logits.argmax(dim=1).tolist()
            images.append(x.cpu())
            if "mask" in batch:
                masks.append(batch["mask"])
        mask_tensor = torch.cat(masks) if len(masks) == len(starts) else None
        entry = ModelMaps(label, torch.cat(maps), targets, preds, mask_tensor)
        if mask_tensor is not None:
            entry.metrics = alignment_metrics(entry.maps, mask_tensor)
        if run is None:
            run = ExplainRun(
                indices,
                _unnormalise(torch.cat(images), model.preprocess_cfg),
                [int(dataset.labels[i]) for i in indices],
                list(dataset.classnames),
                target,
            )
        run.models.append(entry)
        model.cpu()
    assert run is not None
    return run


def _resize(maps: Tensor, size: tuple[int, int]) -> np.ndarray:
    if tuple(maps.shape[-2:]) != size:
        maps = F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False)
        maps = maps.squeeze(1)
    return maps.clamp(0, 1).numpy()


def write_explain_run(run: ExplainRun, out: str | Path, save_maps: bool = False) -> list[Path]:
    """``grid.png``, ``explain.json`` (targets, predictions, metrics when masks exist) and, with
    ``save_maps``, ``maps/<model>/<index>.npy``. Returns the written paths."""
    from starft.explain.grid import write_grid

    out = Path(out)
    size = (run.images.shape[1], run.images.shape[2])
    maps = {m.label: _resize(m.maps, size) for m in run.models}
    first_masks = run.models[0].masks
    masks = None if first_masks is None else _resize(first_masks.clamp(0, 1), size)
    rows = [run.classnames[y] for y in run.labels]
    captions = None
    if not run.target.startswith(TEXT_PREFIX):
        captions = {
            m.label: [f"pred: {run.classnames[p]}" for p in m.predictions] for m in run.models
        }
    written = [write_grid(out / "grid.png", run.images, maps, masks, rows, captions)]
    summary = {
        "target": run.target,
        "indices": run.indices,
        "labels": run.labels,
        "models": {
            m.label: {
                "targets": m.targets,
                "predictions": m.predictions,
                **({"alignment": m.metrics} if m.metrics is not None else {}),
            }
            for m in run.models
        },
    }
    atomic_write_json(out / "explain.json", summary, indent=2)
    written.append(out / "explain.json")
    if save_maps:
        for m in run.models:
            folder = out / "maps" / _safe(m.label)
            folder.mkdir(parents=True, exist_ok=True)
            for index, array in zip(run.indices, m.maps.numpy()):
                path = folder / f"{index}.npy"
                tmp = path.with_suffix(".npy.tmp")
                with open(tmp, "wb") as handle:
                    np.save(handle, array.astype(np.float32))
                tmp.replace(path)
                written.append(path)
    return written


def _safe(label: str) -> str:
    return (
        "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label).strip("._") or "model"
    )
