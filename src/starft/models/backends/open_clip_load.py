"""Create open_clip models: starft's own, open_clip names and tags, files, folders, ``hf-hub:``.

Names this backend takes:

1. a folder written by starft's ``save_model`` (or ``local-dir:PATH``): ``open_clip_config.json``
   + weights, exactly what ``open_clip.create_model('local-dir:PATH')`` loads;
2. ``hf-hub:ORG/NAME``: an open_clip model in the *local* Hugging Face cache (``HF_HUB_CACHE``,
   else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``; ``model.cache_dir`` overrides).
   Nothing is downloaded: a missing model is an error naming the cache folder searched;
3. a starft model (``starft ls models``): small architectures shipped as open_clip config files
   under ``starft/resources/model_configs``, optionally with default weights shipped as data;
4. any open_clip architecture (``ViT-B-16``, ``RN50``, ...), with ``pretrained`` a tag
   (``openai``, ``laion2b_s34b_b88k``, ...) or a checkpoint file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from starft.errors import StarftError
from starft.models.backends.fast_bpe import fast_clip_tokenizer
from starft.models.backends.hub_cache import hub_cache_dir
from starft.models.backends.open_clip_model import CONFIG_FILE, OpenClipModel
from starft.registry import Registry
from starft.utils.transform_steps import declare_deterministic, declare_step

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
HUB_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)


@dataclass(frozen=True)
class ModelSpec:
    """A starft-registered model: an open_clip architecture name and optional default weights."""

    arch: str
    #: package-relative path under starft/resources, or None (random init)
    weights: str | None = None


MODELS: Registry[ModelSpec] = Registry("model")
MODELS.add(
    "starft-tiny-vit",
    ModelSpec("starft-tiny-vit"),
    "tiny random ViT (32 px, patch 8, width 64, 2+2 layers): tests and benchmarks",
)
MODELS.add(
    "starft-tiny-rn",
    ModelSpec("starft-tiny-rn"),
    "tiny random ModifiedResNet (32 px, width 16, layers 1-1-1-1): tests of the CNN path",
)
MODELS.add(
    "starft-sandbox-rn",
    ModelSpec("starft-sandbox-rn"),
    "the sandbox CLIP architecture, randomly initialised (64 px ModifiedResNet, width 32)",
)
MODELS.add(
    "starft-sandbox-vit",
    ModelSpec("starft-sandbox-vit"),
    "the sandbox ViT CLIP, randomly initialised (64 px, patch 8: an 8x8 token grid, width 128, "
    "4 layers; the text tower of starft-sandbox-rn)",
)
MODELS.add(
    "sandbox-clip",
    ModelSpec("starft-sandbox-rn", "sandbox/sandbox_clip.safetensors"),
    "the sandbox CLIP pretrained by `starft sandbox pretrain` (shipped; the demo's default)",
)
MODELS.add(
    "sandbox-clip-vit",
    ModelSpec("starft-sandbox-vit", "sandbox/sandbox_clip_vit.safetensors"),
    "the sandbox ViT CLIP pretrained by `starft sandbox pretrain --model sandbox-clip-vit` "
    "(shipped; attention rollout relevance maps, RobustViT, CFT)",
)

_registered_configs = False


def register_configs() -> None:
    """Make starft's architecture files visible to open_clip (once per process)."""
    global _registered_configs
    if _registered_configs:
        return
    import open_clip
    from open_clip import transform as open_clip_transform

    open_clip.add_model_config(Path(str(resources.files("starft") / "resources" / "model_configs")))
    # open_clip's own preprocessing steps, so masks and boxes can follow its transforms.
    declare_step(open_clip_transform.MaybeConvertMode, "image_only")
    declare_step(open_clip_transform.MaybeToTensor, "to_tensor")
    # ... and which of its steps never draw random numbers (exact per-row feature caches).
    for name in ("CenterCropOrPad", "_convert_to_rgb"):
        if hasattr(open_clip_transform, name):
            declare_deterministic(getattr(open_clip_transform, name))
    if hasattr(open_clip_transform, "ResizeKeepRatio"):
        declare_deterministic(
            open_clip_transform.ResizeKeepRatio,
            when=lambda step: (
                not step.random_scale_prob and not getattr(step, "random_aspect_prob", 0.0)
            ),
        )
    _registered_configs = True


