"""`starft demo`: recipe, runner, report and command line on a tiny configuration."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from starft.cli.main import main
from starft.demo import (
    SUMMARY_KEYS,
    DemoResult,
    GroupInfo,
    RunRecord,
    findings,
    load_recipe,
    resolve_demo_model,
)
from starft.errors import StarftError
from starft.eval import load_result
from starft.models import MODELS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ["zeroshot", "ft", "flyp", "starft"]
SETS = ["id_test", "groups", "sketch", "cartoon", "painting", "blurry", "colour", "scene"]
# The packaged recipe shrunk to seconds: a few dozen images per set, two steps per fine-tune.
TINY = [
    "train.data.train.n=64",
    "train.data.val.n=32",
    "train.data.batch_size=32",
    "train.optim.epochs=1",
    "train.optim.warmup_steps=1",
    "train.device=cpu",
    "eval_batch_size=128",
    "evaluation.id_test.args.n=40",
    "evaluation.groups.args.per_group=2",
    *(f"evaluation.{s}.args.n=20" for s in ("sketch", "cartoon", "painting", "blurry")),
    "evaluation.colour.args.n=16",
    "evaluation.scene.args.n=16",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One tiny demo through the command line (random-init sandbox model, one seed)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    summary = out.parent / "summary_copy.json"
    stdout = io.StringIO()
    args = ["demo", "--model", "starft-sandbox-rn", "--methods", *METHODS, "--seeds", "0"]
    args += ["--out", str(out), "--json", str(summary), "--no-progress", *TINY]
    with contextlib.redirect_stdout(stdout):
        code = main(args)
    assert code == 0
    return out, summary, stdout.getvalue()


def test_demo_writes_a_result_json_per_method_set_and_seed(demo_run):
    out, _, _ = demo_run
    for method in METHODS:
        folder = out / "runs" / ("zeroshot" if method == "zeroshot" else f"{method}-seed0")
        for name in SETS:
            result = load_result(folder / "results" / f"starft-sandbox-rn__{method}__{name}.json")
            assert result["method"] == method and result["dataset"] == name
            assert result["seed"] == (None if method == "zeroshot" else 0)
            assert 0.0 <= result["metrics"]["top1"] <= 1.0
        groups = load_result(folder / "results" / f"starft-sandbox-rn__{method}__groups.json")
        assert len(groups["per_group"]) == 80 and "worst_group_acc" in groups["metrics"]


def test_demo_keeps_only_the_evaluated_weights(demo_run):
    out, _, _ = demo_run
    run = out / "runs" / "ft-seed0"
    assert (run / "best" / "open_clip_model.safetensors").is_file()
    # FT's trained head travels with its weights and is what the shape sets were scored with.
    assert (run / "best" / "classification_head.safetensors").is_file()
    assert not (run / "checkpoints").exists() and not (run / "final").exists()


def test_demo_report_has_a_row_per_method_and_valid_plots(demo_run):
    out, _, stdout = demo_run
    report = (out / "report.md").read_text(encoding="utf-8")
    for label in ("zero-shot", "FT (CE)", "FLYP", "StarFT"):
        rows = [line for line in report.splitlines() if line.startswith(f"| {label} |")]
        assert rows and rows[0].count("±") >= len(SUMMARY_KEYS)  # first: the results table
    assert "## What the numbers show" in report
    for name in ("group_accuracy.png", "id_vs_ood.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    # The command prints the table and where the report is.
    assert "StarFT" in stdout and f"report: {out / 'report.md'}" in stdout


def test_demo_summary_json_has_the_five_numbers_per_method(demo_run):
    out, copy, _ = demo_run
    for path in (out / "summary.json", copy):
        summary = json.loads(path.read_text(encoding="utf-8"))
        assert set(summary["methods"]) == set(METHODS)
        for row in summary["methods"].values():
            for key in SUMMARY_KEYS:
                assert isinstance(row[key], float) and 0.0 <= row[key] <= 1.0


def test_cli_rejects_an_unknown_method_in_one_line(capsys):
    assert main(["demo", "--methods", "zeroshot", "flyp", "sgd"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("starft: error: unknown demo method 'sgd'") and "zeroshot" in err


def test_cli_checks_every_run_config_before_training(capsys):
    args = ["demo", "--model", "starft-sandbox-rn", "method_configs.starft.method.lambda=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "demo recipe, starft run: method.lambda: unknown field" in err


def test_recipe_overrides_are_checked():
    with pytest.raises(StarftError, match="unknown key 'epochs'"):
        load_recipe(overrides=["epochs=3"])
    recipe = load_recipe(overrides=["method_configs.starft.method.lambda_star=2"])
    config = recipe.train_config("starft", seed=1, model="starft-sandbox-rn", out_dir="x")
    assert config.method["lambda_star"] == 2 and config.method["name"] == "starft"
    assert config.seed == 1 and not config.log.progress and not config.log.tensorboard
    quick = load_recipe(quick=True)
    assert (
        quick.seeds == [0]
        and quick.train["data"]["train"]["n"] < recipe.train["data"]["train"]["n"]
    )


def test_validation_sets_share_no_draw_with_the_test_sets_or_training():
    test, validation = load_recipe(), load_recipe(validation=True)
    assert (test.split, validation.split) == ("test", "validation")

    def draws(recipe):
        return {(s.dataset.removesuffix("_val"), s.args["seed"]) for s in recipe.evaluation}

    # sandbox_val and sandbox_id_test are the same task, so compare them by seed.
    test_draws = {(d.removesuffix("_id_test"), seed) for d, seed in draws(test)}
    assert not test_draws & draws(validation)
    training = test.train["data"]["train"]["seed"]
    assert all(s.args["seed"] != training for s in (*test.evaluation, *validation.evaluation))


def test_default_model_needs_the_sandbox_checkpoint():
    if "sandbox-clip" in MODELS:
        assert resolve_demo_model(None) == "sandbox-clip"
    else:
        with pytest.raises(StarftError, match="checkpoint is missing"):
            resolve_demo_model(None)
    assert resolve_demo_model("starft-sandbox-rn") == "starft-sandbox-rn"


def _fake_result(starft_gain: float, seeds: list[int]) -> DemoResult:
    """Records with FLYP at fixed numbers and StarFT ``starft_gain`` above it on every metric."""
    names = ["circle|water", "circle|grass"]
    records = []
    for method, gain in (("flyp", 0.0), ("starft", starft_gain)):
        for seed in seeds:
            value = 0.5 + gain + 0.001 * seed
            metrics = {
                k: value for k in (*SUMMARY_KEYS, "minority_group_acc", "majority_group_acc")
            }
            records.append(RunRecord(method, seed, metrics, dict.fromkeys(names, value)))
    recipe = load_recipe()
    return DemoResult(
        out_dir=Path("unused"),
        model="m",
        methods=["flyp", "starft"],
        seeds=seeds,
        quick=False,
        recipe=recipe,
        records=records,
        groups=GroupInfo(names, ["circle|grass"], {}),
    )


def test_findings_say_plainly_when_starft_does_not_beat_flyp():
    text = "\n".join(findings(_fake_result(-0.03, [0, 1, 2])))
    assert "**StarFT does not beat FLYP here**" in text
    assert "StarFT is below FLYP on every seed (-0.030" in text


def test_findings_report_a_consistent_gain_and_hedge_a_single_seed():
    text = "\n".join(findings(_fake_result(0.05, [0, 1, 2])))
    assert "StarFT beats FLYP on every robustness number" in text
    single = "\n".join(findings(_fake_result(0.05, [0])))
    assert "one seed cannot show whether that holds" in single
    assert "beats" not in single


def test_quick_demo_end_to_end_with_the_pretrained_model(tmp_path, capsys):
    out, summary = tmp_path / "demo", tmp_path / "summary.json"
    assert main(["demo", "--quick", "--out", str(out), "--json", str(summary)]) == 0
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert set(data["methods"]) == set(METHODS)
    # The pretrained model knows the shapes (chance is 0.1); every fine-tune stays far above
    # chance ID (the quick budget is a smoke test: StarFT's seed 0 measured 0.86 there, the
    # others 0.99) while the scene shortcut costs accuracy on the minority groups.
    methods = data["methods"]
    assert methods["zeroshot"]["id_acc"] > 0.9
    for method in ("ft", "flyp", "starft"):
        assert methods[method]["id_acc"] > 0.5
        assert methods[method]["minority_group_acc"] < methods["zeroshot"]["minority_group_acc"]
    assert (out / "report.md").is_file() and "report:" in capsys.readouterr().out
    # `starft report` over the demo's folder reproduces the demo's table exactly.
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert _results_table(out / "report.md") == _results_table(tmp_path / "report" / "report.md")


def _results_table(path: Path) -> list[str]:
    """The lines of the first Markdown table after the results heading."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Results"))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert len(table) >= 3
    return table


