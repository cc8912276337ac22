"""Typed run configuration: dataclasses built from YAML files plus ``key=value`` overrides.

The library only ever sees these dataclasses (never an argparse namespace). A config file is a
nested mapping with the same shape as :class:`TrainConfig`; overrides use dotted paths
(``optim.lr=1e-4``, ``method.lambda_star=2``). Every unknown key or badly typed value is a
:class:`StarftError` naming the field, e.g. ``optim.lrr: unknown field (known: lr, ...)``.
The resolved config is written beside every result (``config.yaml`` / ``config`` in result JSONs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from starft.errors import StarftError

T = TypeVar("T")

#: What ``on_bad_image`` accepts: stop at an unreadable image, or skip it (with a count).
OnBadImage = Literal["error", "skip"]
#: The validation metric that picks ``best/``.
#: Learning-rate schedules after warmup (``starft.train.optim.lr_at``).
Schedule = Literal["cosine", "constant", "step"]
#: Frozen teachers' image-feature cache (``starft.train.teacher_cache``; docs/performance.md).
TeacherCacheMode = Literal["auto", "memory", "disk", "off"]


@dataclass
class ModelConfig:
    """``name``: saved folder, starft model, open_clip architecture or prefixed name (``hf:``,
    ``hf-hub:``, ``local-dir:``; docs/models.md); ``pretrained``: open_clip tag/file;
    ``cache_dir``: open_clip download cache, the Hugging Face cache for ``hf:`` / ``hf-hub:``.

    ``text_tower_from``: a model (any name ``create_model`` takes) whose text tower and logit scale
    replace this model's after loading, e.g. to train a new image tower against a pretrained text
    tower (the sandbox ViT's recipe); both must have the same text tower.
    """

    name: str = "starft-tiny-vit"
    pretrained: str | None = None
    cache_dir: str | None = None
    text_tower_from: str | None = None


@dataclass
class DataConfig:
    """Training data (``train``), ID validation data (``val``; None = no per-epoch evaluation).

    The validation set is built from ``val_dataset`` when set (e.g. a separately registered split),
    else from the same registered ``dataset`` as the training data.

    ``train`` / ``val`` are keyword arguments of the registered dataset ``dataset`` (e.g. for
    ``csv``: ``{path: train.csv, root: images/}``). ``templates`` overrides the dataset's templates
    (a registered template-set name, a list, or a file); ``eval_templates`` those of zero-shot
    heads.
    """

    dataset: str = "synthetic"
    train: dict[str, Any] = field(default_factory=dict)
    val: dict[str, Any] | None = None
    val_dataset: str | None = None
    templates: str | list[str] | None = None
    eval_templates: str | list[str] | None = None
    batch_size: int = 32
    eval_batch_size: int = 256
    num_workers: int = 0
    augment: bool = True
    on_bad_image: OnBadImage = "error"


@dataclass
class OptimConfig:
    """AdamW + linear warmup + cosine decay (paper: lr 1e-5, wd 0.1, 500 warmup, 10 epochs).

    ``schedule``: ``cosine``, ``constant`` or ``step`` (``lr·step_gamma^(epoch // step_epochs)``,
    RobustViT's and CFT's ``lr·0.85^(epoch//2)``).
    """

    lr: float = 1e-5
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    epochs: int = 10
    warmup_steps: int = 500
    schedule: Schedule = "cosine"
    step_gamma: float = 0.85
    step_epochs: int = 2
    exclude_from_weight_decay: bool = True
    grad_clip: float | None = None
    accum_steps: int = 1
    on_nonfinite: str = "stop"  # a NaN/Inf loss or gradient: stop the run, or skip the step


@dataclass
class LogConfig:
    every_steps: int = 10
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "starft"
    progress: bool = True


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    #: ``name`` plus the method's fields; :func:`load_train_config` fills in every default.
    method: dict[str, Any] = field(default_factory=lambda: {"name": "starft"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    out_dir: str = "runs/starft"
    seed: int = 0
    device: str = "auto"
    #: ``auto``: bf16 autocast on CUDA GPUs that support it (else fp16), fp32 on the CPU
    precision: str = "auto"
    #: ``torch.compile`` the image towers (opt-in; docs/performance.md#gpu)
    compile: bool = False
    checkpoint_every_steps: int = 0
    #: a registered metric of the validation set; lower-is-better ones (``nll``, the validation
    #: loss) are minimised. Checked against the metric registry when the run is set up.
    select_by: str = "top1"
    save_predictions: bool = False
    #: ``auto``: cache frozen teachers' image features per dataset row when that is exact.
    teacher_cache: TeacherCacheMode = "auto"


def to_dict(obj: Any) -> Any:
    """A plain (YAML/JSON-serialisable) copy of a config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, bad YAML or a non-mapping is a one-line error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise StarftError(f"cannot read config file '{path}': {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise StarftError(f"config file '{path}'{where}: invalid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StarftError(f"config file '{path}' must hold a mapping, not {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optim.lr=1e-4'`` -> (['optim', 'lr'], 0.0001); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise StarftError(f"override '{text}' must look like key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    # YAML reads '1e-4' as a string; accept scientific notation as a number.
    if isinstance(value, str) and any(c in value for c in ".eE"):
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip().split("."), value


def parse_flat_overrides(texts: Iterable[str]) -> dict[str, Any]:
    """``['split=train', 'a.b=1']`` -> ``{'split': 'train', 'a.b': 1}``: keyword arguments.

    Dataset and method arguments on a command line are flat keywords (dots stay in the key), unlike
    config overrides (:func:`apply_overrides`), which set nested sections; later keys win.
    """
    out: dict[str, Any] = {}
    for text in texts:
        path, value = parse_override(text)
        out[".".join(path)] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted ``key=value`` into a copy of the nested mapping ``data``."""
    out = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise StarftError(f"override '{text}': '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def build_dataclass(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Construct dataclass ``cls`` from a mapping, checking names and types recursively."""
    if not isinstance(data, dict):
        raise StarftError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            raise StarftError(f"{name}: unknown field (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(hints[key], value, name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, name)
            except StarftError as err:
                errors.append(str(err))
        raise StarftError(errors[0] if len(errors) == 1 else f"{name}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value if value is not None else {}, prefix=name)
    if tp is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, str) and value in choices:
            return value
        raise StarftError(f"{name}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise StarftError(f"{name}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise StarftError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise StarftError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise StarftError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads '1e-3' (no dot) as a string, also inside lists: accept such numbers.
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
        raise StarftError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise StarftError(f"{name}: expected a string, got {value!r}")
    return value


def check_field_types(obj: Any, prefix: str) -> None:
    """Check (and normalise, e.g. int -> float) every field of dataclass ``obj`` in place.

    For configs built in Python rather than by :func:`build_dataclass`, so both obey the same
    types, ``Literal`` choices included.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = _coerce(hints[f.name], getattr(obj, f.name), f"{prefix}.{f.name}")
        object.__setattr__(obj, f.name, value)


def resolve_method(config: TrainConfig) -> TrainConfig:
    """Replace ``config.method`` by the checked, complete method section (every default filled).

    Imports no torch (:mod:`starft.method_configs`), so a bad method field fails in well under
    a second. Idempotent: the trainer calls it again on configs built in Python.
    """
    from starft.method_configs import resolve_method_section

    config.method = resolve_method_section(config.method)
    return config


def load_train_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """YAML file (optional) + overrides -> validated :class:`TrainConfig`.

    The ``method`` section comes back resolved: the method's every field with its value, the
    defaults included, which is what the run folder's ``config.yaml`` and result JSONs record.
    """
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    return resolve_method(build_dataclass(TrainConfig, data))