def list_open_clip_models() -> list[tuple[str, str]]:
    """(name, description) of starft's models, then every open_clip architecture."""
    register_configs()
    import open_clip

    rows = [(e.name, e.description) for e in MODELS]
    own = {e.obj.arch for e in MODELS}
    for arch in open_clip.list_models():
        if arch in own:
            continue
        tags = open_clip.list_pretrained_tags_by_model(arch)
        rows.append((arch, "open_clip; pretrained: " + (", ".join(tags) if tags else "none")))
    return rows


def is_open_clip_folder(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def resolve_hub(repo_id: str, cache_dir: str | None = None) -> Path:
    """The cached snapshot folder of open_clip model ``repo_id``, or a one-line error."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir(cache_dir)
    found = try_to_load_from_cache(repo_id, CONFIG_FILE, cache_dir=str(cache))
    if not isinstance(found, str):
        raise StarftError(
            f"model '{HF_HUB_PREFIX}{repo_id}' is not in the local Hugging Face cache {cache} "
            f"(no {CONFIG_FILE}); nothing is downloaded at run time: download it where there is "
            "network (huggingface-cli download) and set HF_HUB_CACHE or HF_HOME to that cache"
        )
    folder = Path(found).parent
    if not any((folder / name).is_file() for name in HUB_WEIGHTS):
        raise StarftError(
            f"model '{HF_HUB_PREFIX}{repo_id}' in the local Hugging Face cache {cache} has "
            f"{CONFIG_FILE} but no weights ({', '.join(HUB_WEIGHTS)})"
        )
    return folder


def create_open_clip(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> OpenClipModel:
    """Build an :class:`OpenClipModel` from a name (see module docstring) and optional weights."""
    register_configs()
    import open_clip

    local = None
    if name.startswith(HF_HUB_PREFIX):
        local = resolve_hub(name[len(HF_HUB_PREFIX) :], cache_dir)
    elif name.startswith(LOCAL_DIR_PREFIX):
        local = Path(name[len(LOCAL_DIR_PREFIX) :])
        if not is_open_clip_folder(local):
            raise StarftError(f"model folder '{local}' has no {CONFIG_FILE}")
    elif is_open_clip_folder(Path(name)):
        local = Path(name)
    if local is not None:
        if pretrained:
            logging.warning("ignoring pretrained=%r for model folder %s", pretrained, local)
            pretrained = None
        with open(local / CONFIG_FILE, encoding="utf-8") as f:
            model_cfg = json.load(f)["model_cfg"]
        source, pretrained_arg = f"{LOCAL_DIR_PREFIX}{local}", None
    else:
        arch = MODELS.get(name).arch if name in MODELS else name
        if arch not in open_clip.list_models():
            raise StarftError(
                f"unknown model '{name}': not a saved model folder, a starft model, an open_clip "
                "architecture or a prefixed name (see `starft ls models`)"
            )
        if pretrained is None and name in MODELS and MODELS.get(name).weights:
            weights = MODELS.get(name).weights
            pretrained = str(resources.files("starft") / "resources" / str(weights))
        _check_pretrained(arch, pretrained)
        model_cfg = copy.deepcopy(open_clip.get_model_config(arch))
        source, pretrained_arg = arch, pretrained
    try:
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            source,
            pretrained=pretrained_arg,
            device=device,
            precision=precision,
            cache_dir=cache_dir,
        )
    except (RuntimeError, OSError, ValueError) as err:
        raise StarftError(
            f"could not load model '{name}' (pretrained={pretrained!r}): {err}"
        ) from err
    tokenizer = fast_clip_tokenizer(open_clip.get_tokenizer(source))
    return OpenClipModel(
        model,
        tokenizer,
        preprocess_train,
        preprocess_val,
        model_cfg=model_cfg,
        name=name,
        pretrained=pretrained,
    )


def _check_pretrained(arch: str, pretrained: str | None) -> None:
    """Fail early, in one line, on a pretrained value that is neither a file nor a known tag."""
    if pretrained is None or os.path.isfile(pretrained):
        return
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        if os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
            raise StarftError(f"pretrained checkpoint '{pretrained}' does not exist")
        raise StarftError(
            f"unknown pretrained tag '{pretrained}' for '{arch}' "
            f"(known: {', '.join(tags) or 'none'})"
        )
