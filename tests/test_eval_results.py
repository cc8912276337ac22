import csv
import json
from collections import defaultdict
from datetime import datetime, timezone

import pytest
import torch

from starft import __version__
from starft.errors import StarftError
from starft.eval import (
    SCHEMA_VERSION,
    Predictions,
    build_result,
    compute_metrics,
    load_result,
    result_filename,
    write_predictions_csv,
    write_result,
)
from starft.eval.results import PREDICTIONS_CSV_HEADER, REQUIRED_KEYS


def make_result(**extra):
    return build_result(
        model="ViT-B-16",
        method="starft",
        dataset="waterbirds",
        config={"lr": 1e-5, "epochs": 10},
        metrics={"top1": 0.9, "worst_group_acc": 0.5},
        per_group={"landbird_land": {"acc": 0.95, "n": 10}},
        n_samples=10,
        extra=extra or None,
    )


def test_build_result_keys_order_and_provenance():
    result = make_result(seed=3)
    assert list(result) == [*REQUIRED_KEYS, "seed"]
    assert result["schema_version"] == SCHEMA_VERSION
    assert result["starft_version"] == __version__
    git = result["git_hash"]
    assert git is None or len(git) == 40
    date = datetime.fromisoformat(result["date"])
    assert date.utcoffset() == timezone.utc.utcoffset(None)
    with pytest.raises(ValueError, match="metrics"):
        make_result(metrics={})


def test_result_round_trips_through_load_result(tmp_path):
    result = make_result()
    path = tmp_path / "runs" / result_filename("ViT-B-16", "starft", "waterbirds")
    write_result(path, result)
    loaded = load_result(path)
    assert loaded == result
    assert list(loaded) == list(result)  # key order survives the file
    assert [p.name for p in path.parent.iterdir()] == ["ViT-B-16__starft__waterbirds.json"]


def test_write_result_with_unserialisable_config_leaves_nothing(tmp_path):
    bad = build_result(
        model="m",
        method="ft",
        dataset="d",
        config={"fn": print},
        metrics={},
        per_group={},
        n_samples=0,
    )
    with pytest.raises(TypeError):
        write_result(tmp_path / "r.json", bad)
    assert list(tmp_path.iterdir()) == []


def test_result_filename_is_filesystem_safe():
    assert result_filename("ViT-B-16", "starft", "imagenet") == "ViT-B-16__starft__imagenet.json"
    name = result_filename("hf-hub:org/ViT B 16", "lp ft", "imagenet/r")
    assert name == "hf-hub-org-ViT-B-16__lp-ft__imagenet-r.json"
    assert not any(c in name for c in "/: \\")
    with pytest.raises(StarftError, match="dataset"):
        result_filename("m", "ft", "//")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"schema_version": 1}', "missing required keys"),
    ],
)
def test_load_result_errors_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StarftError, match=fragment) as info:
        load_result(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_result_rejects_newer_schema(tmp_path):
    result = make_result()
    result["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "new.json"
    path.write_text(json.dumps(result))
    with pytest.raises(StarftError, match="schema_version"):
        load_result(path)


def test_worst_group_recomputed_from_predictions_csv(tmp_path):
    gen = torch.Generator().manual_seed(0)
    n = 40
    logits = torch.randn(n, 3, generator=gen)
    labels = torch.randint(0, 3, (n,), generator=gen)
    groups = torch.arange(n) % 4
    preds = Predictions(torch.arange(n), logits, labels, groups)
    path = tmp_path / "preds.csv"
    write_predictions_csv(path, preds)

    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == PREDICTIONS_CSV_HEADER
        rows = list(reader)
    assert len(rows) == n
    hits: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        hits[int(row["group"])].append(int(row["prediction"]) == int(row["label"]))
        assert len(row["confidence"].split(".")[1]) == 6
    worst_from_csv = min(sum(h) / len(h) for h in hits.values())

    metrics, _ = compute_metrics(logits, labels, groups)
    assert worst_from_csv == pytest.approx(metrics["worst_group_acc"])
    assert float(rows[0]["confidence"]) == pytest.approx(preds.probs[0].max().item(), abs=1e-6)
    assert [int(r["prediction"]) for r in rows] == preds.preds.tolist()


def test_write_result_writes_predictions_beside_it(tmp_path):
    preds = Predictions(
        torch.arange(2),
        torch.tensor([[2.0, 0.0], [0.0, 1.0]]),
        torch.tensor([0, 0]),
        torch.tensor([0, 1]),
    )
    path = tmp_path / "m__ft__d.json"
    write_result(path, make_result(), predictions=preds)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m__ft__d.json",
        "m__ft__d.predictions.csv",
    ]
    rows = (tmp_path / "m__ft__d.predictions.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows[1:]] == [["0", "0", "0"], ["1", "0", "1"]]
    write_result(tmp_path / "other.json", make_result())
    assert not (tmp_path / "other.predictions.csv").exists()
