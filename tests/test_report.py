"""`starft report`: runs from result JSONs, grouping, mean ± std, ranks, CSV and plots."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from starft.cli.main import main
from starft.errors import StarftError
from starft.eval.harness import EntryOutcome, write_entry_results
from starft.eval.suites import SuiteEntry
from starft.report import build_report, collect_runs, columns, rows
from starft.report.tables import average_ranks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(
    out: Path,
    method: str,
    seed: int | None,
    label: str,
    axis: str | None,
    top1: float,
    per_group: dict | None = None,
    **extra,
) -> None:
    metrics = {"top1": top1, "ece": 0.1, "nll": 1.0, "n_samples": 10}
    if per_group:
        accs = [row["acc"] for row in per_group.values()]
        metrics |= {"worst_group_acc": min(accs), "avg_group_acc": sum(accs) / len(accs)}
    entry = SuiteEntry(dataset="synthetic", label=label, axis=axis)
    outcome = EntryOutcome(entry, "ok", metrics, per_group or {})
    write_entry_results(
        [outcome],
        out,
        model="m",
        method=method,
        seed=seed,
        method_config={"name": method},
        by_label=True,
        extra=extra,
    )


def _fake_runs(root: Path) -> Path:
    groups = {"a": {"acc": 0.9, "n": 5}, "b": {"acc": 0.5, "n": 5}}
    for method, base in (("zeroshot", 0.5), ("flyp", 0.8)):
        for seed in (None,) if method == "zeroshot" else (0, 1):
            out = root / f"{method}-{seed}"
            bump = 0.0 if seed is None else 0.02 * seed
            _write(out, method, seed, "id_test", "id", base + bump)
            _write(out, method, seed, "groups", "group", base, groups)
            _write(out, method, seed, "sketch", "domain", base - 0.2 + bump)
            _write(out, method, seed, "colour", "transfer", 0.7)
    (root / "summary.json").write_text(json.dumps({"not": "a result"}))
    return root


def test_rows_are_mean_std_over_seeds_with_n(tmp_path):
    runs = collect_runs([_fake_runs(tmp_path)])
    table = rows(runs, ["method"])
    assert [(row.label, row.n) for row in table] == [("zero-shot", 1), ("FLYP", 2)]
    flyp = table[1].stats
    assert flyp["id_acc"][0] == pytest.approx(0.81)
    assert flyp["id_acc"][1] == pytest.approx(math.sqrt(2) * 0.01)  # sample std of 0.80, 0.82
    assert flyp["ood_avg_acc"][0] == pytest.approx(0.61)
    assert columns(runs)[:3] == ["id_acc", "worst_group_acc", "avg_group_acc"]
    by_seed = rows(runs, ["method", "seed"])
    assert [row.label for row in by_seed] == ["zero-shot", "FLYP seed 0", "FLYP seed 1"]
    ranks = average_ranks(table, ["id_acc", "ood_avg_acc"])
    assert ranks == {"zero-shot": 2.0, "FLYP": 1.0}


def test_alignment_results_give_miou_and_energy_columns(tmp_path):
    for method, seed, miou in (("zeroshot", None, 0.3), ("cft", 0, 0.5), ("cft", 1, 0.7)):
        out = tmp_path / f"{method}-{seed}"
        _write(out, method, seed, "id_test", "id", 0.9)
        metrics = {"top1": 0.9, "n_samples": 4, "miou": miou, "energy_in_mask": miou / 2}
        entry = SuiteEntry(dataset="synthetic", label="masks", axis="alignment")
        write_entry_results(
            [EntryOutcome(entry, "ok", metrics, {})],
            out,
            model="m",
            method=method,
            seed=seed,
            method_config={"name": method},
            by_label=True,
        )
    runs = collect_runs([tmp_path])
    assert columns(runs) == ["id_acc", "masks:miou", "masks:energy_in_mask"]
    cft = rows(runs, ["method"])[1].stats
    assert cft["masks:miou"][0] == pytest.approx(0.6)
    assert cft["masks:energy_in_mask"][0] == pytest.approx(0.3)


def test_report_writes_markdown_csv_and_plots(tmp_path):
    report = build_report([_fake_runs(tmp_path / "runs")], tmp_path / "out")
    assert "| FLYP | 2 | 0.810 ± 0.014 |" in report.markdown
    assert "avg. rank" in report.markdown
    for name in ("group_accuracy", "group_differences", "id_vs_ood", "per_style"):
        assert report.files[name].read_bytes().startswith(PNG_MAGIC), name
    lines = list(csv.reader(io.StringIO(report.files["csv"].read_text())))
    assert lines[0][:4] == ["row", "n", "id_acc", "id_acc_std"] and lines[2][:2] == ["FLYP", "2"]


def test_bad_report_input_is_one_clear_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no result JSONs" in capsys.readouterr().err
    assert main(["report", str(_fake_runs(tmp_path)), "--group-by", "colour"]) == 2
    assert "--group-by: unknown field 'colour'" in capsys.readouterr().err
    with pytest.raises(StarftError, match="does not exist"):
        collect_runs([tmp_path / "nope"])


TRAIN = [
    "train",
    "--model",
    "starft-tiny-vit",
    "--dataset",
    "synthetic",
    "data.train={num_classes: 3, num_samples: 48, num_groups: 2, seed: 0}",
    "data.val={num_classes: 3, num_samples: 24, num_groups: 2, seed: 1}",
    "data.batch_size=16",
    "optim.epochs=1",
    "log.progress=false",
    "log.tensorboard=false",
    "device=cpu",
]


def test_report_over_two_train_runs_and_a_wise_ft_sweep(tmp_path, capsys):
    for method in ("ft", "flyp"):
        assert main([*TRAIN, "--method", method, f"out_dir={tmp_path / method}"]) == 0
    alphas = ["--alphas", "0,0.5,1", "--device", "cpu"]
    assert main(["wise-ft", str(tmp_path / "flyp"), *alphas]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "ft"), str(tmp_path / "flyp"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    for row in ("| FT (CE) | 1 |", "| FLYP | 1 |", "| FLYP WiSE-FT α=0.5 | 1 |"):
        assert row in text, row
    assert "synthetic-val top-1" in text and "synthetic-val worst-group" in text
    # The α = 1 sweep point is the run's own weights: the same numbers as its validation result.
    table = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert table["| FLYP WiSE-FT α=1"].split(" | ")[2:] == table["| FLYP"].split(" | ")[2:]
    for name in ("wise_ft_alpha.png", "group_accuracy.png", "group_differences.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
