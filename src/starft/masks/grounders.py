"""Open-vocabulary detectors and promptable segmenters from local Hugging Face folders.

A folder saved with ``save_pretrained`` (model + processor) is recognised by the ``model_type``
of its ``config.json``, looked up in :data:`DETECTORS` or :data:`SEGMENTERS`; nothing is ever
downloaded (``local_files_only``). ``transformers`` (the ``hf`` extra) is imported only when a
model is loaded.

* Detectors (:class:`Detector`): ``detect(image, queries)`` -> per query, the boxes (xyxy in
  pixels of the image, clipped to it, empty ones dropped) whose score passes the thresholds,
  highest score first.
  OWLv2 / OWL-ViT score all queries in one forward pass; GroundingDINO runs once per query (its
  phrase-to-token matching cannot tell two phrases of one prompt apart reliably).
* Segmenters (:class:`Segmenter`): ``segment(image, boxes)`` -> one boolean mask ``[H, W]`` per
  box (SAM, one mask per box prompt).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from starft.errors import StarftError
from starft.registry import Registry

Box = tuple[float, float, float, float]


class Detector(Protocol):
    def detect(self, image: Image.Image, queries: Sequence[str]) -> list[list[Box]]: ...


class Segmenter(Protocol):
    def segment(self, image: Image.Image, boxes: Sequence[Box]) -> np.ndarray: ...


@dataclass(frozen=True)
class DetectionThresholds:
    """``box``: a box's score must reach it; ``text`` (GroundingDINO): a query token's score must.

    GroundingDINO's defaults as CFT runs it (box 0.35, text 0.65).
    """

    box: float = 0.35
    text: float = 0.65

    def __post_init__(self) -> None:
        for name in ("box", "text"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise StarftError(f"the {name} threshold must lie in [0, 1], got {value}")


DETECTORS: Registry[Callable[[Path, DetectionThresholds, Any], Detector]] = Registry(
    "detector (config model_type)"
)
SEGMENTERS: Registry[Callable[[Path, Any], Segmenter]] = Registry("segmenter (config model_type)")


def model_type(path: str | Path, what: str) -> str:
    """The ``model_type`` in ``path/config.json`` (one error line when it is not a model folder)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise StarftError(
            f"{what} '{path}' is not a saved Hugging Face model folder (no config.json there)"
        )
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        raise StarftError(f"cannot read {config}: {error}") from None
    if not isinstance(kind, str):
        raise StarftError(f"{config} names no model_type")
    return kind


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise StarftError("masks build needs transformers: pip install 'starft[hf]'") from None
    return transformers


def load_detector(path: str | Path, thresholds: DetectionThresholds, device: Any) -> Detector:
    kind = model_type(path, "--detector")
    if kind not in DETECTORS:
        raise StarftError(
            f"--detector '{path}' is a '{kind}' model; detectors: {', '.join(DETECTORS.names())}"
        )
    return DETECTORS.get(kind)(Path(path), thresholds, device)


def load_segmenter(path: str | Path, device: Any) -> Segmenter:
    kind = model_type(path, "--segmenter")
    if kind not in SEGMENTERS:
        raise StarftError(
            f"--segmenter '{path}' is a '{kind}' model; segmenters: {', '.join(SEGMENTERS.names())}"
        )
    return SEGMENTERS.get(kind)(Path(path), device)


def clip_boxes(boxes: Any, width: int, height: int) -> list[Box]:
    """xyxy boxes clipped to the image, those with no area left dropped."""
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x1, x2 = np.clip([x1, x2], 0, width)
        y1, y2 = np.clip([y1, y2], 0, height)
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            out.append((float(x1), float(y1), float(x2), float(y2)))
    return out


