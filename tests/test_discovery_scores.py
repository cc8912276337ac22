"""RaVL's cluster performance gap, influence, candidate rule and filter on hand-built tables."""

from __future__ import annotations

import numpy as np
import pytest

from starft.discovery import (
    cluster_influence,
    cluster_performance_gap,
    is_candidate,
    total_gap,
)
from starft.discovery.scores import ClassGap


def _gap_table():
    # label 0: 4 images with the cluster (all right), 2 without (1 right)
    # label 1: 2 with (both wrong), 4 without (3 right)
    # label 2: only without the cluster -> not a label of the cluster
    # label 3: 1 with, none without -> skipped
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 3])
    preds = np.array([0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 2, 0, 3])
    inside = np.array([1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    return inside, labels, preds


def test_cluster_performance_gap_hand_computed():
    gaps = cluster_performance_gap(*_gap_table())
    assert sorted(gaps) == [0, 1]
    g0, g1 = gaps[0], gaps[1]
    assert (g0.n_in, g0.n_out, g0.acc_in, g0.acc_out) == (4, 2, 1.0, 0.5)
    assert g0.gap == pytest.approx(2 * 2 / 6 * (1.0 - 0.5))  # 1/3
    assert (g1.n_in, g1.n_out, g1.acc_in, g1.acc_out) == (2, 4, 0.0, 0.75)
    assert g1.gap == pytest.approx(2 * 2 / 6 * (0.0 - 0.75))  # -1/2
    assert total_gap(gaps) == pytest.approx(1 / 3 + 1 / 2)
    assert is_candidate(gaps)


def _row(label: int, gap: float) -> ClassGap:
    return ClassGap(label, 1, 1, 0.0, 0.0, gap)


def test_candidate_rule_needs_both_signs():
    assert is_candidate({0: _row(0, 0.2), 1: _row(1, -0.1)})
    assert not is_candidate({0: _row(0, 0.2), 1: _row(1, 0.1)})
    assert not is_candidate({0: _row(0, -0.2), 1: _row(1, 0.0)})
    assert not is_candidate({})


def test_cluster_influence_hand_computed():
    # 7 images, 3 classes; regions listed per image (region index: owner)
    region_image = np.array([0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 6])
    in_cluster = np.zeros(13, dtype=bool)
    in_cluster[[0, 2, 4, 6, 7, 11]] = True
    labels = np.array([1, 1, 1, 1, 1, 0, 2])
    image_probs = np.array(
        [
            [0.9, 0.1, 0.0],  # 0: label 1 predicted 0 -> wrong
            [0.8, 0.2, 0.0],  # 1: wrong
            [0.7, 0.3, 0.0],  # 2: wrong
            [0.6, 0.4, 0.0],  # 3: wrong, but its only region -> skipped
            [0.1, 0.9, 0.0],  # 4: right -> not recorded
            [0.1, 0.9, 0.0],  # 5: label 0 predicted 1, but not in the cluster -> not visited
            [0.6, 0.0, 0.4],  # 6: label 2 wrong, but G^2 > 0 -> not recorded
        ]
    )
    region_probs = np.zeros((13, 3))
    region_probs[[0, 1], 0] = [0.8, 0.3]  # image 0: the cluster region drives class 0 -> True
    region_probs[[2, 3], 0] = [0.2, 0.7]  # image 1: the other region drives it -> False
    region_probs[[4, 5], 0] = [0.5, 0.5]  # image 2: tie -> first region (in cluster) -> True
    region_probs[[11, 12], 0] = [0.1, 0.9]
    gaps = {1: _row(1, -0.3), 2: _row(2, 0.2)}
    h = cluster_influence(in_cluster, gaps, region_image, labels, image_probs, region_probs)
    assert h == pytest.approx(2 / 3)
    # label 2's errors count once its gap is negative: share 0 there, max stays 2/3
    gaps[2] = _row(2, -0.2)
    assert cluster_influence(
        in_cluster, gaps, region_image, labels, image_probs, region_probs
    ) == pytest.approx(2 / 3)
    # no label with a negative gap -> nothing recorded -> -inf
    gaps = {1: _row(1, 0.3), 2: _row(2, 0.2)}
    h = cluster_influence(in_cluster, gaps, region_image, labels, image_probs, region_probs)
    assert h == float("-inf")