def test_report_of_the_demo_folder_reproduces_its_table(demo_run, tmp_path):
    out, _, _ = demo_run
    assert main(["report", str(out), "--out", str(tmp_path)]) == 0
    assert _results_table(out / "report.md") == _results_table(tmp_path / "report.md")
    # Every result carries what the report needs: seed, axis and the method config.
    result = load_result(
        out / "runs" / "flyp-seed0" / "results" / "starft-sandbox-rn__flyp__sketch.json"
    )
    assert result["seed"] == 0 and result["axis"] == "domain"
    assert result["method_config"]["name"] == "flyp"


@pytest.mark.parametrize(
    ("zeroshot_id", "expected"),
    [(0.52, "at chance on the ID task"), (0.648, "weak on the ID task (0.648; chance 0.500)")],
)
def test_findings_name_a_weak_or_chance_level_zero_shot_model(zeroshot_id, expected):
    result = _fake_result(0.0, [0])
    metrics = {k: zeroshot_id for k in (*SUMMARY_KEYS, "minority_group_acc", "majority_group_acc")}
    names = list(result.records[0].per_group)
    result.records.append(RunRecord("zeroshot", None, metrics, dict.fromkeys(names, zeroshot_id)))
    result.methods = ["zeroshot", *result.methods]
    result.num_classes = 2
    text = "\n".join(findings(result))
    assert expected in text
    strong = _fake_result(0.0, [0])
    strong.records.append(RunRecord("zeroshot", None, dict.fromkeys(metrics, 0.99), {}))
    strong.num_classes = 2
    assert "ID task (" not in "\n".join(findings(strong))


def test_report_states_where_each_model_looks_when_an_alignment_set_exists():
    from starft.demo.report import _alignment

    stats = {
        "zeroshot": {
            "id_acc": (0.9, 0.0),
            "masks:energy_in_mask": (0.2, 0.0),
            "masks:miou": (0.4, 0),
        },
        "cft": {"id_acc": (0.9, 0.0), "masks:energy_in_mask": (0.55, 0.01), "masks:miou": (0.6, 0)},
    }
    (line,) = _alignment(stats)
    assert "(masks, energy in mask" in line
    assert "zero-shot 0.200 (mIoU 0.400); cft 0.550 (mIoU 0.600)" in line
    assert _alignment({"zeroshot": {"id_acc": (0.9, 0.0)}}) == []
