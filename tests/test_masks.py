"""`starft masks build`: concept masks from a detector and a segmenter, gated, cached on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from starft.data import create_dataset
from starft.data.concept_bank import WeightedConcept
from starft.errors import StarftError
from starft.masks import GroundingOptions, build_masks, clip_boxes, combine_masks, ground_image

W, H = 50, 40
BANK = {
    "waterbird": [
        {"concept": "webbed feet", "weight": 3.0},
        {"concept": "long neck", "weight": 1.0},
    ],
    "landbird": [{"concept": "bird beak", "weight": 2.0}],
}


def _folder(tmp_path: Path, per_class: int = 2) -> Path:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in BANK:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((H, W, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


class BoxDetector:
    """Fixed boxes per query; counts its calls."""

    def __init__(self, boxes: dict[str, list[tuple[float, float, float, float]]]) -> None:
        self.boxes, self.calls = boxes, 0

    def detect(self, image, queries):
        self.calls += 1
        return [list(self.boxes.get(q, [])) for q in queries]


class BoxSegmenter:
    """The mask of a box is the box itself."""

    def segment(self, image, boxes):
        out = np.zeros((len(boxes), image.height, image.width), dtype=bool)
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            out[k, int(y1) : int(y2), int(x1) : int(x2)] = True
        return out


def _bank() -> dict[str, list[WeightedConcept]]:
    return {c: [WeightedConcept(i["concept"], i["weight"]) for i in v] for c, v in BANK.items()}


def test_gate_and_combination_by_hand():
    options = GroundingOptions()
    assert options.gate(0.0009) == "too small"
    assert options.gate(0.001) is None and options.gate(0.98) is None
    assert options.gate(0.981) == "too large"
    a = np.array([[1, 1, 0, 0]], dtype=bool)
    b = np.array([[0, 1, 1, 0]], dtype=bool)
    combined = combine_masks([a, b], [3.0, 1.0], top=3.0)
    np.testing.assert_allclose(combined, [[1.0, 1.0, 1 / 3, 0.0]])
    assert clip_boxes([[-5, 2, 10, 50], [3, 3, 3.5, 9]], width=8, height=20) == [
        (0.0, 2.0, 8.0, 20.0)
    ]  # clipped to the image; the second has < 1 px width
    with pytest.raises(StarftError, match="coverage range"):
        GroundingOptions(min_coverage=0.5, max_coverage=0.1)


def test_ground_image_weights_concepts_and_drops_masks_outside_the_gate():
    image = Image.new("RGB", (W, H))
    detector = BoxDetector(
        {
            "webbed feet": [(0, 0, 10, 10), (0, 0, W, H)],  # the full-image mask is too large
            "long neck": [(5, 5, 20, 20)],
        }
    )
    result = ground_image(image, _bank()["waterbird"], detector, BoxSegmenter(), GroundingOptions())
    assert result.mask is not None and result.reason is None
    assert result.mask[0, 0] == 1.0  # feet (weight 3 of 3)
    assert result.mask[15, 15] == pytest.approx(1 / 3)  # neck only (weight 1 of 3)
    assert result.mask[30, 40] == 0.0
    assert result.concepts["webbed feet"] == {"boxes": 2, "kept": 1, "too small": 0, "too large": 1}
    none = ground_image(
        image, _bank()["landbird"], BoxDetector({}), BoxSegmenter(), GroundingOptions()
    )
    assert none.mask is None and none.reason == "no box"


def test_build_writes_a_mask_folder_the_csv_dataset_reads_and_resumes(tmp_path):
    root = _folder(tmp_path)
    dataset = create_dataset("imagefolder", root=str(root))
    detector = BoxDetector({"webbed feet": [(0, 0, 10, 10)], "long neck": [(5, 5, 20, 20)]})
    out = tmp_path / "out"
    report = build_masks(dataset, _bank(), detector, BoxSegmenter(), out, settings={"run": 1})
    # landbird's concept is never found: both its images are rejected and reported
    assert (report.images, report.kept, report.rejected) == (4, 2, 2)
    assert report.reasons == {"no box": 2}
    assert sorted(r["image"] for r in report.rejected_images) == [
        "landbird/0.png",
        "landbird/1.png",
    ]
    assert json.loads((out / "report.json").read_text())["kept"] == 2
    assert not (out / "masks" / "landbird").exists()

    kept = create_dataset(
        "csv",
        path=str(out / "kept.csv"),
        root=str(root),
        mask_root=str(out / "masks"),
        mask_format="soft",
    )
    assert len(kept) == 2 and "mask" in kept.sample_keys
    assert kept.classnames == dataset.classnames
    sample = kept[0]
    assert kept.classnames[sample["label"]] == "waterbird"
    mask = np.asarray(sample["mask"])
    assert mask.shape == (H, W)
    assert mask[0, 0] == 1.0 and mask[15, 15] == pytest.approx(85 / 255) and mask[30, 40] == 0

    # a re-run skips every finished image (no detector call); a lost mask is rebuilt
    (out / "masks" / "waterbird" / "1.png").unlink()
    again = build_masks(dataset, _bank(), detector, BoxSegmenter(), out, settings={"run": 1})
    assert detector.calls == 4 + 1 and (again.built_now, again.from_cache) == (1, 3)
    assert (out / "masks" / "waterbird" / "1.png").is_file()
    assert not list(out.rglob("*.tmp"))
    with pytest.raises(StarftError, match=r"other settings .*run"):
        build_masks(dataset, _bank(), detector, BoxSegmenter(), out, settings={"run": 2})


def test_build_stops_before_work_when_the_bank_lacks_a_class(tmp_path):
    dataset = create_dataset("imagefolder", root=str(_folder(tmp_path)))
    detector = BoxDetector({})
    bank = {"waterbird": _bank()["waterbird"]}
    with pytest.raises(StarftError, match=r"no concepts for 1 class.*landbird"):
        build_masks(dataset, bank, detector, BoxSegmenter(), tmp_path / "out")
    assert detector.calls == 0


def test_cli_end_to_end_with_tiny_random_owlv2_and_sam(tmp_path, capsys):
    pytest.importorskip("transformers")
    from _tiny_models import save_tiny_owlv2, save_tiny_sam
    from starft.cli.main import main

    root = _folder(tmp_path, per_class=1)
    detector = save_tiny_owlv2(tmp_path / "owl")
    segmenter = save_tiny_sam(tmp_path / "sam")
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    out = tmp_path / "out"
    argv = [
        "masks", "build", "--dataset", "imagefolder", "--root", str(root),
        "--concepts", str(bank), "--detector", str(detector), "--segmenter", str(segmenter),
        "--out", str(out), "--box-threshold", "0", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "of 2 images kept" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 2 and report["kept"] + report["rejected"] == 2
    masks = sorted(out.glob("masks/*/*.png"))
    assert len(masks) == report["kept"]
    for path in masks:
        with Image.open(path) as image:
            assert image.size == (W, H) and image.mode == "L"
    assert len((out / "kept.csv").read_text().splitlines()) == 1 + report["kept"]
    assert main(argv) == 0
    assert "(0 built now, 2 from the cache)" in capsys.readouterr().out


def test_grounding_dino_detector_gives_boxes_per_query_inside_the_image(tmp_path):
    pytest.importorskip("transformers")
    import torch

    from _tiny_models import save_tiny_grounding_dino
    from starft.masks import DetectionThresholds, load_detector

    folder = save_tiny_grounding_dino(tmp_path / "gd")
    detector = load_detector(folder, DetectionThresholds(box=0.0, text=0.0), torch.device("cpu"))
    image = Image.new("RGB", (W, H))
    boxes = detector.detect(image, ["bird beak", "long neck"])
    assert len(boxes) == 2 and all(boxes)  # threshold 0: every query gets its boxes
    for x1, y1, x2, y2 in (b for found in boxes for b in found):
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H


def test_cli_rejects_a_folder_without_a_model(tmp_path):
    from starft.cli.main import main

    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    code = main(
        ["masks", "build", "--dataset", "imagefolder", "--root", str(_folder(tmp_path)),
         "--concepts", str(bank), "--detector", str(tmp_path), "--segmenter", str(tmp_path),
         "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code != 0
