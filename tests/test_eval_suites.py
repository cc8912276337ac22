"""Evaluation suites: the YAML schema, label-space projection in evaluation, summaries and
aggregates, and `starft eval --suite/--dataset` on fake benchmark trees with a tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from starft.cli.main import main
from starft.data import create_dataset
from starft.data.benchmarks.common import imagenet_classnames
from starft.errors import StarftError
from starft.eval import SUITES, evaluate_model, load_result, load_suite, summary_markdown
from starft.eval.suite_run import EntryOutcome, summarize
from starft.eval.suites import Suite, SuiteEntry, parse_suite
from starft.models.heads import LinearHeadClassifier

TINY = ["--model", "starft-tiny-vit", "--templates", "simple", "--batch-size", "4"]


# ----------------------------------------------------------------------------- suite files


def test_builtin_suites_follow_the_paper_tables() -> None:
    assert SUITES.names() == ["group-shift", "imagenet-ood", "transfer", "zeroshot-transfer"]
    ood = load_suite("imagenet-ood")
    assert [e.label for e in ood.entries] == ["IN", "IN-R", "IN-A", "IN-S", "IN-V2"]
    assert [e.projection for e in ood.entries] == [None, *["imagenet"] * 4]
    assert ood.aggregates[0].name == "OOD avg"
    assert ood.aggregates[0].over == ("IN-R", "IN-A", "IN-S", "IN-V2")
    group = load_suite("group-shift")
    assert [e.dataset for e in group.entries] == ["waterbirds", "pacs", "cifar10_02"]
    assert group.entries[0].columns() == [
        ("worst_group_acc", "Waterbirds WG"),
        ("top1", "Waterbirds Avg"),
    ]
    assert [e.dataset for e in load_suite("zeroshot-transfer").entries] == [
        "cifar10",
        "cifar100",
        "caltech101",
        "stl10",
    ]
    transfer = load_suite("transfer")
    assert [(e.dataset, e.split) for e in transfer.entries][-2:] == [
        ("iwildcam", "id_test"),
        ("fmow", "id_test"),
    ]


def test_suite_from_a_user_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\ndatasets:\n  - {dataset: cifar10, args: {split: train}}\n"
        "  - {dataset: stl10, label: S, metrics: [top1, ece]}\n"
    )
    suite = load_suite(str(path))
    assert suite.entries[0].label == "cifar10" and suite.entries[0].args == {"split": "train"}
    assert suite.entries[1].columns() == [("top1", "S Acc"), ("ece", "S ECE")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"datasets": [{"dataset": "x"}]}, "needs a 'name'"),
        ({"name": "s", "datasets": []}, "non-empty 'datasets'"),
        ({"name": "s", "datasets": [{"dataset": "x", "colour": 1}]}, "unknown key 'colour'"),
        ({"name": "s", "datasets": [{"dataset": "x", "metrics": ["f1"]}]}, "unknown metric 'f1'"),
        (
            {"name": "s", "datasets": [{"dataset": "x"}, {"dataset": "x"}]},
            "label 'x' is used twice",
        ),
        (
            {
                "name": "s",
                "datasets": [{"dataset": "x"}],
                "aggregates": [{"name": "a", "over": ["y"]}],
            },
            "unknown label 'y'",
        ),
    ],
)
def test_suite_validation_names_the_problem(data: dict, message: str) -> None:
    with pytest.raises(StarftError, match=message):
        parse_suite(data, "'t.yaml'")


def test_unknown_suite() -> None:
    with pytest.raises(StarftError, match="unknown suite 'nope' \\(known: group-shift"):
        load_suite("nope")


# ----------------------------------------------------------------------------- summaries


def _outcome(label: str, status: str, top1: float | None = None) -> EntryOutcome:
    entry = SuiteEntry(dataset=label.lower(), label=label)
    metrics = {} if top1 is None else {"top1": top1, "n_samples": 10}
    return EntryOutcome(entry, status, metrics=metrics, reason=None if top1 else "not found")


def test_ood_avg_is_the_mean_of_the_four_and_none_when_one_is_missing() -> None:
    suite = load_suite("imagenet-ood")
    values = {"IN": 0.829, "IN-R": 0.777, "IN-A": 0.537, "IN-S": 0.525, "IN-V2": 0.738}
    outcomes = [_outcome(e.label, "ok", values[e.label]) for e in suite.entries]
    summary = summarize(suite, outcomes, model_label="m", method="starft")
    assert summary["aggregates"]["OOD avg"]["value"] == pytest.approx(
        (0.777 + 0.537 + 0.525 + 0.738) / 4
    )
    table = summary_markdown(summary)
    assert "| Model | Method | IN | IN-R | IN-A | IN-S | IN-V2 | OOD avg |" in table
    assert "| m | starft | 82.9 | 77.7 | 53.7 | 52.5 | 73.8 | 64.4 |" in table  # paper's row
    outcomes[2] = _outcome("IN-A", "missing")
    summary = summarize(suite, outcomes, model_label="m", method="starft")
    assert summary["aggregates"]["OOD avg"] == {
        "metric": "top1",
        "over": ["IN-R", "IN-A", "IN-S", "IN-V2"],
        "value": None,
        "missing": ["IN-A"],
    }
    assert summary["skipped"][0]["label"] == "IN-A"
    assert "OOD avg: not computed, missing IN-A." in summary_markdown(summary)


# ----------------------------------------------------------------------------- projection


def test_linear_head_in_the_imagenet_space_is_projected_onto_imagenet_r(
    benchmark_trees, tiny_model
) -> None:
    root, _ = benchmark_trees
    ds = create_dataset("imagenet_r", root=root, transform=tiny_model.preprocess_val)
    torch.manual_seed(0)
    head = nn.Linear(64, 1000)
    metrics, _, predictions = evaluate_model(
        tiny_model,
        ds,
        linear_head=(head, imagenet_classnames()),
        projection=ds.projection,
        batch_size=4,
    )
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    with torch.no_grad():
        full = LinearHeadClassifier(tiny_model, head)(images)
    assert predictions.logits.shape == (4, 2)
    torch.testing.assert_close(predictions.logits, full[:, [1, 999]])
    assert metrics["n_samples"] == 4


# ----------------------------------------------------------------------------- the CLI


def test_ls_suites(capsys) -> None:
    assert main(["ls", "suites"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["group-shift", "imagenet-ood", "transfer", "zeroshot-transfer"]


@pytest.mark.parametrize(
    ("suite", "files"),
    [
        ("imagenet-ood", 5),
        ("group-shift", 3),
        ("zeroshot-transfer", 4),
        ("transfer", 6),
    ],
)
def test_eval_suite_on_fake_trees(suite: str, files: int, benchmark_trees, tmp_path, capsys):
    pytest.importorskip("scipy")
    root, _ = benchmark_trees
    out = tmp_path / "results"
    assert main(["eval", *TINY, "--suite", suite, "--root", str(root), "--out", str(out)]) == 0
    results = sorted(out.glob("starft-tiny-vit__zeroshot__*.json"))
    assert len(results) == files
    for path in results:
        result = load_result(path)
        assert result["suite"] == suite and 0.0 <= result["metrics"]["top1"] <= 1.0
    summary = json.loads((out / f"suite_{suite}.json").read_text())
    assert all(entry["status"] == "ok" for entry in summary["entries"]) and not summary["skipped"]
    for aggregate in summary["aggregates"].values():
        values = [
            e["metrics"]["top1"] for e in summary["entries"] if e["label"] in aggregate["over"]
        ]
        assert aggregate["value"] == pytest.approx(sum(values) / len(values))
    table = (out / f"suite_{suite}.md").read_text()
    assert table.startswith(f"# Suite `{suite}`") and "| starft-tiny-vit | zeroshot |" in table
    assert "| starft-tiny-vit | zeroshot |" in capsys.readouterr().out


def test_group_shift_results_carry_the_groups(benchmark_trees, tmp_path) -> None:
    root, _ = benchmark_trees
    out = tmp_path / "r"
    assert (
        main(["eval", *TINY, "--suite", "group-shift", "--root", str(root), "--out", str(out)]) == 0
    )
    birds = load_result(out / "starft-tiny-vit__zeroshot__waterbirds-test.json")
    assert set(birds["per_group"]) == {
        "landbird_on_land",
        "landbird_on_water",
        "waterbird_on_land",
        "waterbird_on_water",
    }
    assert birds["metrics"]["worst_group_acc"] == min(g["acc"] for g in birds["per_group"].values())
    cifar = load_result(out / "starft-tiny-vit__zeroshot__cifar10_02-test.json")
    assert "cat/CIFAR-10.2" in cifar["per_group"] and cifar["n_samples"] == 8


def test_missing_and_broken_datasets_are_skipped_with_warnings(
    benchmark_trees, tmp_path, capsys
) -> None:
    root, _ = benchmark_trees
    partial = tmp_path / "data"
    shutil.copytree(root / "cifar-10-batches-py", partial / "cifar-10-batches-py")
    shutil.copytree(root / "stl10_binary", partial / "stl10_binary")
    (partial / "stl10_binary" / "test_y.bin").unlink()
    out = tmp_path / "r"
    code = main(
        ["eval", *TINY, "--suite", "zeroshot-transfer", "--root", str(partial), "--out", str(out)]
    )
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if line.startswith("starft: warning: suite zeroshot-transfer")]
    assert len(warnings) == 3
    assert any("skipping C-100 (missing): cifar100: not found" in w for w in warnings)
    assert any("skipping STL10 (invalid): stl10:" in w and "test_y.bin" in w for w in warnings)
    summary = json.loads((out / "suite_zeroshot-transfer.json").read_text())
    assert [e["status"] for e in summary["entries"]] == ["ok", "missing", "missing", "invalid"]
    assert summary["aggregates"]["Avg"]["value"] is None
    assert len(list(out.glob("starft-tiny-vit__*.json"))) == 1


def test_dataset_root_override_and_nothing_found(benchmark_trees, tmp_path, capsys) -> None:
    root, _ = benchmark_trees
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["eval", *TINY, "--suite", "zeroshot-transfer", "--out", str(tmp_path / "r")]
    assert main([*base, "--root", str(empty)]) == 2
    assert "none of its datasets could be evaluated" in capsys.readouterr().err
    override = f"C-10={root / 'cifar-10-batches-py'}"
    assert main([*base, "--root", str(empty), "--dataset-root", override]) == 0
    summary = json.loads((tmp_path / "r" / "suite_zeroshot-transfer.json").read_text())
    assert summary["entries"][0]["status"] == "ok"


@pytest.mark.parametrize(
    ("dataset", "folder", "classes"),
    [
        ("objectnet", "objectnet-1.0", 113),
        ("cifar10_1", "cifar10.1", 10),
        ("cifar10_2", "cifar10.2", 10),
        ("imagenet_r", "imagenet-r", 2),
    ],
)
def test_eval_single_dataset_with_root(dataset, folder, classes, benchmark_trees, tmp_path, capsys):
    root, _ = benchmark_trees
    out = tmp_path / "r"
    args = ["eval", *TINY, "--dataset", dataset, "--root", str(root / folder), "--out", str(out)]
    assert main([*args, "--save-predictions"]) == 0
    (path,) = out.glob("*.json")
    result = load_result(path)
    assert result["dataset"] == dataset and result["n_samples"] == len(
        create_dataset(dataset, root=root / folder)
    )
    rows = path.with_suffix(".predictions.csv").read_text().splitlines()[1:]
    assert all(0 <= int(row.split(",")[2]) < classes for row in rows)
    projected = dataset in ("objectnet", "imagenet_r")
    assert result["config"]["projection"] == ("imagenet" if projected else None)
    path.unlink()
    assert main([*args, "--no-projection"]) == 0
    assert load_result(path)["config"]["projection"] is None


def test_eval_cli_argument_errors(tmp_path, capsys) -> None:
    base = ["eval", *TINY, "--out", str(tmp_path)]
    assert main([*base, "--suite", "group-shift"]) == 2
    assert "--suite needs --root" in capsys.readouterr().err
    assert main([*base, "--suite", "group-shift", "--root", str(tmp_path), "split=test"]) == 2
    assert "--suite takes no dataset arguments" in capsys.readouterr().err
    assert main([*base, "--suite", "group-shift", "--root", str(tmp_path), "--no-projection"]) == 2
    assert "--no-projection is for --dataset" in capsys.readouterr().err
    assert main([*base, "--dataset", "cifar10", "--root", str(tmp_path / "none")]) == 2
    assert "cifar10: root" in capsys.readouterr().err


def test_suite_run_keeps_entry_order() -> None:
    suite = Suite("s", "d", (SuiteEntry("a", "A"), SuiteEntry("b", "B")))
    summary = summarize(
        suite, [_outcome("A", "ok", 0.5), _outcome("B", "ok", 0.25)], model_label="m", method="x"
    )
    assert [c["title"] for c in summary["columns"]] == ["A", "B"]
