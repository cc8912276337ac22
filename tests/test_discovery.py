"""``discover`` end to end on synthetic region embeddings with a planted spurious feature."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from starft.discovery import discover
from starft.errors import StarftError

DIM = 16


def _planted(n_images: int = 60, seed: int = 0, learned: bool = True):
    """Two classes, 4 regions per image: the class object, two background regions and either a
    marker (in half the images, independent of the class) or a third background region.

    With ``learned`` the model predicts class 0 whenever the marker is present (so class-1 images
    with the marker are wrong; the marker region carries that class-0 evidence) and misses 40% of
    the class-0 images without it. Without ``learned`` every prediction is right.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0]
    obj0, obj1, background, marker = basis[:4]
    labels = np.arange(n_images) % 2
    has_marker = rng.permutation(np.arange(n_images) % 2 == 0)
    missed = (labels == 0) & ~has_marker & (rng.random(n_images) < 0.4)
    emb, owner, marker_regions = [], [], []
    region_probs = []
    preds = np.where(has_marker, 0, np.where(missed, 1, labels)) if learned else labels
    for image in range(n_images):
        parts = [obj0 if labels[image] == 0 else obj1, background, background]
        parts.append(marker if has_marker[image] else background)
        for slot, vector in enumerate(parts):
            if slot == 3 and has_marker[image]:
                marker_regions.append(len(emb))
            emb.append(vector + 0.05 * rng.standard_normal(DIM))
            owner.append(image)
            if slot == 0:
                region_probs.append([0.8, 0.2] if labels[image] == 0 else [0.2, 0.8])
            elif slot == 3 and has_marker[image]:
                region_probs.append([0.95, 0.05] if learned else [0.5, 0.5])
            else:
                region_probs.append([0.5, 0.5])
    image_probs = np.eye(2)[preds] * 0.8 + 0.1
    return (
        np.array(emb),
        np.array(owner),
        labels,
        image_probs,
        np.array(region_probs),
        set(marker_regions),
    )


def test_discover_finds_the_planted_cluster_first():
    emb, owner, labels, image_probs, region_probs, marker = _planted()
    result = discover(emb, owner, labels, image_probs, region_probs, seed=0)
    assert result.found, result.message
    top = result.clusters[0]
    assert set(top.regions.tolist()) == marker
    assert top.medoid in marker and top.regions[0] == top.medoid  # the medoid is most similar
    assert top.gaps[0].gap > 0 > top.gaps[1].gap  # helps class 0, hurts class 1
    assert top.influence == 1.0
    assert result.k in range(4, 10) and result.silhouette > 0
    gaps = [c.gap for c in result.clusters]
    assert gaps == sorted(gaps, reverse=True)
    # every passing cluster is in the scores; the JSON form round-trips
    assert {c.cluster for c in result.clusters} <= {s.cluster for s in result.scores if s.passes}
    assert (
        json.loads(json.dumps(result.to_dict()))["clusters"][0]["regions"] == top.regions.tolist()
    )


def test_discover_accepts_tensors_and_unnormalised_embeddings():
    emb, owner, labels, image_probs, region_probs, marker = _planted(seed=1)
    result = discover(
        torch.tensor(emb * 3.0),
        torch.tensor(owner),
        torch.tensor(labels),
        torch.tensor(image_probs),
        torch.tensor(region_probs),
    )
    assert set(result.clusters[0].regions.tolist()) == marker


def test_discover_none_found_is_a_plain_message():
    emb, owner, labels, image_probs, region_probs, _ = _planted(learned=False)
    result = discover(emb, owner, labels, image_probs, region_probs)
    assert not result.found and result.clusters == []
    assert result.message.startswith("no spurious cluster found")
    assert result.k is not None and len(result.scores) == result.k


def test_discover_degenerate_clustering():
    emb = np.tile(np.eye(4)[0], (12, 1))  # every region identical
    owner = np.repeat(np.arange(3), 4)
    probs = np.full((3, 2), 0.5)
    result = discover(emb, owner, np.array([0, 1, 0]), probs, np.full((12, 2), 0.5))
    assert result.clusters == [] and "degenerate" in result.message
    # fewer regions than any K in 2|Y|..5|Y|-1
    result = discover(np.eye(3), [0, 1, 2], [0, 1, 0], np.full((3, 2), 0.5), np.full((3, 2), 0.5))
    assert result.clusters == [] and "3 regions" in result.message


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: {**a, "region_image": a["region_image"][:-1]}, "region_image has"),
        (lambda a: {**a, "region_image": a["region_image"] + 100}, "outside"),
        (lambda a: {**a, "image_labels": a["image_labels"] + 5}, "label"),
        (lambda a: {**a, "region_probs": a["region_probs"][:, :1]}, "classes"),
        (lambda a: {**a, "image_probs": a["image_probs"] * np.nan}, "NaN"),
        (lambda a: {**a, "region_image": a["region_image"] * 1.0}, "integers"),
        (lambda a: {**a, "region_embeddings": a["region_embeddings"] * 0}, "all zeros"),
    ],
)
def test_discover_rejects_bad_inputs(change, match):
    emb, owner, labels, image_probs, region_probs, _ = _planted(n_images=6)
    args = {
        "region_embeddings": emb,
        "region_image": owner,
        "image_labels": labels,
        "image_probs": image_probs,
        "region_probs": region_probs,
    }
    with pytest.raises(StarftError, match=match):
        discover(**change(args))
    with pytest.raises(StarftError, match="k_range is empty"):
        discover(**args, k_range=[])