class _HFModel:
    """A local model folder with its processor, in eval mode on ``device``, without gradients."""

    def __init__(self, path: Path, device: Any, auto_model: str) -> None:
        transformers = _transformers()
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
            model_class = getattr(transformers, auto_model)
            self.model = model_class.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise StarftError(f"cannot load '{path}': {error}".replace("\n", " ")) from None
        self.device = device
        self.model.to(device).eval()

    def inputs(self, **kwargs: Any) -> dict[str, Any]:
        encoded = self.processor(**kwargs, return_tensors="pt")
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in encoded.items()}


class OwlDetector(_HFModel):
    """OWLv2 / OWL-ViT: every query scored in one pass; boxes above ``thresholds.box``.

    OWLv2's processor pads the image to a square (bottom/right) before resizing, so its boxes are
    fractions of that square (``pads_to_square``); OWL-ViT's resizes the image itself.
    """

    def __init__(
        self,
        path: Path,
        thresholds: DetectionThresholds,
        device: Any,
        pads_to_square: bool = True,
    ) -> None:
        super().__init__(path, device, "AutoModelForZeroShotObjectDetection")
        self.thresholds = thresholds
        self.pads_to_square = pads_to_square

    def detect(self, image: Image.Image, queries: Sequence[str]) -> list[list[Box]]:
        import torch

        inputs = self.inputs(text=[list(queries)], images=image)
        with torch.no_grad():
            outputs = self.model(**inputs)
        size = (image.height, image.width)
        if self.pads_to_square:
            size = (max(size), max(size))
        found = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.thresholds.box, target_sizes=[size]
        )[0]
        order = found["scores"].cpu().argsort(descending=True).tolist()
        labels = found["labels"].cpu().tolist()
        per_query: list[list[Box]] = [[] for _ in queries]
        for i in order:
            per_query[int(labels[i])] += clip_boxes(found["boxes"][i].cpu(), *image.size)
        return per_query


class GroundingDinoDetector(_HFModel):
    """GroundingDINO: one pass per query (``"<query>."``); box and text thresholds."""

    def __init__(self, path: Path, thresholds: DetectionThresholds, device: Any) -> None:
        super().__init__(path, device, "AutoModelForZeroShotObjectDetection")
        self.thresholds = thresholds

    def detect(self, image: Image.Image, queries: Sequence[str]) -> list[list[Box]]:
        import torch

        per_query: list[list[Box]] = []
        for query in queries:
            inputs = self.inputs(text=f"{query.lower().rstrip('.')}.", images=image)
            with torch.no_grad():
                outputs = self.model(**inputs)
            found = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=self.thresholds.box,
                text_threshold=self.thresholds.text,
                target_sizes=[(image.height, image.width)],
            )[0]
            order = found["scores"].cpu().argsort(descending=True)
            per_query.append(clip_boxes(found["boxes"].cpu()[order], *image.size))
        return per_query


class SamSegmenter(_HFModel):
    """SAM: one mask per box prompt (``multimask_output=False``), at the image's size."""

    def __init__(self, path: Path, device: Any) -> None:
        super().__init__(path, device, "SamModel")

    def segment(self, image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
        import torch

        if not boxes:
            return np.zeros((0, image.height, image.width), dtype=bool)
        inputs = self.inputs(images=image, input_boxes=[[list(b) for b in boxes]])
        with torch.no_grad():
            outputs = self.model(**inputs, multimask_output=False)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.cpu(),
            inputs["original_sizes"].cpu(),
            inputs["reshaped_input_sizes"].cpu(),
        )[0]  # [boxes, 1, H, W] booleans
        return masks[:, 0].numpy().astype(bool)


DETECTORS.add("owlv2", OwlDetector, "OWLv2 (Owlv2ForObjectDetection), all queries in one pass")
DETECTORS.add(
    "owlvit",
    functools.partial(OwlDetector, pads_to_square=False),
    "OWL-ViT (OwlViTForObjectDetection), all queries in one pass",
)
DETECTORS.add(
    "grounding-dino",
    GroundingDinoDetector,
    "GroundingDINO, one pass per query (box/text thresholds)",
)
SEGMENTERS.add("sam", SamSegmenter, "SAM (SamModel), one mask per box prompt")
