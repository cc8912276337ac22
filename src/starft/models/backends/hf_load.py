"""Load ``transformers`` CLIP / SigLIP models (``hf:PATH_OR_ID`` or a saved folder), offline.

Everything is read with ``local_files_only=True``: a folder, or a model id already in the local
Hugging Face cache. The evaluation transform reproduces the checkpoint's image processor (resize,
optional centre crop, rescale to [0, 1], normalise); the training transform is open_clip's default
augmentation at the same size (random resized crop with scale (0.9, 1.0)).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from starft.errors import StarftError
from starft.models.backends.hf_model import HF_ARCHS, HFClipModel
from starft.models.backends.hub_cache import hub_cache_dir

HF_PREFIX = "hf:"
HF_CONFIG = "config.json"
# PIL resample codes -> torchvision interpolation names
_INTERPOLATION = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "lanczos"}


def is_hf_folder(path: Path) -> bool:
    """A folder holding a ``transformers`` config of a supported model type."""
    config = path / HF_CONFIG
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") in HF_ARCHS
    except (OSError, ValueError):
        return False


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise StarftError(
            "Hugging Face models need the transformers package: pip install 'starft[hf]'"
        ) from None
    return transformers


def create_hf(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> HFClipModel:
    """Load ``hf:PATH_OR_ID`` (or a saved folder) as an :class:`HFClipModel`."""
    transformers = _transformers()
    ref = name[len(HF_PREFIX) :] if name.startswith(HF_PREFIX) else name
    if not ref:
        raise StarftError(f"model '{name}': give a folder or model id after '{HF_PREFIX}'")
    if pretrained:
        logging.warning("ignoring pretrained=%r for Hugging Face model %s", pretrained, name)
    local = Path(ref).is_dir()
    if not local and (ref.startswith((".", "~")) or Path(ref).is_absolute() or ref.count("/") > 1):
        raise StarftError(f"model '{name}': folder '{ref}' does not exist")
    kwargs: dict[str, Any] = {"local_files_only": True}
    if not local:
        kwargs["cache_dir"] = str(hub_cache_dir(cache_dir))
    where = f"folder {ref}" if local else f"the local Hugging Face cache {kwargs['cache_dir']}"
    try:
        config = transformers.AutoConfig.from_pretrained(ref, **kwargs)
    except (OSError, ValueError) as err:
        raise StarftError(
            f"model '{name}': no transformers config in {where} (nothing is downloaded at run "
            f"time; set HF_HUB_CACHE or HF_HOME to a cache that holds it): {_first_line(err)}"
        ) from None
    arch = HF_ARCHS.get(config.model_type)
    if arch is None:
        raise StarftError(
            f"model '{name}' is a '{config.model_type}' model; the hf backend takes "
            f"{', '.join(sorted(HF_ARCHS))}"
        )
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if dtype is None:
        raise StarftError(f"precision must be fp32, fp16 or bf16 for '{name}', got '{precision}'")
    # Loading bars for a few files are noise in a training log.
    transformers.utils.logging.disable_progress_bar()
    model_class = getattr(transformers, arch.model_class)
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        model = model_class.from_pretrained(ref, **{dtype_key: dtype}, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(ref, **kwargs)
        processor = transformers.AutoImageProcessor.from_pretrained(ref, **kwargs)
    except (OSError, ValueError) as err:
        raise StarftError(
            f"could not load model '{name}' from {where}: {_first_line(err)}"
        ) from None
    train, val, cfg = build_transforms(processor, int(config.vision_config.image_size))
    wrapped = HFClipModel(model, tokenizer, processor, train, val, cfg, name=name)
    return wrapped.to(device)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def build_transforms(processor: Any, image_size: int) -> tuple[Any, Any, dict[str, Any]]:
    """(train, val, preprocess_cfg) reproducing an image processor's resize / crop / normalise."""
    from torchvision import transforms as T

    size = getattr(processor, "size", None) or {}
    size = dict(size) if not isinstance(size, int) else {"shortest_edge": size}
    crop = getattr(processor, "crop_size", None)
    crop = dict(crop) if crop else None
    resample = getattr(processor, "resample", 3)
    interpolation = _INTERPOLATION.get(int(getattr(resample, "value", resample)), "bicubic")
    mode = T.InterpolationMode(interpolation)
    mean = [float(x) for x in getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)]
    std = [float(x) for x in getattr(processor, "image_std", None) or (0.5, 0.5, 0.5)]
    if "shortest_edge" in size:
        resize = T.Resize(int(size["shortest_edge"]), interpolation=mode)
    elif "height" in size:
        resize = T.Resize((int(size["height"]), int(size["width"])), interpolation=mode)
    else:
        resize = T.Resize((image_size, image_size), interpolation=mode)
    steps = [resize] if getattr(processor, "do_resize", True) else []
    if crop and getattr(processor, "do_center_crop", False):
        steps.append(T.CenterCrop((int(crop["height"]), int(crop["width"]))))
        final = (int(crop["height"]), int(crop["width"]))
    elif "height" in size:
        final = (int(size["height"]), int(size["width"]))
    else:
        final = (image_size, image_size)
    tail = [ConvertRGB(), T.ToTensor(), T.Normalize(mean, std)]
    val = T.Compose([*steps, *tail])
    train = T.Compose([T.RandomResizedCrop(final, scale=(0.9, 1.0), interpolation=mode), *tail])
    cfg = {
        "size": final[0] if final[0] == final[1] else final,
        "mean": mean,
        "std": std,
        "interpolation": interpolation,
    }
    return train, val, cfg


class ConvertRGB:
    """PIL image -> RGB (a class, not a lambda, so transforms pickle into data-loader workers)."""

    deterministic_step = True  # no randomness: exact feature caches may rely on it

    def __call__(self, image: Any) -> Any:
        return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image

    def __repr__(self) -> str:
        return "ConvertRGB()"
