import dataclasses

import pytest
import torch.distributed as torch_dist

from starft.utils.distributed import DistInfo, all_gather_objects, dist_info, shard_indices


def test_dist_info_single_process_without_process_group():
    assert not torch_dist.is_initialized()
    info = dist_info()
    assert info == DistInfo(rank=0, world_size=1, local_rank=0)
    assert info.is_main
    assert not DistInfo(rank=1, world_size=2, local_rank=1).is_main
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.rank = 3  # type: ignore[misc]


@pytest.mark.parametrize(("n", "world"), [(0, 1), (1, 3), (10, 1), (10, 3), (7, 4), (5, 8)])
def test_shards_partition_range_without_padding(n, world):
    shards = [shard_indices(n, rank, world) for rank in range(world)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(n))  # union is the full set, no duplicates
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    assert shards[0] == list(range(0, n, world))


def test_shard_indices_rejects_bad_arguments():
    with pytest.raises(ValueError):
        shard_indices(5, 2, 2)
    with pytest.raises(ValueError):
        shard_indices(5, 0, 0)
    with pytest.raises(ValueError):
        shard_indices(-1, 0, 1)


def test_all_gather_objects_single_process_is_identity():
    obj = {"a": 1}
    out = all_gather_objects(obj, DistInfo())
    assert out == [obj] and out[0] is obj
