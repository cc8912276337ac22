"""Group-robust baselines of RaVL's mitigation table: upsampled FT and VL-GDRO.

Both work on *class x feature* groups. ``groups=dataset`` takes the samples' own group ids (the
sandbox marker tasks' groups are shape x marker); ``groups=discovery`` builds them as
``2·label + has_feature``, where an image has the feature when a frozen copy of the starting model
puts one of its regions nearest a medoid of a cluster ``starft discover`` kept (see
:mod:`starft.methods.spurious_regions`).

* :class:`UpsampledFT`: FT whose per-sample cross-entropy is weighted by ``N / (G·n_g)`` (the
  inverse training frequency of the sample's group, mean weight 1 over the training set), the
  expected loss of sampling every group equally often: rare groups, e.g. the spurious class without
  the feature, count as much as common ones.
* :class:`VLGroupDRO`: contrastive (FLYP) fine-tuning where the loss is online group DRO over the
  per-sample contrastive losses (:class:`~starft.losses.GroupDROLoss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.data.collate import collate_samples
from starft.errors import StarftError
from starft.losses import GroupDROLoss
from starft.losses.distributed import gather_with_grad
from starft.method_configs import GroupDROConfig, UpsampledFTConfig
from starft.methods.base import PrepareContext, StepInfo, Task
from starft.methods.flyp import FLYP
from starft.methods.ft import FT
from starft.methods.spurious_regions import SpuriousRegions
from starft.models import ClipModel


def batch_groups(
    batch: dict[str, Any], source: str, regions: SpuriousRegions | None, method: str
) -> Tensor:
    """Group id of every sample: the dataset's, or ``2·label + has_feature`` (discovery)."""
    labels = batch["label"]
    if source == "discovery":
        assert regions is not None
        return labels.long() * 2 + regions.image_flags(batch).long().to(labels.device)
    if "group" not in batch:
        raise StarftError(f"{method}: groups=dataset, but the batch has no 'group' field")
    groups = torch.as_tensor(batch["group"]).long().to(labels.device)
    if groups.numel() and int(groups.min()) < 0:
        raise StarftError(
            f"{method}: groups=dataset, but the dataset has no groups (group id -1); use "
            "method.groups=discovery with method.discovery=FILE"
        )
    return groups


def _regions_for(model: ClipModel, config: Any) -> SpuriousRegions | None:
    if config.groups != "discovery":
        return None
    return SpuriousRegions(model, config.discovery, config.regions)


