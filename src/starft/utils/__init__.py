"""Generic helpers with no knowledge of models or data: atomic file writes, provenance, and the
few distributed primitives the rest of the package needs."""

from starft.utils.distributed import DistInfo, all_gather_objects, dist_info, shard_indices
from starft.utils.io import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    git_hash,
)

__all__ = [
    "DistInfo",
    "all_gather_objects",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "dist_info",
    "git_hash",
    "shard_indices",
]
