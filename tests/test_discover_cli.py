"""``starft discover`` end to end on the shipped sandbox CLIP, and its pool feeding StarFT.

The sandbox CLIP classifies full-size sandbox photos perfectly, so nothing is found there; at
16 px (``image_size=16``, upscaled by the model's transform) it makes errors, and the grass
regions of those images form a cluster that passes RaVL's rules.
"""

from __future__ import annotations

import json

import pytest

from starft.cli.main import main
from starft.data.pools import load_pool

DISCOVER = [
    "discover",
    "--model",
    "sandbox-clip",
    "--dataset",
    "sandbox_train",
    "n=40",
    "image_size=16",
    "--region-method",
    "fast",
    "--k-range",
    "4:8",
    "--vocabulary",
    "sandbox_world",
    "--naming-score",
    "contrast",
]


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    out = tmp_path_factory.mktemp("discover")
    code = main([*DISCOVER, "--out", str(out / "run"), "--export-pool", str(out / "pool.json")])
    return code, out


def test_discover_writes_report_json_png_and_pool(discovered, capsys):
    code, out = discovered
    assert code == 0
    run = out / "run"
    document = json.loads((run / "discovery.json").read_text())
    assert document["found"] and document["config"]["regions"] == "grid:2"
    assert document["regions"]["spec"] == "grid:2" and document["regions"]["method"] == "fast"
    assert len(document["regions"]["image"]) == 4 * len(document["images"]["label"]) == 160
    assert document["result"]["k"] in range(4, 9)
    first = document["clusters"][0]
    assert first["rank"] == 1 and len(first["top_regions"]) == min(10, first["size"])
    assert len(first["names"]) == 5
    # the cluster is grass background (look at cluster_1.png); contrast naming says so
    assert first["names"][0]["descriptor"] == "{} in a grass scene."
    assert document["config"]["naming_score"] == "contrast"
    # shape phrases name the classes of sandbox_train: excluded from the vocabulary
    assert not any("next to the" in n["descriptor"] for n in first["names"])
    assert len(document["config"]["vocabulary_dropped"]) == 10
    for entry in document["clusters"]:
        png = run / entry["figure"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run / "report.md").read_text()
    assert "## 1. Cluster" in report and "(cluster_1.png)" in report
    assert "Names: `" in report and "pool.json" in report
    pool = load_pool(out / "pool.json")
    assert pool[0] == first["names"][0]["descriptor"]
    assert (
        main(["pools", "validate", str(out / "pool.json"), "--target-model", "sandbox-clip"]) == 0
    )
    assert "ok:" in capsys.readouterr().out


def test_exported_pool_trains_starft(discovered, tmp_path):
    _, out = discovered
    pool = out / "pool.json"
    overrides = [
        "model.name=sandbox-clip",
        "method.name=starft",
        f"method.pool={pool}",
        "method.decay=none",
        "data.dataset=sandbox_train",
        "data.train={n: 32}",
        "data.batch_size=16",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "log.progress=false",
        "log.tensorboard=false",
        "log.every_steps=1",
        f"out_dir={tmp_path / 'run'}",
    ]
    assert main(["train", *overrides]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert len(train_rows) == 2 and all(r["star"] > 0 for r in train_rows)


def test_discovery_json_splits_the_regions_it_clustered_for_ravl(discovered):
    """Stage 2 on the very images discovery clustered: the frozen copy's nearest medoid puts a
    region in a kept cluster exactly when discovery did (k-medoids assigns by nearest medoid)."""
    import torch

    from starft.data import create_dataset
    from starft.methods import Task, create_method
    from starft.models import create_model

    _, out = discovered
    document = json.loads((out / "run" / "discovery.json").read_text())
    assert len(document["medoids"]["embeddings"]) == document["result"]["k"]
    kept = {r for c in document["result"]["clusters"] for r in c["regions"]}
    model = create_model("sandbox-clip")
    data = create_dataset("sandbox_train", n=40, image_size=16, transform=model.preprocess_val)
    task = Task(list(data.classnames), list(data.templates))
    method = create_method("ravl", model, task, {"discovery": str(out / "run")})
    images = torch.stack([data[i]["image"] for i in range(40)])
    batch = {"image": images, "label": torch.tensor(data.labels[:40])}
    flags = method.regions.flags(images, method.regions.boxes(batch))
    assert flags.nonzero().squeeze(1).tolist() == sorted(kept)
    step = method({**batch, "image": images[:8], "label": batch["label"][:8]}, _step())
    assert torch.isfinite(step["loss"])


def _step():
    from starft.methods import StepInfo

    return StepInfo.at(0)


def test_nothing_found_is_reported_plainly(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["discover", "--model", "sandbox-clip", "--dataset", "sandbox_transfer"]
    args += ["attribute=scene", "n=24", "--region-method", "fast", "--k-range", "4:6"]
    args += ["--out", str(out), "--export-pool", str(tmp_path / "pool.json")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "no spurious cluster found" in printed and "no pool written" in printed
    assert not (tmp_path / "pool.json").exists()
    report = (out / "report.md").read_text()
    assert "**No spurious cluster found.**" in report
    document = json.loads((out / "discovery.json").read_text())
    assert document["found"] is False and document["clusters"] == []
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--regions", "grid:0"], "regions must be grid:K"),
        (["--region-method", "roi"], "--region-method must be one of auto, crop, fast"),
        (["--scoring", "clip"], "--scoring must be one of model, ravl"),
        (["--k-range", "1:3"], "need 2 <= A <= B"),
        (["--export-pool", "pool.txt"], "must end in .json"),
        (["--regions", "boxes"], "no 'boxes' field"),
        (["--vocabulary", "no_such_vocabulary"], "unknown vocabulary"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, capsys, extra, message):
    args = ["discover", "--model", "sandbox-clip", "--dataset", "sandbox_train", "n=4"]
    assert main([*args, *extra, "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("starft: error:") and message in error and "\n" not in error
    assert not (tmp_path / "run").exists()
