"""Naming discovered clusters with a vocabulary, and writing the names out as a StarFT pool.

A cluster's name is the vocabulary's descriptors ranked by the cosine between the cluster's mean
region embedding (mean of the normalised region embeddings, renormalised) and each descriptor's
text embedding. A descriptor is embedded as the caption ``descriptor.format(subject)`` (default
subject ``"a photo"``: ``"{} in a water scene."`` -> ``"a photo in a water scene."``) through the
model's own text tower, so names live in the same space as the regions.

``contrast`` scoring subtracts each descriptor's cosine to the mean of *all* regions, so what every
region shares (a low resolution, a style) does not name every cluster: a cluster is named by what
sets it apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.data.format_strings import check_format_strings
from starft.errors import StarftError
from starft.models import ClipModel
from starft.models.zeroshot import caption_embeddings
from starft.utils.io import atomic_write_json

DEFAULT_SUBJECT = "a photo"
DEFAULT_TOP = 5
#: ``cosine``: cos(cluster mean, descriptor); ``contrast``: minus cos(mean of all regions, it)
NAMING_SCORES = ("cosine", "contrast")


@dataclass(frozen=True)
class DescriptorScore:
    """One name of a cluster: a descriptor and its cosine to the cluster's mean region."""

    descriptor: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor, "score": self.score}


def descriptor_embeddings(
    model: ClipModel,
    descriptors: Sequence[str],
    *,
    subject: str = DEFAULT_SUBJECT,
    device: str | torch.device | None = None,
) -> Tensor:
    """Normalised text embeddings ``[V, D]`` of ``descriptor.format(subject)``, one per entry."""
    if not descriptors:
        raise StarftError("naming: the vocabulary is empty")
    if not subject.strip() or "{" in subject or "}" in subject:
        raise StarftError(f"naming: subject {subject!r} is blank or contains a brace")
    was_training = model.training
    model.eval()
    try:
        return caption_embeddings(model, [subject], list(descriptors), device=device)[0].cpu()
    finally:
        model.train(was_training)


def cluster_embedding(region_embeddings: Tensor, regions: Sequence[int]) -> Tensor:
    """The normalised mean of the normalised embeddings of ``regions``."""
    if len(regions) == 0:
        raise StarftError("naming: a cluster has no regions")
    members = F.normalize(torch.as_tensor(region_embeddings).float()[list(regions)], dim=-1)
    return F.normalize(members.mean(dim=0), dim=-1)


def name_clusters(
    region_embeddings: Tensor,
    clusters: Sequence[Sequence[int]],
    text_embeddings: Tensor,
    descriptors: Sequence[str],
    *,
    top: int = DEFAULT_TOP,
    score: str = "cosine",
) -> list[list[DescriptorScore]]:
    """The ``top`` descriptors of every cluster (lists of region indices), best first.

    ``score``: ``cosine`` (to the cluster's mean region embedding) or ``contrast`` (that minus
    the cosine to the mean of every region). Equal scores keep vocabulary order.
    """
    if score not in NAMING_SCORES:
        raise StarftError(f"naming score must be one of {', '.join(NAMING_SCORES)}, got '{score}'")
    text = F.normalize(torch.as_tensor(text_embeddings).float(), dim=-1)
    if text.ndim != 2 or text.shape[0] != len(descriptors):
        raise StarftError(
            f"naming: {tuple(text.shape)} text embeddings for {len(descriptors)} descriptors"
        )
    if region_embeddings.shape[-1] != text.shape[1]:
        raise StarftError(
            f"naming: region embeddings have {region_embeddings.shape[-1]} dimensions, "
            f"text embeddings {text.shape[1]}"
        )
    if top < 1:
        raise StarftError(f"naming: top must be >= 1, got {top}")
    baseline = torch.zeros(text.shape[0])
    if score == "contrast":
        everything = range(region_embeddings.shape[0])
        baseline = text @ cluster_embedding(region_embeddings, everything)
    names = []
    for regions in clusters:
        scores = text @ cluster_embedding(region_embeddings, regions) - baseline
        order = torch.sort(-scores, stable=True).indices[:top]
        names.append([DescriptorScore(descriptors[i], float(scores[i])) for i in order.tolist()])
    return names


def pool_from_names(
    names: Sequence[Sequence[DescriptorScore]], concepts: Sequence[str]
) -> dict[str, list[str]]:
    """Concept -> descriptors, one concept per cluster in rank order.

    A descriptor naming several clusters is kept under the first (best-ranked) only, as a pool
    lists every descriptor once; a concept left without descriptors is omitted.
    """
    if len(names) != len(concepts):
        raise StarftError(f"naming: {len(names)} named clusters for {len(concepts)} concepts")
    seen: set[str] = set()
    pools: dict[str, list[str]] = {}
    for concept, scored in zip(concepts, names):
        fresh = [s.descriptor for s in scored if s.descriptor not in seen]
        seen.update(fresh)
        if fresh:
            pools[concept] = fresh
    return pools


def write_pool_file(
    path: str | Path, pools: Mapping[str, list[str]], provenance: Mapping[str, Any]
) -> Path:
    """Write ``pools`` atomically as a StarFT pool file (an object of lists, a ``_provenance``).

    Every descriptor is checked first, so nothing is written that ``method.pool=FILE`` refuses.
    """
    if not pools:
        raise StarftError(f"pool file '{path}': no descriptors to write")
    for concept, items in pools.items():
        if concept.startswith("_"):
            raise StarftError(f"pool file '{path}': concept '{concept}' starts with '_'")
        check_format_strings(items, f"pool file '{path}' concept '{concept}'")
    info = dict(provenance)
    info["final"] = {concept: len(items) for concept, items in pools.items()}
    atomic_write_json(path, {"_provenance": info, **{k: list(v) for k, v in pools.items()}})
    return Path(path)
