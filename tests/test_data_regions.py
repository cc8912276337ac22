"""Masks, parts and boxes follow the image through crops, flips and resizes; readers; collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as v1

from starft.data import CsvDataset, ImageFolderDataset, collate_samples
from starft.data.region_readers import IGNORE_ID, parse_boxes, read_mask_png
from starft.data.regions import region_transform, transform_sample
from starft.errors import StarftError

OBJECT = (250, 10, 10)


def _scene(seed: int = 0, size: tuple[int, int] = (80, 60)) -> tuple[Image.Image, dict]:
    """A noisy background (never pure red) with a red rectangle and a red disc in it."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
    pixels[10:30, 12:40] = OBJECT
    yy, xx = np.mgrid[:h, :w]
    pixels[(yy - 40) ** 2 + (xx - 60) ** 2 < 64] = OBJECT
    image = Image.fromarray(pixels)
    mask = torch.from_numpy((pixels == OBJECT).all(-1).astype(np.float32))
    parts = torch.stack([mask * (torch.arange(w) < 45), mask * (torch.arange(w) >= 45)])
    regions = {
        "mask": mask,
        "parts": parts,
        "part_weights": torch.tensor([1.0, 0.5]),
        "boxes": torch.tensor([[12.0, 10.0, 40.0, 30.0], [53.0, 33.0, 68.0, 48.0]]),
        "box_labels": torch.tensor([3, 7]),
    }
    return image, regions


def _own_mask(image: torch.Tensor) -> torch.Tensor:
    """The object mask recomputed from the transformed image's own colours."""
    target = torch.tensor(OBJECT, dtype=torch.float32).view(3, 1, 1) / 255
    return ((image - target).abs() < 1e-6).all(0).float()


