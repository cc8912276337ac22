"""The command line: listing, training, evaluation, benchmarking and one-line errors."""

from __future__ import annotations

import json

import pytest

from starft.cli.ls import KINDS
from starft.cli.main import main
from starft.eval import load_result

TRAIN_ARGS = [
    "train",
    "--method",
    "flyp",
    "--dataset",
    "synthetic",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--lr",
    "1e-3",
    "data.train={num_classes: 4, num_samples: 32}",
    "data.val={num_classes: 4, num_samples: 16, seed: 1}",
    "optim.warmup_steps=1",
    "log.progress=false",
]


@pytest.mark.parametrize("kind", KINDS)
def test_ls_lists_every_kind(kind, capsys):
    assert main(["ls", kind]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.split()[0] for line in lines)


def test_ls_methods_names_flyp_and_starft(capsys):
    main(["ls", "methods"])
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"flyp", "starft"} <= set(names)


def test_train_then_eval_a_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN_ARGS, "--out", str(run)]) == 0
    assert (run / "best" / "open_clip_config.json").is_file()
    results = tmp_path / "results"
    code = main(
        [
            "eval",
            "--model",
            str(run),
            "--dataset",
            "synthetic",
            "--out",
            str(results),
            "--save-predictions",
            "num_classes=4",
            "num_samples=24",
            "num_groups=2",
            "seed=3",
        ]
    )
    assert code == 0
    (path,) = results.glob("*.json")
    result = load_result(path)
    assert result["method"] == "flyp" and result["dataset"] == "synthetic"
    assert result["n_samples"] == 24 and set(result["per_group"]) == {"group_0", "group_1"}
    for key in ("schema_version", "starft_version", "git_hash", "date", "config", "metrics"):
        assert key in result
    assert {"top1", "ece", "nll", "worst_group_acc", "avg_group_acc"} <= set(result["metrics"])
    header = path.with_suffix(".predictions.csv").read_text().splitlines()[0]
    assert header == "index,label,prediction,group,confidence"


def test_train_from_yaml_with_overrides(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "method: {name: starft, lambda_star: 2.0}\n"
        "data: {dataset: synthetic, train: {num_classes: 4, num_samples: 32}, batch_size: 16}\n"
        "optim: {epochs: 1, warmup_steps: 1}\n"
        "log: {progress: false, tensorboard: false}\n"
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "method.pool=texture"]) == 0
    saved = (run / "config.yaml").read_text()
    assert "lambda_star: 2.0" in saved and "pool: texture" in saved


def test_bench_prints_one_json_object(capsys):
    code = main(
        [
            "bench",
            "--method",
            "starft",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "starft" and result["batch_size"] == 4
    assert result["step_time_s"] > 0 and result["peak_rss_mb"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "optim.lrr=1"], "optim.lrr: unknown field"),
        (["train", "--epochs", "1", "optim.lrr=1"], "optim.lrr: unknown field"),
        (["train", "--epochs", "two"], "optim.epochs: expected an integer, got 'two'"),
        (["train", "--method", "nope"], "unknown method 'nope'"),
        (["train", "--config", "/no/such.yaml"], "cannot read config file '/no/such.yaml'"),
        (
            ["train", "--dataset", "csv", "data.train.path=/no.csv"],
            "CSV file '/no.csv' does not exist",
        ),
        (["eval", "--model", "nope", "--dataset", "synthetic"], "unknown model 'nope'"),
        (["eval", "--model", "starft-tiny-vit", "--dataset", "synthetic", "bogus=1"], "bogus"),
        (["bench", "--steps", "0"], "--steps and --batch-size must be >= 1"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path / "x")] if argv[0] == "train" else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("starft: error: ") and message in err[0]


def test_bad_yaml_names_the_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("optim:\n  lr: [1\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert f"config file '{cfg}' line" in capsys.readouterr().err


def test_flat_overrides_keep_dotted_keys_and_yaml_values():
    from starft.config import parse_flat_overrides
    from starft.errors import StarftError

    args = parse_flat_overrides(["split=train", "a.b=1e-4", "split=val", "flag=true"])
    assert args == {"split": "val", "a.b": 1e-4, "flag": True}
    assert list(args) == ["split", "a.b", "flag"]  # a repeated key keeps its place, last value wins
    with pytest.raises(StarftError, match=r"key\.path=value"):
        parse_flat_overrides(["novalue"])
