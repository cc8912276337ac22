"""Create, save and load :class:`ClipModel` s.

A model is named in one of three ways, tried in this order:

1. a folder written by :func:`save_model` (or ``local-dir:PATH``): ``open_clip_config.json`` +
   ``open_clip_model.safetensors``, exactly what ``open_clip.create_model('local-dir:PATH')`` loads;
2. a starft model (``starft ls models``): small architectures shipped as open_clip config files
   under ``starft/resources/model_configs`` (registered with open_clip on import), optionally with
   default weights shipped as package data;
3. any open_clip architecture (``ViT-B-16``, ``RN50``, ...), with ``pretrained`` a tag
   (``openai``, ``laion2b_s34b_b88k``, ...) or a checkpoint file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from starft.errors import StarftError
from starft.models.clip_model import ClipModel
from starft.registry import Registry
from starft.utils.io import follow_umask, make_temp_dir

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
LOCAL_DIR_PREFIX = "local-dir:"


@dataclass(frozen=True)
class ModelSpec:
    """A starft-registered model: an open_clip architecture name and optional default weights."""

    arch: str
    weights: str | None = (
        None  # package-relative path under starft/resources, or None (random init)
    )


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
    "sandbox-clip",
    ModelSpec("starft-sandbox-rn", "sandbox/sandbox_clip.safetensors"),
    "the sandbox CLIP pretrained by `starft sandbox pretrain` (shipped; the demo's default)",
)

_registered_configs = False


def _register_configs() -> None:
    """Make starft's architecture files visible to open_clip (once per process)."""
    global _registered_configs
    if _registered_configs:
        return
    import open_clip

    open_clip.add_model_config(Path(str(resources.files("starft") / "resources" / "model_configs")))
    _registered_configs = True


def list_models() -> list[tuple[str, str]]:
    """(name, description) of every model name ``create_model`` accepts, starft's first."""
    _register_configs()
    import open_clip

    rows = [(e.name, e.description) for e in MODELS]
    own = {e.obj.arch for e in MODELS}
    for arch in open_clip.list_models():
        if arch in own:
            continue
        tags = open_clip.list_pretrained_tags_by_model(arch)
        rows.append((arch, "open_clip; pretrained: " + (", ".join(tags) if tags else "none")))
    return rows


def _local_dir(name: str) -> Path | None:
    path = Path(name[len(LOCAL_DIR_PREFIX) :] if name.startswith(LOCAL_DIR_PREFIX) else name)
    if (path / CONFIG_FILE).is_file():
        return path
    if name.startswith(LOCAL_DIR_PREFIX):
        raise StarftError(f"model folder '{path}' has no {CONFIG_FILE}")
    return None


def create_model(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> ClipModel:
    """Build a :class:`ClipModel` from a name (see module docstring) and optional weights.

    Args:
        name: saved-model folder, starft model name or open_clip architecture.
        pretrained: open_clip pretrained tag or checkpoint file; ignored for saved folders.
        device: where to put the model.
        precision: open_clip precision (``fp32`` for training; autocast handles mixed precision).
        cache_dir: open_clip download cache (downloads only happen for pretrained tags).
    """
    _register_configs()
    import open_clip

    local = _local_dir(name)
    if local is not None:
        if pretrained:
            logging.warning("ignoring pretrained=%r for saved model folder %s", pretrained, local)
        with open(local / CONFIG_FILE, encoding="utf-8") as f:
            model_cfg = json.load(f)["model_cfg"]
        source = f"{LOCAL_DIR_PREFIX}{local}"
        arch, pretrained_arg = source, None
    else:
        arch = MODELS.get(name).arch if name in MODELS else name
        if arch not in open_clip.list_models():
            raise StarftError(
                f"unknown model '{name}': not a saved model folder, a starft model or an open_clip "
                "architecture (see `starft ls models`)"
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
    tokenizer = open_clip.get_tokenizer(source)
    return ClipModel(
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


def save_model(model: ClipModel, out_dir: str | Path) -> Path:
    """Write ``model`` as an open_clip ``local-dir`` folder, atomically.

    The folder holds ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and
    ``open_clip_model.safetensors`` (the open_clip state dict), so any of these load it back::

        starft.models.create_model(out_dir)
        open_clip.create_model('local-dir:' + out_dir)
        open_clip.create_model(ARCH, pretrained=out_dir + '/open_clip_model.safetensors')

    The files are written to a temporary sibling folder which then replaces ``out_dir``, so a crash
    never leaves a half-written model behind.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir)  # mode from the umask: others may read the weights
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        config: dict[str, Any] = {
            "model_cfg": model.model_cfg,
            "preprocess_cfg": _jsonable(model.preprocess_cfg),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        follow_umask(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
