"""Method configs typed at load time, resolved into the run's files; paper presets' captions."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from starft.cli.main import main
from starft.config import TrainConfig, build_dataclass, load_train_config
from starft.errors import StarftError
from starft.method_configs import METHOD_CONFIGS, StarFTConfig, describe_fields, method_config

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs" / "paper").glob("*.yaml"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "method.decay=epochs",
            "method.decay: expected one of auto, epoch, step, none, got 'epochs'",
        ),
        ("method.suffix=noun", "method.suffix: expected one of spurious, random, none"),
        ("method.template_mode=rand", "method.template_mode: expected one of random, fixed"),
        ("method.lambda_starr=1", "method.lambda_starr: unknown field (known: "),
        ("method.lambda_star=-1", "method.lambda_star must be >= 0, got -1.0"),
        ("method.lambda_star=lots", "method.lambda_star: expected a number, got 'lots'"),
        ("method.mask_same_class=maybe", "method.mask_same_class: expected true or false"),
        ("method.random_suffix_words=0", "method.random_suffix_words must be >= 1"),
        ("method.name=starfft", "unknown method 'starfft' (known: carft, carot, cft, flyp"),
        ("data.on_bad_image=ignore", "data.on_bad_image: expected one of error, skip"),
    ],
)
def test_bad_method_fields_fail_when_the_config_loads(override, message):
    with pytest.raises(StarftError) as info:
        load_train_config(None, ["method.name=starft", override])
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("carot", {"ema_momentum": 1.5}, r"method\.ema_momentum must be in \[0, 1\]"),
        ("lipsum", {"num_texts": 0}, r"method\.num_texts must be >= 1"),
        ("ft", {"label_smoothing": 1.0}, r"method\.label_smoothing must be in \[0, 1\)"),
        ("carft", {"beta": -0.1}, r"method\.beta must be >= 0"),
        ("lp", {"val_fraction": 1.0}, r"method\.val_fraction must be in \[0, 1\)"),
    ],
)
def test_method_value_ranges_are_checked_without_a_model(name, params, message):
    with pytest.raises(StarftError, match=message):
        method_config(name, params)


def test_a_config_built_in_python_obeys_the_same_types():
    with pytest.raises(StarftError, match=r"method\.decay: expected one of"):
        StarFTConfig(decay="epochs")
    assert StarFTConfig(lambda_star=1).lambda_star == 1.0  # ints are numbers


def test_a_typo_fails_in_under_two_seconds_without_importing_torch():
    """Loading the config checks ``method.*`` before torch or any model is imported."""
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from starft.config import load_train_config\n"
        "from starft.errors import StarftError\n"
        "try:\n"
        "    load_train_config(None, ['method.name=starft', 'method.lambda_starr=1'])\n"
        "except StarftError as error:\n"
        "    print(error, file=sys.stderr)\n"
        "print('torch' in sys.modules, time.perf_counter() - t)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    torch_loaded, seconds = run.stdout.split()
    assert "method.lambda_starr: unknown field" in run.stderr
    assert torch_loaded == "False" and float(seconds) < 2.0, seconds


def test_loaded_config_holds_every_method_field():
    config = load_train_config(None, ["method.name=starft", "method.lambda_star=2"])
    fields = {f.name for f in dataclasses.fields(StarFTConfig)}
    assert set(config.method) == {"name", *fields}
    assert config.method["lambda_star"] == 2.0 and config.method["decay"] == "auto"
    # Resolving again (the trainer does, for configs built in Python) changes nothing.
    again = load_train_config(None, [f"method.{k}={v}" for k, v in config.method.items()])
    assert again.method == config.method


@pytest.mark.parametrize("name", METHOD_CONFIGS.names())
def test_ls_methods_name_prints_every_field_with_type_default_and_help(name, capsys):
    assert main(["ls", "methods", name]) == 0
    out = capsys.readouterr().out
    for field, type_name, default, help_text in describe_fields(METHOD_CONFIGS.get(name)):
        assert help_text, f"{name}.{field} has no help"
        line = next(line for line in out.splitlines() if line.startswith(field + " "))
        assert type_name in line and default in line and help_text in line


def test_ls_methods_lists_names_without_torch():
    code = "import sys\nfrom starft.cli.main import main\nmain(['ls', 'methods', 'starft'])\n"
    code += "print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "decay" in run.stdout and run.stdout.split()[-1] == "False"


# -- the run's config.yaml and result JSONs -----------------------------------------------------
def test_config_built_in_python_is_resolved_in_config_yaml_and_results(tmp_path):
    from starft.eval import load_result
    from starft.train import fit

    config = build_dataclass(
        TrainConfig,
        {
            "model": {"name": "starft-tiny-vit"},
            "data": {
                "dataset": "synthetic",
                "train": {"num_classes": 4, "num_samples": 32, "image_size": 32},
                "val": {"num_classes": 4, "num_samples": 16, "image_size": 32, "seed": 1},
                "batch_size": 16,
            },
            "method": {"name": "starft"},
            "optim": {"epochs": 1, "warmup_steps": 1},
            "log": {"progress": False, "tensorboard": False},
            "out_dir": str(tmp_path / "run"),
        },
    )
    fit(config)
    expected = {"name": "starft", **method_config("starft").__dict__}
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["method"] == expected
    (result,) = (tmp_path / "run" / "results").glob("*.json")
    assert load_result(result)["config"]["method"] == expected


# -- paper presets --------------------------------------------------------------------------------
def preset_parts(preset: Path, tmp_path: Path):
    """The preset's model swapped for the tiny one, its CSV for two ImageNet-class images."""
    from starft.models import create_model
    from starft.train.setup import build_datasets, build_method
    from starft.utils.distributed import DistInfo

    for i in range(8):
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(tmp_path / f"{i}.png")
    rows = "".join(f"{i}.png,{i % 2}\n" for i in range(8))
    (tmp_path / "train.csv").write_text("filepath,label\n" + rows, encoding="utf-8")
    config = load_train_config(
        preset,
        [
            "model.name=starft-tiny-vit",
            "model.pretrained=null",
            f"data.train.path={tmp_path / 'train.csv'}",
            "data.val=null",
        ],
    )
    torch.manual_seed(0)
    model = create_model("starft-tiny-vit")
    train_set, _ = build_datasets(config, model)
    return config, build_method(config, model, train_set, DistInfo())


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_paper_preset_trains_on_the_released_captions_and_settings(preset, tmp_path):
    from starft.data import get_templates
    from starft.methods import StepInfo

    config, method = preset_parts(preset, tmp_path)
    batch = {"label": torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])}
    captions = method.class_captions(batch, StepInfo.at(0, total_steps=1000))
    print(f"{preset.name}: first captions {captions[:4]}")
    # A restatement of the releases (docs/methods.md): AdamW lr 1e-5, wd 0.1,
    # global batch 512 = 8 x 64, 10 epochs, 500 warm-up steps, cosine, fp32, no clamp.
    optim = config.optim
    assert (optim.lr, optim.weight_decay, optim.epochs, optim.warmup_steps) == (
        1e-5,
        0.1,
        10,
        500,
    )
    assert optim.schedule == "cosine" and config.data.batch_size * 8 == 512
    assert config.precision == "fp32" and config.method["clamp_logit_scale"] is False
    assert method.task.eval_templates == get_templates("openai_imagenet")
    assert method.task.classnames[:2] == ["tench", "goldfish"]
    if config.method["name"] == "starft":
        assert captions[:2] == ["a photo of a tench.", "a photo of a goldfish."]
        spurious = method.spurious_captions(captions, StepInfo.at(0, total_steps=1000))
        print(f"{preset.name}: first spurious captions {spurious[:2]}")
        assert all(s.startswith(c[:-1] + " ") for s, c in zip(spurious, captions))
        assert config.method["pool"] == "background" and config.method["lambda_star"] == 0.5
        assert config.method["decay"] == "epoch" and config.method["mask_same_class"] is True
    else:  # FLYP: a random one of the 80 OpenAI templates per sample
        allowed = {t.format(c) for t in get_templates("openai_imagenet") for c in ("tench",)}
        allowed |= {t.format("goldfish") for t in get_templates("openai_imagenet")}
        assert set(captions) <= allowed and len(set(captions)) > 2
        assert config.method["template_mode"] == "random"


# -- logit-scale clamping -----------------------------------------------------------------------
@pytest.mark.parametrize("clamp", [True, False])
def test_clamp_logit_scale_option(clamp):
    import math

    from starft.methods import StepInfo, Task, create_method
    from starft.models import create_model

    method = create_method(
        "flyp",
        create_model("starft-tiny-vit"),
        Task(["a", "b"], ["a photo of a {}."]),
        {"clamp_logit_scale": clamp},
    )
    with torch.no_grad():
        method.model.logit_scale.fill_(math.log(100.0) + 0.5)
    method.after_optimizer_step(StepInfo.at(0))
    value = method.model.logit_scale.item()
    assert value == pytest.approx(math.log(100.0)) if clamp else value > math.log(100.0) + 0.4


def test_ls_name_is_only_for_methods_and_datasets(capsys):
    assert main(["ls", "models", "ViT-B-16"]) == 2
    assert "`starft ls models` takes no NAME" in capsys.readouterr().err
    assert main(["ls", "methods", "starftt"]) == 2
    assert "unknown method 'starftt'" in capsys.readouterr().err
