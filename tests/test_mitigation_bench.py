"""``starft mitigate-bench``: config checks, the region_weight choice, the summary, a tiny run."""

from __future__ import annotations

import json
import math

import pytest

from starft.cli.main import main
from starft.discovery_bench.mitigation import RunSpec, method_extra, run_plan, train_config
from starft.discovery_bench.mitigation_config import MITIGATION_METHODS, load_mitigation_config
from starft.discovery_bench.mitigation_report import (
    mean_std,
    render_markdown,
    select_region_weight,
    summarise_runs,
)
from starft.errors import StarftError


def test_region_weight_selection_takes_the_best_validation_score():
    assert select_region_weight({0.1: 0.40, 1.0: 0.55, 10.0: 0.50}) == 1.0
    assert select_region_weight({0.1: 0.5, 1.0: 0.5}) == 0.1  # a tie: the first listed
    assert select_region_weight({0.1: None, 1.0: 0.2}) == 1.0  # a missing score never wins
    assert select_region_weight({0.1: math.nan, 1.0: 0.0}) == 1.0
    assert select_region_weight({0.1: None}) == 0.1
    with pytest.raises(StarftError, match="no weight"):
        select_region_weight({})


def test_mean_std_and_summary():
    assert mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    stats = mean_std([0.2, 0.4, None])
    assert stats["mean"] == pytest.approx(0.3) and stats["std"] == pytest.approx(0.1414, abs=1e-4)
    metrics = ("image_overall", "image_worst_group", "region_overall", "region_worst_group")
    runs = [
        {"method": "ft", "seed": s, "test": dict.fromkeys(metrics, 0.5 + s / 10)} for s in (0, 1)
    ]
    summary = summarise_runs(["ft", "ravl"], runs)
    assert summary["ft"]["seeds"] == [0, 1]
    assert summary["ft"]["image_overall"]["mean"] == pytest.approx(0.55)
    assert summary["ravl"]["image_overall"] == {"mean": None, "std": None, "n": 0}


def test_packaged_config_and_plan():
    config = load_mitigation_config()
    assert config.methods == list(MITIGATION_METHODS) and config.seeds == [0, 1, 2]
    assert config.region_weights == [0.1, 1.0, 10.0] and config.groups == "dataset"
    assert config.setting.spurious == "star" and config.stage1.method == "flyp"
    selection, final = run_plan(config)
    assert [s.key for s in selection] == ["ravl-w0.1-s0", "ravl-w1-s0", "ravl-w10-s0"]
    assert len(final) == 4 * 3 and all(s.method != "ravl" for s in final)
    # method fields the bench sets
    ravl = method_extra(config, RunSpec("ravl", 1, 10.0), "d/discovery.json")
    assert ravl == {"discovery": "d/discovery.json", "region_weight": 10.0, "regions": "grid:4"}
    assert method_extra(config, RunSpec("vl_gdro", 0), "d.json") == {"groups": "dataset"}
    other = load_mitigation_config(overrides=["groups=discovery"])
    assert method_extra(other, RunSpec("upsampled_ft", 0), "d.json")["groups"] == "discovery"
    assert method_extra(config, RunSpec("ft", 0), "d.json") == {}


def test_train_configs_start_from_the_given_model(tmp_path):
    config = load_mitigation_config(overrides=["setting.cramers_v=0.8"])
    spec = RunSpec("ravl", 2, 0.1)
    train = train_config(
        config,
        "ravl",
        2,
        "stage1/final",
        tmp_path / spec.key,
        method_extra(config, spec, "d.json"),
    )
    assert train.model.name == "stage1/final" and train.seed == 2
    assert train.data.dataset == "sandbox_markers"
    assert train.data.train["cramers_v"] == 0.8 and train.data.train["n"] == 1000
    assert train.method["region_weight"] == 0.1 and train.method["discovery"] == "d.json"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("colour=red", "unknown field"),
        ("setting.cramers_v=1.5", "outside"),
        ("setting.kind=glitter", "glitter"),
        ("setting.spurious=dragon", "dragon"),
        ("methods=[ft, lp]", "lp"),
        ("groups=oracle", "oracle"),
        ("region_weights=[]", "empty"),
        ("region_weights=[-1]", ">= 0"),
        ("seeds=[0, 0]", "twice"),
        ("test.seed=51", "independent"),
        ("regions=boxes", "grid:K"),
        ("train.optim.lrr=1", "lrr"),
        ("method_configs.ravl={region_weight: 2}", "region_weights"),
        ("select_by=top5", "select_by"),
    ],
)
def test_bad_overrides_fail_in_one_line(override, match):
    with pytest.raises(StarftError, match=match):
        load_mitigation_config(overrides=[override])