def _bbox(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize("seed", range(6))
def test_crop_flip_resize_keeps_mask_parts_and_boxes_aligned(seed: int) -> None:
    image, regions = _scene(seed)
    nearest = v1.InterpolationMode.NEAREST
    transform = v1.Compose(
        [
            v1.ToTensor(),
            v1.RandomResizedCrop(48, scale=(0.5, 1.0), interpolation=nearest),
            v1.RandomHorizontalFlip(p=1.0),
            v1.Resize(96, interpolation=nearest),
        ]
    )
    torch.manual_seed(seed)
    out = transform_sample(transform, image, regions)
    assert out["image"].shape == (3, 96, 96) and type(out["image"]) is torch.Tensor
    # Pixel for pixel: the transformed mask is exactly where the transformed image is red.
    own = _own_mask(out["image"])
    assert torch.equal(out["mask"], own)
    assert torch.equal(out["parts"].amax(0), own)
    assert torch.equal(out["part_weights"], regions["part_weights"])
    # The flip mirrors: the first (left) part ends on the right of the second, where both show.
    assert out["boxes"].shape[1] == 4 and len(out["boxes"]) == len(out["box_labels"])
    for box, label in zip(out["boxes"], out["box_labels"]):
        part = out["parts"][0 if label == 3 else 1]
        if part.sum() == 0:
            continue
        # A box is continuous geometry and the mask is sampled on pixels: they agree within one
        # source pixel, at most 96 / 30 output pixels for the smallest crop; a missed flip or
        # crop offset would be off by tens of pixels.
        assert (box - _bbox(part)).abs().max() <= 3.5


def test_boxes_cropped_away_are_dropped_with_their_labels() -> None:
    image, regions = _scene()
    crop = v1.Compose([v1.ToTensor(), v1.CenterCrop((20, 20))])  # centre: neither object whole
    out = transform_sample(crop, image, regions)
    assert len(out["boxes"]) == len(out["box_labels"])
    assert (out["boxes"][:, 2:] <= 20).all() and (out["boxes"][:, :2] >= 0).all()


def test_image_only_samples_take_the_plain_transform() -> None:
    image, regions = _scene()
    transform = v1.Compose([v1.Resize(32), v1.CenterCrop(32), v1.ToTensor()])
    plain = transform_sample(transform, image, {})
    with_mask = transform_sample(transform, image, {"mask": regions["mask"]})
    assert torch.equal(plain["image"], transform(image))
    # The converted pipeline gives the image exactly what the original transform gives.
    assert torch.equal(with_mask["image"], transform(image))
    assert with_mask["mask"].shape == (32, 32)


def test_unknown_transform_step_is_an_error() -> None:
    with pytest.raises(StarftError, match="RandomRotation"):
        region_transform(v1.Compose([v1.RandomRotation(10), v1.ToTensor()]))


def test_model_transforms_convert(tmp_path) -> None:
    from starft.models import create_model

    model = create_model("starft-tiny-vit")  # open_clip's transforms at 32 px
    train, val = model.preprocess_train, model.preprocess_val
    image, regions = _scene()
    for transform in (train, val):
        out = transform_sample(transform, image, {"mask": regions["mask"]})
        assert out["image"].shape == (3, 32, 32) and out["mask"].shape == (32, 32)
    assert torch.equal(transform_sample(val, image, {"mask": regions["mask"]})["image"], val(image))


def test_region_shapes_are_checked() -> None:
    image, regions = _scene()
    with pytest.raises(StarftError, match="image size"):
        transform_sample(None, image, {"mask": torch.zeros(5, 5)}, where="x sample 3")
    with pytest.raises(StarftError, match="come together"):
        transform_sample(None, image, {"boxes": regions["boxes"]})


def test_mask_png_formats(tmp_path) -> None:
    ids = np.zeros((4, 5), dtype=np.int64)
    ids[1, 1] = 7
    ids[2, 3] = 919
    ids[3, 4] = IGNORE_ID
    rgb = np.stack([ids % 256, ids // 256, np.zeros_like(ids)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "ids.png")
    mask = read_mask_png(tmp_path / "ids.png", "class_id")
    expected = torch.zeros(4, 5)
    expected[1, 1] = expected[2, 3] = 1
    assert torch.equal(mask, expected)
    grey = np.array([[0, 255], [128, 0]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert torch.equal(read_mask_png(tmp_path / "g.png"), torch.tensor([[0.0, 1], [1, 0]]))
    soft = read_mask_png(tmp_path / "g.png", "soft")
    assert soft[1, 0].item() == pytest.approx(128 / 255)
    with pytest.raises(StarftError, match="mask_format"):
        read_mask_png(tmp_path / "g.png", "rgb")


def test_parse_boxes() -> None:
    boxes, labels = parse_boxes("1 2 3 4; 5 6 7 8 2 ;", 9, "row 1")
    assert boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and labels.tolist() == [9, 2]
    assert parse_boxes("", 0, "row 1")[0].shape == (0, 4)
    with pytest.raises(StarftError, match="row 4"):
        parse_boxes("1 2 3", 0, "row 4")
    with pytest.raises(StarftError, match="x2 > x1"):
        parse_boxes("5 2 3 4", 0, "row 4")


def _write_images(tmp_path, n: int = 3) -> list[str]:
    names = []
    for i in range(n):
        image, regions = _scene(i)
        (tmp_path / "img" / "a").mkdir(parents=True, exist_ok=True)
        (tmp_path / "masks" / "a").mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / "img" / "a" / f"{i}.jpg", quality=95)
        mask = (regions["mask"].numpy() * 255).astype(np.uint8)
        Image.fromarray(mask).save(tmp_path / "masks" / "a" / f"{i}.png")
        names.append(f"a/{i}.jpg")
    return names


def test_csv_masks_and_boxes_collate(tmp_path) -> None:
    names = _write_images(tmp_path)
    rows = ["filepath,label,boxes"]
    rows += [
        f"{name},0,12 10 40 30" + ("; 52 32 68 48 1" if i else "") for i, name in enumerate(names)
    ]
    (tmp_path / "img" / "t.csv").write_text("\n".join(rows) + "\n")
    transform = v1.Compose([v1.Resize(40), v1.CenterCrop(40), v1.ToTensor()])
    dataset = CsvDataset(
        tmp_path / "img" / "t.csv",
        classnames=["x", "y"],
        mask_root=tmp_path / "masks",
        box_key="boxes",
        transform=transform,
    )
    assert {"mask", "boxes", "box_labels"} <= dataset.sample_keys
    batch = collate_samples([dataset[i] for i in range(3)])
    assert batch["mask"].shape == (3, 40, 40) and batch["image"].shape == (3, 3, 40, 40)
    assert [len(b) for b in batch["boxes"]] == [1, 2, 2]
    assert batch["box_labels"][1].tolist() == [0, 1]
    folder = ImageFolderDataset(tmp_path / "img", mask_root=tmp_path / "masks")
    assert folder.sample_keys >= {"mask"} and folder[0]["mask"].shape == (60, 80)


def test_missing_or_mis_sized_mask_names_the_file(tmp_path) -> None:
    names = _write_images(tmp_path, 1)
    (tmp_path / "img" / "t.csv").write_text(f"filepath,label\n{names[0]},0\n")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "masks" / "a" / "0.png")
    dataset = CsvDataset(tmp_path / "img" / "t.csv", classnames=["x"], mask_root=tmp_path / "masks")
    with pytest.raises(StarftError, match=r"0\.png"):
        dataset[0]