def training_group_counts(
    context: PrepareContext, source: str, regions: SpuriousRegions | None, method: str
) -> Tensor:
    """Samples per group over the training set (the dataset's list, or one assignment pass)."""
    dataset = context.train_set
    if source == "dataset":
        groups = getattr(dataset, "groups", None)
        if groups is None:
            raise StarftError(
                f"{method}: groups=dataset, but the training set has no groups; use "
                "method.groups=discovery with method.discovery=FILE"
            )
        return torch.bincount(torch.as_tensor(groups, dtype=torch.long))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=context.batch_size,
        num_workers=context.num_workers,
        collate_fn=collate_samples,
    )
    found = []
    for batch in loader:
        if batch is None:
            continue
        batch = {k: v.to(context.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        if "boxes" in batch:
            batch["boxes"] = [b.to(context.device) for b in batch["boxes"]]
        found.append(batch_groups(batch, source, regions, method).cpu())
    if not found:
        raise StarftError(f"{method}: the training set has no readable sample")
    return torch.bincount(torch.cat(found))


def inverse_frequency_weights(counts: Tensor) -> Tensor:
    """``N / (G·n_g)`` for the G groups present, 0 for absent ones (mean weight 1 per sample)."""
    counts = counts.double()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (int(present.sum()) * counts[present])
    return weights.float()


class UpsampledFT(FT):
    """FT with inverse-group-frequency sample weights.

    The weights come from the training set in :meth:`prepare` (run before the first step of every
    fresh run; a resumed run restores them). Called without it (a method used directly in Python),
    each batch is weighted by its own group counts, the same rule on the batch.
    """

    Config = UpsampledFTConfig
    data_keys = ("image", "label", "group")

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: UpsampledFTConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.spurious = _regions_for(model, config)
        self.register_buffer("group_weights", torch.zeros(0))

    def prepare(self, context: PrepareContext) -> dict[str, Any]:
        counts = training_group_counts(context, self.config.groups, self.spurious, "upsampled_ft")
        self.group_weights = inverse_frequency_weights(counts).to(self.group_weights.device)
        return {"group_counts": counts.tolist(), "group_weights": self.group_weights.tolist()}

    def sample_weights(self, groups: Tensor) -> Tensor:
        table = self.group_weights
        if table.numel() == 0:
            table = inverse_frequency_weights(torch.bincount(groups.cpu())).to(groups.device)
        if int(groups.max()) >= table.numel() or bool((table[groups] == 0).any()):
            raise StarftError(
                "upsampled_ft: a batch has a group the training set did not have "
                f"(groups {sorted(set(groups.tolist()))}, weights for {table.numel()})"
            )
        return table.to(groups.device)[groups]

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        features = self.model(images=batch["image"], normalize=True)["image_features"]
        logits = self.head(features.float())
        per_sample = F.cross_entropy(
            logits, batch["label"], label_smoothing=self.config.label_smoothing, reduction="none"
        )
        groups = batch_groups(batch, self.config.groups, self.spurious, "upsampled_ft")
        loss = (self.sample_weights(groups) * per_sample).mean()
        return {"loss": loss, "weighted_cross_entropy": loss, "cross_entropy": per_sample.mean()}

    def training_state(self) -> dict[str, Any]:
        return {**super().training_state(), "group_weights": self.group_weights.clone()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        super().load_training_state(state)
        self.group_weights = state["group_weights"].to(self.group_weights.device)


def clip_contrastive_per_sample(
    image_features: Tensor,
    text_features: Tensor,
    all_images: Tensor,
    all_texts: Tensor,
    logit_scale: Tensor,
    offset: int,
) -> Tensor:
    """FLYP's loss per local sample, ``½[CE_image→text + CE_text→image]`` (its mean is FLYP's)."""
    targets = torch.arange(image_features.shape[0], device=image_features.device) + offset
    per_image = F.cross_entropy(
        logit_scale * image_features @ all_texts.t(), targets, reduction="none"
    )
    per_text = F.cross_entropy(
        logit_scale * text_features @ all_images.t(), targets, reduction="none"
    )
    return 0.5 * (per_image + per_text)


class VLGroupDRO(FLYP):
    """Contrastive fine-tuning, loss = online group DRO over the per-sample contrastive losses.

    ``q`` is updated once per optimiser step (:meth:`after_optimizer_step`), see
    :mod:`starft.losses.group_dro`. The number of groups comes from the training set in
    :meth:`prepare` (``2·C`` with groups=discovery).
    """

    Config = GroupDROConfig
    data_keys = ("image", "label", "group")

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: GroupDROConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.spurious = _regions_for(model, config)
        groups = 2 * len(task.classnames) if config.groups == "discovery" else 0
        self.dro = GroupDROLoss(groups, config.step_size, world_size)

    def prepare(self, context: PrepareContext) -> dict[str, Any]:
        if self.config.groups == "dataset":
            counts = training_group_counts(context, "dataset", None, "vl_gdro")
            self.dro.resize(len(counts))
            return {"groups": len(counts), "group_counts": counts.tolist()}
        return {"groups": self.dro.log_weights.numel()}

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        captions = self.class_captions(batch, step)
        image_features, (text_features,) = self.encode(batch["image"], [captions])
        all_images = gather_with_grad(image_features, self.world_size)
        all_texts = gather_with_grad(text_features, self.world_size)
        per_sample = clip_contrastive_per_sample(
            image_features,
            text_features,
            all_images,
            all_texts,
            self.model.scale(),
            self.rank * image_features.shape[0],
        )
        groups = batch_groups(batch, self.config.groups, self.spurious, "vl_gdro")
        terms = self.dro(per_sample.float(), groups)
        return {
            "loss": terms["robust"],
            **terms,
            "contrastive": per_sample.mean().detach(),
            "max_group_weight": self.dro.weights.max(),
        }

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        super().after_optimizer_step(step)
        self.dro.update()

    def training_state(self) -> dict[str, Any]:
        return {**super().training_state(), "group_log_weights": self.dro.log_weights.clone()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        super().load_training_state(state)
        weights = state["group_log_weights"]
        self.dro.resize(weights.numel())
        self.dro.log_weights.copy_(weights)