def test_cli_errors_and_show(tmp_path, capsys):
    assert main(["mitigate-bench", "--out", str(tmp_path / "o"), "colour=red"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "starft: error:" in err and "colour" in err
    assert not (tmp_path / "o").exists()  # nothing written
    assert main(["mitigate-bench"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["mitigate-bench", "--show", "seeds=[4]"]) == 0
    assert "- 4" in capsys.readouterr().out


TINY = [
    "train.data.train.n=220",
    "train.data.batch_size=128",
    "train.optim.epochs=1",
    "train.optim.warmup_steps=1",
    "seeds=[0]",
    "region_weights=[0.1, 1.0]",
    "val.n=24",
    "test.n=24",
    'k_range="4:6"',
    "region_method=fast",
    "method_configs.ravl={template_mode: random, regions: grid:2}",
]


@pytest.mark.slow
def test_tiny_run_writes_the_table(tmp_path, capsys):
    """Every stage on a few dozen images, 2 steps per fine-tune (minutes on 2 CPU cores: ravl's
    crop-and-encode regions dominate)."""
    out = tmp_path / "mb"
    assert main(["mitigate-bench", "--out", str(out), *TINY]) == 0
    document = json.loads((out / "mitigation.json").read_text())
    assert document["schema"] == "starft.mitigate-bench/1"
    assert document["config"]["seeds"] == [0] and document["starft_version"]
    assert set(document["seconds"]) >= {"stage1", "discovery", "region_weight_selection"}
    metrics = ("image_overall", "image_worst_group", "region_overall", "region_worst_group")
    for name in metrics:
        assert 0.0 <= document["stage1"]["test"][name] <= 1.0
    selection = document["region_weight"]
    scores = {row["region_weight"]: row["score"] for row in selection["scores"]}
    assert set(scores) == {0.1, 1.0} and selection["chosen"] == select_region_weight(scores)
    assert set(document["summary"]) == set(MITIGATION_METHODS)
    finals = [r for r in document["runs"] if r["final"]]
    assert sorted(r["method"] for r in finals) == sorted(MITIGATION_METHODS)
    assert len(document["runs"]) == 6  # 2 selection runs, one reused as ravl's seed 0
    (ravl,) = [r for r in finals if r["method"] == "ravl"]
    assert ravl["region_weight"] == selection["chosen"]
    for run in finals:
        assert set(metrics) <= set(run["test"]) and set(metrics) <= set(run["val"])
    assert (out / "discovery" / "discovery.json").is_file()
    assert isinstance(document["discovery"]["found"], bool)
    report = (out / "mitigation.md").read_text()
    for method in (*MITIGATION_METHODS, "stage 1"):
        assert f"| {method}" in report
    assert "region worst-group" in report
    assert not list((out / "runs").glob("*/final"))  # run weights removed
    assert (out / "stage1" / "final").is_dir()  # the start model is kept
    assert "report:" in capsys.readouterr().out
    # --resume reuses everything made with the same configs
    assert main(["mitigate-bench", "--out", str(out), "--resume", *TINY]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused") == 2 + 6  # stage 1, discovery, 6 runs
    again = json.loads((out / "mitigation.json").read_text())
    assert again["summary"] == document["summary"]


def test_markdown_says_when_discovery_found_nothing():
    config = load_mitigation_config(overrides=["seeds=[0]"])
    import dataclasses

    names = ("image_overall", "image_worst_group", "region_overall", "region_worst_group")
    stats = {name: {"mean": 0.5, "std": None, "n": 1} for name in names}
    document = {
        "config": dataclasses.asdict(config),
        "stage1": {"test": dict.fromkeys(stats, 0.9)},
        "discovery": {"found": False, "message": "No cluster passed.", "clusters": []},
        "region_weight": {
            "select_by": "image_worst_group",
            "seed": 0,
            "scores": [{"region_weight": 1.0, "score": 0.5}],
            "chosen": 1.0,
        },
        "summary": {m: {"seeds": [0], **stats} for m in config.methods},
        "seconds": {"stage1": 1.0},
    }
    text = render_markdown(document)
    assert "found no spurious cluster" in text and "no spurious regions" in text
    assert "| ravl (w=1) | 0.500 |" in text and "oracle" in text
