"""New regions -> discovered clusters, by the nearest medoid of a ``discovery.json``.

Stage 2 (method ``ravl``) splits the regions of training images into spurious and the rest: a
region is embedded (by a frozen copy of the model discovery ran on, with the same region method)
and assigned to the nearest of *all* K medoids of the stage-1 clustering under cosine distance; it
is spurious when that cluster is one discovery kept. Nearest among all K, not only among the kept
ones: otherwise every region would belong to some kept cluster.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.discovery.report import SCHEMA
from starft.errors import StarftError


@dataclass(frozen=True)
class SpuriousMedoids:
    """The K medoid embeddings of a discovery run and which of their clusters are spurious."""

    embeddings: Tensor  # [K, D], normalised
    spurious: Tensor  # [K] bool: the cluster passed discovery
    region_method: str  # how discovery embedded its regions (crop, fast, auto)
    regions: str  # discovery's region source, e.g. "grid:2"
    source: str  # the file it came from (for messages)

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @classmethod
    def load(cls, path: str | Path) -> SpuriousMedoids:
        """Read ``discovery.json`` as written by ``starft discover``; every problem names the file
        and the field."""
        file = Path(path)
        if file.is_dir():
            file = file / "discovery.json"
        try:
            document = json.loads(file.read_text())
        except FileNotFoundError:
            raise StarftError(f"discovery file not found: {file}") from None
        except (OSError, json.JSONDecodeError) as error:
            raise StarftError(f"discovery file {file}: not readable JSON ({error})") from None
        return cls.from_document(document, str(file))

    @classmethod
    def from_document(cls, document: Any, source: str) -> SpuriousMedoids:
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise StarftError(f"discovery file {source}: not a {SCHEMA} document")
        record = document.get("medoids")
        if record is None:
            raise StarftError(
                f"discovery file {source}: 'medoids' is missing or null (clustering was degenerate,"
                " or the file predates medoid embeddings: rerun `starft discover`)"
            )
        rows = record.get("embeddings") if isinstance(record, dict) else None
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            raise StarftError(f"discovery file {source}: medoids.embeddings must be a [K, D] list")
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            raise StarftError(f"discovery file {source}: medoids.embeddings rows differ in length")
        values = [v for r in rows for v in r]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise StarftError(f"discovery file {source}: medoids.embeddings has non-finite values")
        embeddings = torch.tensor(rows, dtype=torch.float32)
        if bool((embeddings.norm(dim=1) == 0).any()):
            raise StarftError(f"discovery file {source}: medoids.embeddings has a zero row")
        clusters = record.get("spurious_clusters")
        if not isinstance(clusters, list) or not all(
            isinstance(c, int) and 0 <= c < len(rows) for c in clusters
        ):
            raise StarftError(
                f"discovery file {source}: medoids.spurious_clusters must list cluster ids in "
                f"[0, {len(rows)})"
            )
        spurious = torch.zeros(len(rows), dtype=torch.bool)
        spurious[clusters] = True
        return cls(
            embeddings=F.normalize(embeddings, dim=1),
            spurious=spurious,
            region_method=str(record.get("region_method", "crop")),
            regions=str(record.get("regions", "")),
            source=source,
        )

    def check_dim(self, dim: int) -> None:
        if dim != self.embed_dim:
            raise StarftError(
                f"discovery file {self.source}: medoid embeddings have {self.embed_dim} dimensions "
                f"but the model embeds in {dim} (run discovery with the model being fine-tuned)"
            )

    def assign(self, region_embeddings: Tensor) -> Tensor:
        """Nearest medoid (cluster id) of each normalised region embedding ``[R, D]`` -> ``[R]``.

        Largest cosine similarity = smallest cosine distance; ties go to the lowest cluster id.
        """
        self.check_dim(region_embeddings.shape[-1])
        medoids = self.embeddings.to(region_embeddings.device, torch.float32)
        return (region_embeddings.float() @ medoids.t()).argmax(dim=-1)

    def is_spurious(self, region_embeddings: Tensor) -> Tensor:
        """``[R]`` bool: the region's nearest medoid belongs to a discovered cluster."""
        return self.spurious.to(region_embeddings.device)[self.assign(region_embeddings)]
