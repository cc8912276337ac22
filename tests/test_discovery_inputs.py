"""Regions, zero-shot probabilities and the model + dataset wrapper for discovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from starft.data import create_dataset
from starft.discovery import (
    compute_discovery_inputs,
    crop_and_encode,
    crop_image,
    crop_tensor,
    discover_from_inputs,
    grid_boxes,
    zero_shot_probs,
)
from starft.discovery.regions import check_boxes, pixel_box
from starft.errors import StarftError
from starft.models import create_model


def test_grid_boxes_and_pixels():
    boxes = grid_boxes(2)
    assert boxes.tolist() == [
        [0.0, 0.0, 0.5, 0.5],
        [0.5, 0.0, 1.0, 0.5],
        [0.0, 0.5, 0.5, 1.0],
        [0.5, 0.5, 1.0, 1.0],
    ]
    assert [pixel_box(b, 32, 32) for b in boxes] == [
        (0, 0, 16, 16),
        (16, 0, 32, 16),
        (0, 16, 16, 32),
        (16, 16, 32, 32),
    ]
    assert len(grid_boxes(3)) == 9
    with pytest.raises(StarftError, match="k must be"):
        grid_boxes(0)
    with pytest.raises(StarftError, match="box"):
        check_boxes(torch.tensor([[0.5, 0.0, 0.2, 1.0]]))


def test_crops_of_images_and_tensors():
    pixels = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    crops = crop_image(Image.fromarray(pixels), grid_boxes(2), (4, 4))
    assert np.array_equal(np.asarray(crops[1]), pixels[:4, 4:])  # same size: an exact copy
    tensor = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = crop_tensor(tensor, grid_boxes(2), (4, 4))
    assert out.shape == (2, 4, 3, 4, 4)
    assert torch.equal(out[1, 2], tensor[1, :, 4:, :4])
    assert crop_tensor(tensor, grid_boxes(2), (8, 8)).shape == (2, 4, 3, 8, 8)


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
    model = create_model("starft-tiny-vit")
    dataset = create_dataset("synthetic", num_classes=2, num_samples=12, image_size=48, seed=1)
    return model, dataset


def test_crop_and_encode_equals_encoding_the_crop(tiny):
    model, dataset = tiny
    model.eval()
    image = dataset.read_image(3)
    full, regions = crop_and_encode(model, [image], grid_boxes(2))
    assert full.shape == (1, model.embed_dim) and regions.shape == (1, 4, model.embed_dim)
    crop = image.crop((24, 0, 48, 24)).resize((32, 32), Image.Resampling.BICUBIC)
    with torch.no_grad():
        expected = model.encode_image(model.preprocess_val(crop)[None], normalize=True)
    assert torch.allclose(regions[0, 1], expected[0], atol=1e-5)
    _, from_tensor = crop_and_encode(model, [image], grid_boxes(2), crop_from="tensor")
    assert from_tensor.shape == regions.shape
    with pytest.raises(StarftError, match="crop_from"):
        crop_and_encode(model, [image], grid_boxes(2), crop_from="pixels")


@pytest.mark.parametrize(("crop_from", "scoring"), [("image", "model"), ("tensor", "ravl")])
def test_wrapper_end_to_end(tiny, crop_from, scoring):
    model, dataset = tiny
    model.train()
    inputs = compute_discovery_inputs(
        model, dataset, grid=2, crop_from=crop_from, scoring=scoring, batch_size=5
    )
    assert model.training  # left as found
    assert inputs.region_embeddings.shape == (48, model.embed_dim)
    assert inputs.region_image.tolist() == [i for i in range(12) for _ in range(4)]
    assert inputs.image_labels.tolist() == dataset.labels
    assert torch.allclose(inputs.image_probs.sum(dim=1), torch.ones(12))
    assert inputs.region_probs.shape == (48, 2)
    assert inputs.scoring == scoring
    result = discover_from_inputs(inputs, k_range=range(2, 5))
    assert result.scoring == scoring and result.scale == inputs.scale
    assert result.k is not None or "degenerate" in result.message
