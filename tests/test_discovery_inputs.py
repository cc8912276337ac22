"""Regions, zero-shot probabilities and the model + dataset wrapper for discovery."""

from __future__ import annotations

import math

import pytest
import torch

from starft.data import create_dataset
from starft.discovery import (
    compute_discovery_inputs,
    discover_from_inputs,
    encode_regions,
    grid_boxes,
    grid_pixel_boxes,
    parse_regions,
    pixel_bounds,
    zero_shot_probs,
)
from starft.errors import StarftError
from starft.models import create_model


def test_grid_boxes_regions_and_pixels():
    boxes = grid_boxes(2)
    assert boxes.tolist() == [
        [0.0, 0.0, 0.5, 0.5],
        [0.5, 0.0, 1.0, 0.5],
        [0.0, 0.5, 0.5, 1.0],
        [0.5, 0.5, 1.0, 1.0],
    ]
    assert len(grid_boxes(3)) == 9
    assert grid_pixel_boxes(2, (32, 64)).tolist()[1] == [32.0, 0.0, 64.0, 16.0]
    with pytest.raises(StarftError, match="k must be"):
        grid_boxes(0)
    assert parse_regions("grid:3") == 3 and parse_regions("boxes") == "boxes"
    for bad in ("grid:0", "grid", "grid:x", "quadrants"):
        with pytest.raises(StarftError, match="grid:K"):
            parse_regions(bad)
    assert pixel_bounds(torch.tensor([0.4, 1.5, 16.0, 16.2]), 32, 32) == (0, 1, 16, 17)
    assert pixel_bounds(torch.tensor([31.5, 0.0, 32.0, 0.2]), 32, 32) == (31, 0, 32, 1)


def test_zero_shot_probs_scales():
    head = torch.eye(2, 3)
    images = torch.tensor([[2.0, 0.0, 0.0]])
    regions = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    probs = zero_shot_probs(images, regions, head, scoring="model", model_scale=2.0)
    assert probs.scoring == "model" and probs.scale == 2.0
    assert probs.image_probs[0, 0].item() == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert probs.region_probs[1].tolist() == pytest.approx([0.5, 0.5])
    ravl = zero_shot_probs(images, regions, head, scoring="ravl", model_scale=2.0)
    assert ravl.scale == pytest.approx(1 / 0.07)
    assert ravl.image_probs[0, 0].item() == pytest.approx(1 / (1 + math.exp(-1 / 0.07)))
    with pytest.raises(StarftError, match="scoring"):
        zero_shot_probs(images, regions, head, scoring="clip")
    with pytest.raises(StarftError, match="positive scale"):
        zero_shot_probs(images, regions, head, scoring="model")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = create_model("starft-tiny-vit").eval()
    dataset = create_dataset(
        "synthetic",
        num_classes=2,
        num_samples=12,
        image_size=48,
        seed=1,
        transform=model.preprocess_val,
    )
    return model, dataset


class BoxedDataset(torch.utils.data.Dataset):
    """A dataset whose samples carry ``boxes`` / ``box_labels`` (pixels of the model input)."""

    def __init__(self, inner, boxes, labels=True):
        self.inner, self.boxes, self.with_labels = inner, boxes, labels
        self.labels, self.classnames, self.templates = (
            inner.labels,
            inner.classnames,
            inner.templates,
        )

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        sample = dict(self.inner[index])
        sample["boxes"] = self.boxes[index]
        if self.with_labels:
            sample["box_labels"] = torch.arange(len(self.boxes[index]))
        return sample


