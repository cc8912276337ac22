"""``starft discover-bench``: metrics on hand-built cases, rankings, grids, and a 1-setting run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from starft.cli.main import main
from starft.discovery.discover import ClusterScore, DiscoveredCluster, DiscoveryResult
from starft.discovery_bench.grid import grid_names, load_grid
from starft.discovery_bench.metrics import (
    bootstrap_interval,
    box_coverage,
    precision_at_k,
    r_precision,
    ranking_metrics,
    relevant_regions,
)
from starft.discovery_bench.rankings import (
    distilling_failures_image_order,
    domino_image_order,
    ravl_ranking,
    regions_by_image_rank,
)
from starft.discovery_bench.run import _reusable, marker_gap, scoring_config, train_config
from starft.errors import StarftError

NAN4 = [np.nan] * 4


def test_box_coverage_and_relevance_by_overlap():
    regions = np.array(
        [[0, 0, 16, 16], [16, 0, 32, 16], [0, 0, 16, 16], [0, 0, 16, 16], [0, 0, 16, 16]], float
    )
    boxes = np.array(
        [
            [2, 2, 12, 12],  # inside the region: covered fully
            [10, 2, 20, 12],  # 4 of its 10 px columns lie in region [16, 32)
            [10, 2, 20, 12],  # 6 of 10 columns lie in [0, 16)
            NAN4,  # an image without a marker
            [11, 0, 21, 10],  # half of it: exactly at the threshold
        ]
    )
    np.testing.assert_allclose(box_coverage(regions, boxes)[[0, 1, 2, 4]], [1.0, 0.4, 0.6, 0.5])
    assert np.isnan(box_coverage(regions, boxes)[3])
    assert relevant_regions(regions, boxes, 0.5).tolist() == [True, False, True, False, True]
    assert relevant_regions(regions, boxes, 1.0).tolist() == [True, False, False, False, False]
    with pytest.raises(StarftError, match="min_coverage"):
        relevant_regions(regions, boxes, 0.0)
    with pytest.raises(StarftError, match=r"\[R, 4\]"):
        box_coverage(regions[:, :3], boxes[:, :3])


def test_precision_at_k_and_r_precision_on_hand_built_rankings():
    relevant = np.array([True, False, True, False, False, True])  # R = 3
    assert precision_at_k([0, 2, 1, 3], relevant, 2) == 1.0
    assert precision_at_k([1, 0, 3, 2], relevant, 4) == 0.5
    # a short ranking: positions past its end count as not relevant
    assert precision_at_k([0], relevant, 4) == 0.25
    assert precision_at_k([], relevant, 10) == 0.0
    assert r_precision([5, 1, 0, 2], relevant) == pytest.approx(2 / 3)
    assert ranking_metrics([0, 2, 5, 1], relevant, ks=(1, 5)) == {
        "P@1": 1.0,
        "P@5": pytest.approx(0.6),
        "R-prec": 1.0,
    }
    with pytest.raises(StarftError, match="more than once"):
        precision_at_k([0, 0], relevant, 2)
    with pytest.raises(StarftError, match="outside"):
        precision_at_k([6], relevant, 1)
    with pytest.raises(StarftError, match="undefined"):
        r_precision([0], np.zeros(3, bool))


def test_bootstrap_interval_brackets_the_mean():
    assert bootstrap_interval([0.4]) is None
    assert bootstrap_interval([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))
    low, high = bootstrap_interval([0.0, 1.0] * 10, resamples=500)
    assert 0.2 < low < 0.5 < high < 0.8


def test_marker_gap_compares_agreeing_and_disagreeing_images():
    labels = np.array([0, 0, 1, 1, 2, 2])
    marked = np.array([True, False, True, False, True, False])
    # class 0 carries the marker in training: agreeing = (0, marked), (1|2, unmarked)
    predictions = np.array([0, 1, 0, 1, 0, 2])  # wrong exactly where the marker disagrees
    gap = marker_gap(labels, predictions, marked, spurious=0)
    assert gap == {"accuracy": 0.5, "acc_agree": 1.0, "acc_disagree": 0.0, "gap": 1.0}


def _result(regions: list[list[int]]) -> DiscoveryResult:
    clusters = []
    for number, members in enumerate(regions):
        score = ClusterScore(number, members[0], len(members), 1.0 - number / 10, {}, True, 0.5)
        clusters.append(DiscoveredCluster(score, np.array(members), np.array([0])))
    return DiscoveryResult(clusters, "", 2, 0.5, {}, None, None)


def test_ravl_ranking_concatenates_clusters_in_order():
    assert ravl_ranking(_result([[4, 1], [0, 3]])).tolist() == [4, 1, 0, 3]
    assert ravl_ranking(_result([])).tolist() == []


def test_image_rankings_map_to_regions_image_by_image():
    region_image = np.repeat(np.arange(3), 4)  # 3 images x 4 regions
    ranking = regions_by_image_rank([2, 0, 1], region_image, seed=0)
    assert region_image[ranking].tolist() == [2] * 4 + [0] * 4 + [1] * 4
    assert sorted(ranking.tolist()) == list(range(12))
    with pytest.raises(StarftError, match="exactly once"):
        regions_by_image_rank([2, 0], region_image)


def test_failure_rankings_put_the_planted_failure_mode_first():
    rng = np.random.default_rng(0)
    # two directions; the errors all sit on direction B
    a, b = np.eye(8)[0], np.eye(8)[1]
    emb = np.vstack([a + 0.05 * rng.normal(size=(20, 8)), b + 0.05 * rng.normal(size=(20, 8))])
    labels = np.tile([0, 1], 20)
    errors = np.r_[np.zeros(20, bool), rng.random(20) < 0.7]
    first = set(range(20, 40))
    assert set(domino_image_order(emb, errors, num_classes=2)[:20].tolist()) == first
    order = distilling_failures_image_order(emb, labels, errors)
    assert set(order[:10].tolist()) <= first


def test_packaged_grids_load_and_overrides_apply():
    assert {"quick", "full"} <= set(grid_names())
    full = load_grid("full")
    assert full.cramers_v == [0.7, 0.8, 0.9, 0.95, 0.99]
    assert len(full.settings()) == len(full.classes) * 5 * len(full.kinds) * len(full.methods)
    quick = load_grid("quick", overrides=["eval.n=120", "train.optim.epochs=1"])
    assert quick.eval.n == 120 and quick.train["optim"]["epochs"] == 1
    assert quick.train["optim"]["lr"] == 1e-3  # merged, not replaced
    for bad, match in (
        (["kinds=[plus, glitter]"], "glitter"),
        (["regions=boxes"], "grid:K"),
        (["cramers_v=[1.5]"], "outside"),
        (["colour=red"], "unknown field"),
        (["train.optim.lrr=1"], "lrr"),
        (["k_range=9:3"], "k_range"),
    ):
        with pytest.raises(StarftError, match=match):
            load_grid("quick", overrides=bad)
    with pytest.raises(StarftError, match="no grid 'huge'"):
        load_grid("huge")


def test_cli_lists_settings_and_needs_out_to_run(capsys):
    assert main(["discover-bench", "--grid", "quick", "--list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "8 settings"
    assert main(["discover-bench", "--grid", "quick", "--methods", "ft", "--list"]) == 0
    assert "star-V0.99-plus-ft" in capsys.readouterr().out
    assert main(["discover-bench", "--grid", "quick"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["discover-bench", "--grid", "quick", "--list", "ravl=1"]) == 2


MICRO = """
defaults:
  model: sandbox-clip
  methods: [ft]
  train:
    data: {batch_size: 64, train: {n: 220, seed: 50}}
    optim: {lr: 1.0e-3, epochs: 1, warmup_steps: 1}
  eval: {n: 40, seed: 51}
  regions: grid:4
  region_method: fast
  k_range: "4:6"
