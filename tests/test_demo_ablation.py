"""`starft ablate` and recipe variants: `extends`, variant runs, the ablation table, the CLI."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from starft.cli.main import main
from starft.demo import DemoResult, GroupInfo, RunRecord, check_methods, load_recipe
from starft.demo.ablation import ablation_table, varied_options
from starft.demo.recipe import list_recipes
from starft.errors import StarftError
from test_demo import TINY


def test_ablation_recipe_extends_the_demo_recipe():
    demo, ablate = load_recipe(), load_recipe("sandbox_ablate")
    # Same task, budget and evaluation sets: only the runs differ.
    assert ablate.train == demo.train and ablate.evaluation == demo.evaluation
    assert ablate.seeds == demo.seeds and ablate.model == demo.model
    assert ablate.methods[0] == "flyp" and "star_clean" in ablate.methods
    assert {"sandbox_demo", "sandbox_ablate"} <= set(list_recipes())
    assert "sandbox_pretrain" not in list_recipes()  # a training config, not a demo recipe


def test_variants_inherit_their_methods_recipe_config():
    recipe = load_recipe("sandbox_ablate")
    demo_star = load_recipe().method_configs["starft"]["method"]
    config = recipe.train_config("star_texture", seed=0, model="m", out_dir="x")
    assert config.method["name"] == "starft" and config.method["pool"] == "sandbox_texture"
    # λ and decay come from the demo's starft entry, which the variant only amends.
    assert config.method["lambda_star"] == demo_star["lambda_star"]
    clean = recipe.train_config("star_clean", seed=0, model="m", out_dir="x").method
    assert (clean["suffix"], clean["mask_same_class"], clean["decay"]) == ("none", False, "none")
    assert recipe.method_of("star_clean") == "starft" and recipe.method_of("flyp") == "flyp"


def test_check_methods_knows_the_recipes_variants():
    recipe = load_recipe("sandbox_ablate")
    assert check_methods(["flyp", "star_mask", "flyp"], recipe) == ["flyp", "star_mask"]
    with pytest.raises(StarftError, match="unknown demo method 'star_mask'"):
        check_methods(["star_mask"])  # not a variant without the recipe
    bad = load_recipe("sandbox_ablate", overrides=["method_configs.star_mask.method.name=sgd"])
    with pytest.raises(StarftError, match=r"'star_mask' \(method 'sgd'\)"):
        check_methods(["star_mask"], bad)


def test_extends_errors_name_the_recipe(tmp_path: Path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: nowhere\nmethods: [flyp]\n", encoding="utf-8")
    with pytest.raises(StarftError, match="'extends: nowhere' is neither a packaged recipe"):
        load_recipe(child)
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n", encoding="utf-8")
    with pytest.raises(StarftError, match="nests too deep"):
        load_recipe(loop)
    with pytest.raises(StarftError, match="neither a file nor a packaged recipe"):
        load_recipe("no_such_recipe")
    # A relative base next to the child, amended by it.
    child.write_text("extends: base.yaml\nseeds: [7]\n", encoding="utf-8")
    base = Path(__file__).parents[1] / "src/starft/resources/recipes/sandbox_demo.yaml"
    (tmp_path / "base.yaml").write_text(base.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_recipe(child).seeds == [7]


def _record(run: str, seed: int | None, acc: float) -> RunRecord:
    keys = ("id_acc", "worst_group_acc", "avg_group_acc", "minority_group_acc", "ood_avg_acc")
    metrics = {key: acc for key in keys} | {"zeroshot_transfer_acc": 0.5}
    # The method config each run's result JSONs record (the recipe's, merged for variants).
    recipe = load_recipe("sandbox_ablate")
    config = (
        {} if run == "zeroshot" else recipe.train_config(run, seed=0, model="m", out_dir="x").method
    )
    return RunRecord(method=run, seed=seed, metrics=metrics, per_group={}, method_config=config)


def test_ablation_table_shows_varied_options_and_mean_std():
    recipe = load_recipe("sandbox_ablate")
    runs = ["zeroshot", "flyp", "star_clean", "starft", "star_texture"]
    records = [_record("zeroshot", None, 0.5)]
    records += [_record(r, s, 0.6 + 0.1 * s) for r in runs[1:] for s in (0, 1)]
    result = DemoResult(
        out_dir=Path("x"),
        model="m",
        methods=runs,
        seeds=[0, 1],
        quick=False,
        recipe=recipe,
        records=records,
        groups=GroupInfo(names=[], minority=[]),
    )
    # In first-seen order: the demo's starft entry first, then what the variants add.
    assert varied_options(result) == ["pool", "decay", "suffix", "mask_same_class"]
    lines = ablation_table(result).splitlines()
    assert lines[0].startswith("| run | method | pool | decay | suffix | mask_same_class | ID |")
    clean = next(line for line in lines if line.startswith("| star_clean |"))
    assert "| starft | sandbox_scene | none | none | off |" in clean
    assert "0.650 ± 0.071" in clean  # mean and sample std of 0.6 and 0.7
    flyp = next(line for line in lines if line.startswith("| FLYP |"))
    assert "| flyp | · | · | · | · |" in flyp
    assert next(line for line in lines if line.startswith("| zero-shot |")).count("0.500 ± 0.000")


def test_ablate_cli_runs_a_subset_end_to_end(tmp_path: Path):
    out = tmp_path / "ablate"
    args = ["ablate", "--model", "starft-sandbox-rn", "--methods", "flyp", "star_random"]
    args += ["--seeds", "0", "--out", str(out), "--no-progress", *TINY]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(args) == 0
    table = (out / "ablation.md").read_text(encoding="utf-8")
    assert "| star_random | starft |" in table and "| FLYP | flyp |" in table
    assert "Command: `starft " in table
    assert (out / "runs" / "star_random-seed0" / "best").is_dir()
    assert (out / "report.md").is_file() and "ablation table:" in stdout.getvalue()
