"""End to end on CPU with every backend: ``starft train`` -> ``starft eval`` -> ``starft wise-ft``.

The models are a tiny random transformers CLIP and SigLIP saved with ``save_pretrained``
(``hf:FOLDER``) and a tiny open_clip model in a temporary local Hugging Face cache
(``hf-hub:ORG/NAME``); the method is StarFT.
"""

from __future__ import annotations

import json

import pytest
import torch

from _tiny_models import fake_hub_cache, save_tiny_hf
from starft.cli.main import main
from starft.eval import load_result
from starft.models import create_model

EVAL = ["synthetic", "num_classes=4", "num_samples=16", "num_groups=2", "seed=3"]


def train_args(model, run):
    return [
        "train",
        "--method",
        "starft",
        "--model",
        model,
        "--dataset",
        "synthetic",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--out",
        str(run),
        "data.train={num_classes: 4, num_samples: 16}",
        "data.val={num_classes: 4, num_samples: 8, seed: 1}",
        "optim.warmup_steps=1",
        "log.progress=false",
        "log.tensorboard=false",
    ]


@pytest.mark.parametrize("kind", ["hf-clip", "hf-siglip", "hf-hub"])
def test_train_eval_wise_ft_with_every_backend(kind, tmp_path, monkeypatch, capsys):
    if kind == "hf-hub":
        torch.manual_seed(0)
        fake_hub_cache(tmp_path / "hub", "someorg/tiny-vit", create_model("starft-tiny-vit"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        name = "hf-hub:someorg/tiny-vit"
    else:
        name = f"hf:{save_tiny_hf(kind[3:], tmp_path / kind)}"
    run = tmp_path / "run"
    assert main(train_args(name, run)) == 0
    weights = run / "best" if (run / "best").is_dir() else run / "final"
    expected = "open_clip_config.json" if kind == "hf-hub" else "config.json"
    assert (weights / expected).is_file()
    assert (
        main(["eval", "--model", str(run), "--out", str(tmp_path / "res"), "--dataset", *EVAL]) == 0
    )
    (path,) = (tmp_path / "res").glob("*.json")
    result = load_result(path)
    assert result["method"] == "starft" and result["n_samples"] == 16
    out = tmp_path / "wise"
    code = main(["wise-ft", str(run), "--alphas", "0,1", "--out", str(out), "--dataset", *EVAL])
    assert code == 0
    rows = {r["alpha"]: r for r in json.loads((out / "wise_ft.json").read_text())["rows"]}
    assert rows[1.0]["metrics"]["top1"] == pytest.approx(result["metrics"]["top1"])
    assert rows[1.0]["metrics"]["nll"] == pytest.approx(result["metrics"]["nll"], rel=1e-4)
    capsys.readouterr()