grids:
  micro: {classes: [star], cramers_v: [0.99], kinds: [plus]}
"""


def test_micro_grid_writes_json_and_markdown(tmp_path, capsys):
    grid_file = tmp_path / "grids.yaml"
    grid_file.write_text(MICRO)
    out = tmp_path / "bench"
    args = ["discover-bench", "--grid-file", str(grid_file), "--grid", "micro", "--out", str(out)]
    assert main(["discover-bench", "--grid-file", str(grid_file), "--grid", "micro", "--list"]) == 0
    assert "star-V0.99-plus-ft" in capsys.readouterr().out
    assert main(args) == 0
    document = json.loads((out / "bench.json").read_text())
    assert document["schema"] == "starft.discover-bench/1"
    assert document["grid"]["name"] == "micro"
    (record,) = document["settings"]
    assert record["key"] == "star-V0.99-plus-ft" and record["scoring"] == "linear head"
    assert record["images"] == 40 and record["regions"] == 40 * 16
    # grid:4 is the markers' own grid: exactly one region holds each marker, half the images
    assert record["relevant_regions"] == 20
    assert 0.9 < record["achieved_cramers_v"] <= 0.99
    assert set(record["scores"]) == {"ravl", "random", "domino", "distilling_failures"}
    for scores in record["scores"].values():
        assert set(scores) == {"P@10", "P@25", "R-prec", "returned"}
        assert all(0.0 <= scores[m] <= 1.0 for m in ("P@10", "P@25", "R-prec"))
    assert record["scores"]["random"]["returned"] == 640
    assert record["kept"] == (record["marker"]["gap"] >= 0.05)
    summary = document["summary"]
    assert set(summary) == {"all", "ft"} and summary["all"]["settings"] == 1
    assert summary["all"]["kept"] == int(record["kept"])
    assert set(summary["all"]["ravl_minus"]) == {"random", "domino", "distilling_failures"}
    report = (out / "bench.md").read_text()
    assert "## Every setting" in report and "star" in report
    assert not list((out / "runs" / record["key"]).glob("final"))  # weights removed
    assert "report:" in capsys.readouterr().out
    # --resume reuses the saved record of a setting scored with the same configs ...
    assert main([*args, "--resume"]) == 0
    assert "reused" in capsys.readouterr().out
    again = json.loads((out / "bench.json").read_text())["settings"][0]
    assert again["scores"] == record["scores"]
    # ... and not one scored differently
    grid = load_grid("micro", grid_file)
    (setting,) = grid.settings()
    config = train_config(grid, setting, grid.model, out / "runs" / setting.key)
    saved = out / "runs" / setting.key / "record.json"
    assert _reusable(saved, config, scoring_config(grid)) is not None
    changed = load_grid("micro", grid_file, ["min_coverage=0.6"])
    assert _reusable(saved, config, scoring_config(changed)) is None


@pytest.mark.slow
def test_quick_grid_ravl_beats_random(tmp_path):
    """The quick grid (<= 20 min on 2 CPU cores): RaVL's P@10 above Random's on kept settings."""
    assert main(["discover-bench", "--grid", "quick", "--out", str(tmp_path / "quick")]) == 0
    summary = json.loads((tmp_path / "quick" / "bench.json").read_text())["summary"]["all"]
    assert summary["kept"] >= 1, "no setting kept: the models did not learn the marker"
    ravl = summary["rankings"]["ravl"]["P@10"]["mean"]
    random = summary["rankings"]["random"]["P@10"]["mean"]
    assert ravl > random


def test_achieved_cramers_v_replays_the_training_table():
    from starft.data import create_dataset
    from starft.sandbox.marker_tasks import achieved_cramers_v

    dataset = create_dataset("sandbox_markers", n=220, spurious="heart", cramers_v=0.8, seed=7)
    assert achieved_cramers_v(n=220, spurious="heart", cramers_v=0.8, seed=7) == (
        dataset.markers.cramers_v
    )
