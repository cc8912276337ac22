import importlib
import os
import socket

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from starft.eval import Predictions, evaluate, predict
from starft.utils.distributed import DistInfo, shard_indices

# `starft.eval.predict` the function shadows the submodule of the same name on the package.
predict_module = importlib.import_module("starft.eval.predict")

N, DIM, N_CLASSES = 23, 4, 3


class FakeDataset(Dataset):
    """Dict samples over fixed random features; ``skip`` indices return None (unreadable)."""

    def __init__(self, n: int = N, skip: frozenset[int] = frozenset(), with_groups: bool = True):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, DIM, generator=gen)
        self.classnames = [f"c{k}" for k in range(N_CLASSES)]
        self.labels = [(i * 7) % N_CLASSES for i in range(n)]
        self.groups = [i % 2 for i in range(n)] if with_groups else None
        self.group_names = ["even", "odd"] if with_groups else None
        self.skip = skip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        if i in self.skip:
            return None
        group = -1 if self.groups is None else self.groups[i]
        return {"image": self.images[i], "label": self.labels[i], "group": group, "index": i}


def make_classifier() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Linear(DIM, N_CLASSES)


def expected_logits(ds: FakeDataset, clf: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return clf(ds.images)


def test_predict_single_process_in_order():
    ds, clf = FakeDataset(), make_classifier()
    out = predict(clf, ds, batch_size=5)
    assert isinstance(out, Predictions) and len(out) == N
    assert torch.equal(out.indices, torch.arange(N))
    assert out.logits.dtype == torch.float32 and out.logits.device.type == "cpu"
    assert torch.allclose(out.logits, expected_logits(ds, clf), atol=1e-6)
    assert out.labels.tolist() == ds.labels and out.groups.tolist() == ds.groups
    assert torch.equal(out.preds, out.logits.argmax(1))
    assert torch.allclose(out.probs.sum(1), torch.ones(N))
    # Results are ordinary tensors usable outside inference mode (e.g. in-place masking).
    assert not out.logits.is_inference()
    out.logits[:, 0] = 0.0


def test_predict_simulated_two_ranks(monkeypatch):
    ds, clf = FakeDataset(), make_classifier()
    full = predict(clf, ds, batch_size=4)
    shard0, shard1 = shard_indices(N, 0, 2), shard_indices(N, 1, 2)
    assert sorted(shard0 + shard1) == list(range(N))
    assert not set(shard0) & set(shard1)

    # Rank 1 alone (its gather returns only its own part): it evaluated exactly its shard.
    monkeypatch.setattr(predict_module, "all_gather_objects", lambda obj, info: [obj])
    part1 = predict(clf, ds, batch_size=4, dist=DistInfo(rank=1, world_size=2, local_rank=1))
    assert part1.indices.tolist() == shard1

    # Rank 0 with a gather that also delivers rank 1's part: the merged result is the full set.
    other = (part1.indices, part1.logits, part1.labels, part1.groups)
    monkeypatch.setattr(predict_module, "all_gather_objects", lambda obj, info: [obj, other])
    merged = predict(clf, ds, batch_size=4, dist=DistInfo(rank=0, world_size=2, local_rank=0))
    assert torch.equal(merged.indices, torch.arange(N))
    assert torch.allclose(merged.logits, full.logits)
    assert torch.equal(merged.labels, full.labels) and torch.equal(merged.groups, full.groups)


def test_predict_skips_none_samples_and_empty_batches():
    skip = frozenset({0, 1, 2, 3, 4, 9})  # batch 0 (size 5) is entirely None
    out = predict(make_classifier(), FakeDataset(skip=skip), batch_size=5)
    assert out.indices.tolist() == [i for i in range(N) if i not in skip]


def test_predict_restores_train_mode_and_uses_eval_mode():
    torch.manual_seed(2)
    clf = torch.nn.Sequential(torch.nn.Dropout(0.9), torch.nn.Linear(DIM, N_CLASSES))
    ds = FakeDataset()
    clf.train()
    out = predict(clf, ds, batch_size=8)
    assert clf.training
    clf.eval()
    assert torch.allclose(out.logits, expected_logits(ds, clf), atol=1e-6)


def test_predict_plain_callable_autocast_and_progress():
    clf = make_classifier()
    ds = FakeDataset()
    out = predict(
        lambda x: clf(x) * 2, ds, batch_size=8, autocast_dtype=torch.bfloat16, progress=True
    )
    assert out.logits.dtype == torch.float32
    assert torch.allclose(out.logits, 2 * expected_logits(ds, clf), atol=0.1)


def test_predict_rejects_bad_logit_shape():
    with pytest.raises(ValueError, match="expected \\[batch, classes\\]"):
        predict(lambda x: x.sum(1), FakeDataset(), batch_size=4)


def test_evaluate_uses_dataset_groups():
    ds, clf = FakeDataset(), make_classifier()
    metrics, per_group, preds = evaluate(clf, ds, batch_size=6)
    correct = (expected_logits(ds, clf).argmax(1) == torch.tensor(ds.labels)).float()
    assert metrics["top1"] == pytest.approx(correct.mean().item())
    assert metrics["n_samples"] == N
    assert set(per_group) == {"even", "odd"}
    assert per_group["even"]["n"] == 12 and per_group["odd"]["n"] == 11
    assert per_group["odd"]["acc"] == pytest.approx(correct[1::2].mean().item())
    assert metrics["worst_group_acc"] == min(v["acc"] for v in per_group.values())
    assert len(preds) == N

    metrics, per_group, _ = evaluate(clf, FakeDataset(with_groups=False), batch_size=6)
    assert per_group == {} and "worst_group_acc" not in metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gloo_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        metrics, per_group, preds = evaluate(make_classifier(), FakeDataset(), batch_size=4)
        torch.save(
            {
                "metrics": metrics,
                "per_group": per_group,
                "indices": preds.indices,
                "logits": preds.logits,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        torch_dist.destroy_process_group()


def test_predict_two_process_gloo(tmp_path):
    world_size = 2
    mp.spawn(_gloo_worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size)
    ref_metrics, ref_per_group, ref = evaluate(make_classifier(), FakeDataset(), batch_size=4)
    for rank in range(world_size):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(got["indices"], torch.arange(N))  # full set, no duplicates, ordered
        assert torch.allclose(got["logits"], ref.logits, atol=1e-6)
        # Batch composition differs per rank, so compare floats with a tolerance.
        assert got["metrics"].pop("worst_group") == ref_metrics["worst_group"]
        # float32 means (NLL, ECE) summed in another order: a few ulps apart, so not rel=1e-6.
        assert got["metrics"] == pytest.approx(
            {k: v for k, v in ref_metrics.items() if k != "worst_group"}, rel=1e-5, abs=1e-6
        )
        assert got["per_group"] == ref_per_group


def test_local_fallback_collate():
    # The local collate is used when starft.data is unavailable; exercise it directly.
    collate = predict_module._collate_eval_samples
    assert collate([None, None]) is None
    batch = collate([None, {"image": torch.ones(2), "label": 1, "group": None, "index": 5}])
    assert batch["image"].shape == (1, 2)
    assert batch["group"].tolist() == [-1] and batch["index"].dtype == torch.long
    skip = frozenset({0, 1, 2, 3, 7})
    out = predict(make_classifier(), FakeDataset(skip=skip), batch_size=4, collate_fn=collate)
    assert out.indices.tolist() == [i for i in range(N) if i not in skip]