def test_encode_regions_is_the_model_protocol(tiny):
    model, dataset = tiny
    images = torch.stack([dataset[i]["image"] for i in range(3)])
    boxes = [
        grid_pixel_boxes(2, model.image_size),
        torch.tensor([[0.0, 0.0, 16.0, 32.0]]),
        torch.zeros(0, 4),
    ]
    full, regions = encode_regions(model, images, boxes)
    assert full.shape == (3, model.embed_dim) and regions.shape == (5, model.embed_dim)
    with torch.no_grad():
        expected = model.region_features(images, boxes, method="crop")
        whole = model.encode_image(images, normalize=True)
    assert torch.allclose(regions, expected, atol=1e-5) and torch.allclose(full, whole, atol=1e-5)
    # The crop reference encodes each box resampled to the input size on its own.
    crop = torch.nn.functional.interpolate(
        images[1:2, :, :, :16], size=model.image_size, mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        alone = model.encode_image(crop, normalize=True)
    assert torch.nn.functional.cosine_similarity(alone, regions[4:5]).item() > 0.9
    _, fast = encode_regions(model, images, boxes, method="fast")
    assert fast.shape == regions.shape
    with pytest.raises(StarftError, match="region method"):
        encode_regions(model, images, boxes, method="pixels")


@pytest.mark.parametrize(("method", "scoring"), [("crop", "model"), ("fast", "ravl")])
def test_wrapper_end_to_end(tiny, method, scoring):
    model, dataset = tiny
    model.train()
    inputs = compute_discovery_inputs(
        model, dataset, regions="grid:2", method=method, scoring=scoring, batch_size=5
    )
    assert model.training  # left as found
    model.eval()
    assert inputs.region_embeddings.shape == (48, model.embed_dim)
    assert inputs.region_image.tolist() == [i for i in range(12) for _ in range(4)]
    assert inputs.region_boxes[:4].tolist() == grid_pixel_boxes(2, model.image_size).tolist()
    assert inputs.region_labels is None and inputs.regions == "grid:2"
    assert inputs.image_labels.tolist() == dataset.labels
    assert torch.allclose(inputs.image_probs.sum(dim=1), torch.ones(12))
    assert inputs.region_probs.shape == (48, 2)
    assert inputs.scoring == scoring and inputs.method == method
    result = discover_from_inputs(inputs, k_range=range(2, 5))
    assert result.scoring == scoring and result.scale == inputs.scale
    assert result.k is not None or "degenerate" in result.message


def test_wrapper_takes_given_and_sample_boxes(tiny):
    model, dataset = tiny
    size = model.image_size[0]
    boxes = [torch.tensor([[0.0, 0.0, size / 2, size / 2]] * (i % 3)) for i in range(12)]
    boxes = [b if len(b) else torch.zeros(0, 4) for b in boxes]
    given = compute_discovery_inputs(model, dataset, regions=boxes, indices=range(12))
    counts = [i % 3 for i in range(12)]
    assert given.regions == "given" and given.region_labels is None
    assert given.region_image.tolist() == [i for i in range(12) for _ in range(counts[i])]
    assert given.region_boxes.shape == (sum(counts), 4)
    from_samples = compute_discovery_inputs(
        model, BoxedDataset(dataset, boxes), regions="boxes", indices=[1, 2, 5]
    )
    assert from_samples.image_indices.tolist() == [1, 2, 5]
    assert from_samples.region_image.tolist() == [0, 1, 1, 2, 2]
    assert from_samples.region_labels.tolist() == [0, 0, 1, 0, 1]
    # The same box of the same image embeds the same way whichever way it came in.
    assert torch.allclose(from_samples.region_embeddings[0], given.region_embeddings[0], atol=1e-5)
    unlabelled = compute_discovery_inputs(
        model, BoxedDataset(dataset, boxes, labels=False), regions="boxes", indices=[2]
    )
    assert unlabelled.region_labels.tolist() == [-1, -1]


def test_wrapper_errors_name_the_problem(tiny):
    model, dataset = tiny
    with pytest.raises(StarftError, match="no 'boxes' field"):
        compute_discovery_inputs(model, dataset, regions="boxes")
    with pytest.raises(StarftError, match="one per image"):
        compute_discovery_inputs(model, dataset, regions=torch.zeros(12, 4))
    with pytest.raises(StarftError, match="boxes for 2 images but 12"):
        compute_discovery_inputs(model, dataset, regions=[torch.zeros(0, 4)] * 2)
    with pytest.raises(StarftError, match=r"sample 4: box 0 \[0.0, 0.0, 99.0, 9.0\] is not"):
        compute_discovery_inputs(
            model, dataset, regions=[torch.tensor([[0.0, 0.0, 99.0, 9.0]])], indices=[4]
        )
    raw = create_dataset("synthetic", num_classes=2, num_samples=3, image_size=48, seed=1)
    pil = compute_discovery_inputs(model, raw, regions="grid:1", indices=[0])  # preprocessed here
    assert pil.region_embeddings.shape == (1, model.embed_dim)
    boxed_pil = BoxedDataset(raw, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])] * 3)
    with pytest.raises(StarftError, match="no transform"):
        compute_discovery_inputs(model, boxed_pil, regions="boxes")
    small = create_dataset(
        "synthetic",
        num_classes=2,
        num_samples=3,
        image_size=48,
        seed=1,
        transform=lambda im: torch.zeros(3, 8, 8),
    )
    with pytest.raises(StarftError, match=r"is \(8, 8\) but the model takes"):
        compute_discovery_inputs(model, small)
