"""WiSE-FT: exact weight interpolation, the sweep's endpoints and outputs, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from starft.cli.main import main
from starft.config import TrainConfig, to_dict
from starft.data import create_dataset
from starft.errors import StarftError
from starft.eval import evaluate_model, load_result
from starft.eval.wise_ft import check_alphas
from starft.models import create_model, save_model
from starft.models.interpolate import interpolate_state_dicts, interpolate_weights

EVAL_ARGS = ["synthetic", "num_classes=4", "num_samples=24", "num_groups=2", "seed=3"]


def train_args(method, run, model="starft-tiny-vit"):
    return [
        "train",
        "--method",
        method,
        "--model",
        model,
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "1e-2",
        "--out",
        str(run),
        "data.train={num_classes: 4, num_samples: 32}",
        "data.val={num_classes: 4, num_samples: 16, seed: 1}",
        "optim.warmup_steps=1",
        "log.progress=false",
        "log.tensorboard=false",
    ]


def tiny(name, seed):
    torch.manual_seed(seed)
    return create_model(name)


@pytest.mark.parametrize("name", ["starft-tiny-vit", "starft-tiny-rn"])
def test_interpolation_is_exact_at_0_half_and_1(name):
    zero, fine = tiny(name, 0), tiny(name, 1)
    with torch.no_grad():  # make the integer batch-norm counters differ too (RN only)
        for value in fine.state_dict().values():
            if not torch.is_floating_point(value):
                value.add_(5)
    a, b = zero.state_dict(), fine.state_dict()
    at0, at1 = interpolate_weights(zero, fine, 0.0), interpolate_weights(zero, fine, 1.0)
    half = interpolate_weights(zero, fine, 0.5).state_dict()
    for key in a:
        assert torch.equal(at0.state_dict()[key], a[key]), key
        assert torch.equal(at1.state_dict()[key], b[key]), key
        expected = (a[key] + b[key]) / 2 if torch.is_floating_point(a[key]) else b[key]
        assert torch.equal(half[key], expected), key
    quarter = interpolate_state_dicts(a, b, 0.25)
    key = next(k for k, v in a.items() if torch.is_floating_point(v))
    assert torch.equal(quarter[key], 0.75 * a[key] + 0.25 * b[key])
    assert torch.equal(fine.state_dict()[key], b[key])  # the fine-tuned model is not modified


def test_different_architectures_are_a_clear_error():
    with pytest.raises(StarftError, match="differ in architecture: '"):
        interpolate_weights(tiny("starft-tiny-vit", 0), tiny("starft-tiny-rn", 0), 0.5)


@pytest.mark.parametrize(
    ("alphas", "message"),
    [([], "at least one value"), ([0.5, 1.5], r"in \[0, 1\], got 1.5"), ([0.2, 0.2], "duplicate")],
)
def test_bad_alphas(alphas, message):
    with pytest.raises(StarftError, match=message):
        check_alphas(alphas)


def metrics_of(folder):
    (path,) = folder.glob("*.json")
    return load_result(path)["metrics"]


def assert_same_metrics(a, b):
    assert a["top1"] == b["top1"] and a["n_samples"] == b["n_samples"]
    assert a["nll"] == pytest.approx(b["nll"], rel=1e-5)
    assert a["ece"] == pytest.approx(b["ece"], rel=1e-4, abs=1e-6)


def test_wise_ft_of_an_ft_run_interpolates_the_head(tmp_path):
    zero_shot = save_model(tiny("starft-tiny-vit", 7), tmp_path / "zs")
    run = tmp_path / "ft"
    assert main(train_args("ft", run, model=str(zero_shot))) == 0
    out = tmp_path / "wise"
    code = main(
        ["wise-ft", str(run), "--alphas", "0,0.5,1", "--out", str(out), "--dataset", *EVAL_ARGS]
    )
    assert code == 0
    for model, folder in ((zero_shot, "zs_eval"), (run, "ft_eval")):
        args = ["--model", str(model), "--out", str(tmp_path / folder), "--dataset", *EVAL_ARGS]
        assert main(["eval", *args]) == 0
    summary = json.loads((out / "wise_ft.json").read_text())
    rows = {row["alpha"]: row for row in summary["rows"]}
    assert list(rows) == [0.0, 0.5, 1.0] and {r["head"] for r in rows.values()} == {"linear"}
    assert_same_metrics(rows[0.0]["metrics"], metrics_of(tmp_path / "zs_eval"))
    assert_same_metrics(rows[1.0]["metrics"], metrics_of(tmp_path / "ft_eval"))
    ends = (rows[0.0]["metrics"]["nll"], rows[1.0]["metrics"]["nll"])
    assert rows[0.5]["metrics"]["nll"] not in ends
    results = sorted((out / "results").glob("*.json"))
    assert len(results) == 3
    half = load_result(out / rows[0.5]["result"])
    assert half["alpha"] == 0.5 and half["method"] == "ft+wise_ft@0.5"
    assert half["config"]["wise_ft"]["alpha"] == 0.5 and half["dataset"] == "synthetic"
    table = (out / "wise_ft.md").read_text().splitlines()
    assert table[2].startswith("| α | synthetic top-1 | synthetic worst-group |")
    assert [line.split("|")[1].strip() for line in table[4:7]] == ["0", "0.5", "1"]
    assert (out / "wise_ft.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wise_ft_of_a_flyp_run_rebuilds_the_zero_shot_head(tmp_path):
    run = tmp_path / "flyp"
    assert main([*train_args("flyp", run), "seed=5"]) == 0
    assert main(["wise-ft", str(run), "--alphas", "1,0"]) == 0  # default: the run's val set
    summary = json.loads((run / "wise_ft" / "wise_ft.json").read_text())
    assert summary["datasets"][0]["label"] == "synthetic-val"
    rows = {row["alpha"]: row for row in summary["rows"]}
    assert {r["head"] for r in rows.values()} == {"zeroshot"}
    # α = 1: what the loop measured on its validation set with the fine-tuned weights.
    (run_result,) = (run / "results").glob("*.json")
    assert_same_metrics(rows[1.0]["metrics"], load_result(run_result)["metrics"])
    # α = 0: the run's starting model, a random tiny model re-created from the run's seed.
    val = create_dataset("synthetic", num_classes=4, num_samples=16, seed=1)
    start = tiny("starft-tiny-vit", 5)
    val.transform = start.preprocess_val
    expected, _, _ = evaluate_model(start, val)
    assert_same_metrics(rows[0.0]["metrics"], expected)
    assert rows[0.0]["metrics"]["nll"] != rows[1.0]["metrics"]["nll"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alphas", "0,x"], "--alphas: 'x' is not a number"),
        (["--alphas", "0,2"], "alpha must be in [0, 1], got 2.0"),
        (["--alphas", "0,1,0"], "alphas: duplicate values"),
        ([], "is not a run folder: it has no config.yaml"),
        (["--weights", "best", "config"], "has no best/ weights"),
        (["config"], "the run has no validation set (data.val)"),
    ],
)
def test_bad_wise_ft_input_is_one_clear_line(argv, message, tmp_path, capsys):
    if argv and argv[-1] == "config":  # a run folder whose training has not written weights yet
        argv = argv[:-1]
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(TrainConfig())))
        save_model(tiny("starft-tiny-vit", 0), tmp_path / "final")
    code = main(["wise-ft", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("starft: error: ") and message in err[0]
