"""LP and LP-FT: the L-BFGS logistic regression, the L2 choice, the loop hook and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from starft.cli.main import main
from starft.config import OptimConfig, apply_overrides, build_dataclass, load_train_config
from starft.data import create_dataset
from starft.errors import StarftError
from starft.eval import load_result
from starft.methods import (
    LP,
    LPFT,
    LPConfig,
    PrepareContext,
    StepInfo,
    Task,
    create_method,
    logreg,
    lp,
)
from starft.methods.logreg import accuracy, fit_logistic_regression, holdout_split, select_l2
from starft.models import create_model
from starft.models.heads import load_head
from starft.train import fit
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator

CLASSES = ["dog", "cat", "fish", "bird"]
TEMPLATES = ["a photo of a {}.", "a sketch of a {}."]


def f64(rows):
    return torch.tensor(rows, dtype=torch.float64)


# -- logistic regression ---------------------------------------------------------------------
@pytest.mark.parametrize("l2", [0.1, 0.01, 0.001])
def test_fit_matches_the_hand_computed_optimum(l2):
    """x = ±1 with labels 1/0: by symmetry W = [-a, a], b = 0, and the objective
    log(1 + exp(-2a)) + l2·a² is minimal where l2·a = 1 / (1 + exp(2a)) (solved by bisection)."""
    result = fit_logistic_regression(f64([[1.0], [-1.0]]), torch.tensor([1, 0]), 2, l2)
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if l2 * mid < 1 / (1 + math.exp(2 * mid)) else (lo, mid)
    assert result.weight.flatten().tolist() == pytest.approx([-lo, lo], rel=1e-6)
    assert result.bias.tolist() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert result.loss == pytest.approx(math.log1p(math.exp(-2 * lo)) + l2 * lo**2, rel=1e-9)


def test_fit_is_a_stationary_point_of_the_smoothed_objective(monkeypatch):
    """Autograd of an independent formula (F.cross_entropy) vanishes at the fit; chunks agree."""
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(50, 5, generator=g, dtype=torch.float64), dim=1)
    y = torch.randint(0, 3, (50,), generator=g)
    result = fit_logistic_regression(x, y, 3, 0.01, label_smoothing=0.1)
    w = result.weight.clone().requires_grad_(True)
    b = result.bias.clone().requires_grad_(True)
    loss = F.cross_entropy(x @ w.t() + b, y, label_smoothing=0.1) + 0.005 * (w * w).sum()
    loss.backward()
    assert loss.item() == pytest.approx(result.loss, rel=1e-12)
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6
    monkeypatch.setattr(logreg, "CHUNK_ROWS", 7)
    chunked = fit_logistic_regression(x, y, 3, 0.01, label_smoothing=0.1)
    assert torch.allclose(chunked.weight, result.weight, atol=1e-8)


def test_separable_clusters_are_fitted_perfectly_from_any_start():
    g = torch.Generator().manual_seed(1)
    centres = f64([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    y = torch.arange(3).repeat(20)
    x = centres[y] + 0.5 * torch.randn(60, 2, generator=g, dtype=torch.float64)
    plain = fit_logistic_regression(x, y, 3, 1e-3)
    started = fit_logistic_regression(x, y, 3, 1e-3, init_weight=torch.ones(3, 2) * 7.0)
    assert accuracy(plain, x, y) == 1.0
    assert torch.allclose(plain.weight, started.weight, atol=1e-5)  # convex: one optimum


def test_l2_choice_picks_the_best_validation_accuracy():
    # Weak l2 wins: 8 positives, 2 negatives; a strong l2 shrinks W and the free bias predicts the
    # majority class everywhere, which is right on half of a balanced validation set.
    train = (f64([[1.0]] * 8 + [[-1.0]] * 2), torch.tensor([1] * 8 + [0] * 2))
    val = (f64([[1.0]] * 4 + [[-1.0]] * 4), torch.tensor([1] * 4 + [0] * 4))
    best, scores = select_l2(train, val, 2, [1e-6, 10.0])
    assert best == 1e-6 and scores == {1e-6: 1.0, 10.0: 0.5}
    # Strong l2 wins: one mislabelled point at x = 0.2 pushes a near-unregularised boundary past
    # 0.5; regularisation keeps it near 0. Equal scores go to the larger l2.
    train = (f64([[1.0]] * 5 + [[-1.0]] * 5 + [[0.2]]), torch.tensor([1] * 5 + [0] * 6))
    val = (f64([[0.5]] * 4 + [[-0.5]] * 4), torch.tensor([1] * 4 + [0] * 4))
    best, scores = select_l2(train, val, 2, [1e-6, 1e-2, 1e-1])
    assert scores == {1e-6: 0.5, 1e-2: 1.0, 1e-1: 1.0} and best == 1e-1


def test_holdout_split_is_deterministic_and_disjoint():
    fit_idx, held = holdout_split(50, 0.1, seed=3)
    assert len(held) == 5 and len(fit_idx) == 45
    assert sorted(fit_idx.tolist() + held.tolist()) == list(range(50))
    assert torch.equal(held, holdout_split(50, 0.1, seed=3)[1])
    assert not torch.equal(held, holdout_split(50, 0.1, seed=4)[1])
    with pytest.raises(StarftError, match=r"val_fraction must be in \(0, 1\)"):
        holdout_split(50, 1.0, seed=0)
    with pytest.raises(StarftError, match="leaves no training sample"):
        holdout_split(1, 0.5, seed=0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"l2_grid": []}, "method.l2_grid is empty"),
        ({"l2_grid": [1e-3, -1.0]}, "method.l2_grid: every value must be"),
        ({"l2": float("nan")}, "method.l2: every value must be"),
        ({"max_iter": 0}, "method.max_iter must be >= 1"),
    ],
)
def test_bad_lp_options_are_one_line_errors(params, message):
    with pytest.raises(StarftError, match=message):
        create_method("lp", create_model("starft-tiny-vit"), Task(CLASSES, TEMPLATES), params)


# -- the probe inside a method ---------------------------------------------------------------
def context(train_set, val_set=None):
    return PrepareContext(train_set, val_set, torch.device("cpu"), batch_size=64, seed=0)


def test_probe_selects_on_the_given_sets_only(monkeypatch):
    """fit_linear_probe reads features of the context's train and val sets, nothing else."""
    torch.manual_seed(0)
    model = create_model("starft-tiny-vit")

    def points(signs):  # the first feature carries the class, the others are 0
        x = torch.zeros(len(signs), model.embed_dim)
        x[:, 0] = torch.tensor(signs, dtype=torch.float32)
        return x

    train = (points([1.0] * 8 + [-1.0] * 2), torch.tensor([1] * 8 + [0] * 2))
    val = (points([1.0] * 4 + [-1.0] * 4), torch.tensor([1] * 4 + [0] * 4))
    features = {"train": train, "val": val}
    seen = []

    def fake_features(model, dataset, ctx):
        seen.append(dataset)
        return features[dataset]

    monkeypatch.setattr(lp, "extract_features", fake_features)
    method = create_method("lp", model, Task(["a", "b"], TEMPLATES), {"l2_grid": [1e-6, 10]})
    report = method.prepare(context("train", "val"))
    assert seen == ["train", "val"]
    assert report["l2"] == 1e-6 and report["val_top1"] == {"1e-06": 1.0, "10": 0.5}
    assert report["l2_selection"] == "validation set (data.val)" and report["n_val"] == 8
    assert report["n_train"] == 10 and report["train_top1"] == 1.0  # refit on all of train
    logits = method.head(train[0])
    assert torch.equal(logits.argmax(1), train[1])
    seen.clear()
    report = method.prepare(context("train"))
    assert seen == ["train"] and report["n_val"] == 1 and "held-out 0.1" in report["l2_selection"]
    fixed = create_method("lp", model, Task(["a", "b"], TEMPLATES), {"l2": 0.5})
    report = fixed.prepare(context("train", "val"))
    assert report["l2"] == 0.5 and report["l2_selection"] == "fixed" and "val_top1" not in report


def synthetic(n, seed=0):
    transform = create_model("starft-tiny-vit").preprocess_val
    return create_dataset("synthetic", num_classes=4, num_samples=n, seed=seed, transform=transform)


def test_lp_freezes_the_encoder_and_lpft_trains_it_from_the_probe():
    torch.manual_seed(0)
    probe = create_method("lp", create_model("starft-tiny-vit"), Task(CLASSES, TEMPLATES))
    assert isinstance(probe, LP) and not probe.trains_by_gradient
    assert {name for name, _ in probe.trainable_named_parameters()} == {"head.weight", "head.bias"}
    torch.manual_seed(0)
    method = create_method(
        "lpft", create_model("starft-tiny-vit"), Task(CLASSES, TEMPLATES), {"l2": 1e-3}
    )
    assert isinstance(method, LPFT) and method.trains_by_gradient
    zero_shot_head = method.head.weight.detach().clone()
    data = synthetic(32)
    method.prepare(context(data))
    assert not torch.equal(method.head.weight, zero_shot_head)
    batch = {
        "image": torch.stack([data[i]["image"] for i in range(16)]),
        "label": torch.tensor([data[i]["label"] for i in range(16)]),
    }
    method.train()
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-3))
    info = StepInfo(0, 0, 1, 1, seeded_generator(0, 0))
    before = method(batch, info)["loss"]
    before.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.parameters())
    optimizer.step()
    after = method(batch, info)["loss"]
    assert after.item() < before.item()


# -- the loop and the CLI --------------------------------------------------------------------
SANDBOX = [
    "--dataset",
    "sandbox_train",
    "data.train={n: 64, image_size: 32}",
    "data.val_dataset=sandbox_val",
    "data.val={n: 32, image_size: 32}",
    "method.l2_grid=[1.0e-4,1.0e-2,1.0]",
    "log.progress=false",
    "log.tensorboard=false",
]


def test_lp_end_to_end_through_the_cli_then_eval_uses_its_head(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "lp", *SANDBOX, "--out", str(run)]) == 0
    report = json.loads((run / "prepare.json").read_text())
    assert report["l2"] in (1e-4, 1e-2, 1.0) and set(report["val_top1"]) == {"0.0001", "0.01", "1"}
    assert report["n_train"] == 64 and report["n_val"] == 32
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["prepare", "val"]  # no gradient step at all
    (run_result,) = (run / "results").glob("*.json")
    saved = load_result(run_result)
    assert saved["prepare"]["l2"] == report["l2"]
    head, classnames = load_head(run / "best")
    assert classnames == create_dataset("sandbox_val", n=2, image_size=32).classnames

    args = ["--dataset", "sandbox_val", "--out", str(tmp_path / "ev"), "n=32", "image_size=32"]
    code = main(["eval", "--model", str(run), *args])
    assert code == 0
    (path,) = (tmp_path / "ev").glob("*.json")
    evaluated = load_result(path)
    assert evaluated["method"] == "lp"
    for key in ("top1", "nll", "ece"):  # the same classifier as the run's own validation
        # Other batches than the run's validation: float32 sums in another order.
        assert evaluated["metrics"][key] == pytest.approx(saved["metrics"][key], rel=1e-5)

    # Resuming a finished LP run changes nothing: no new prepare, no new rows, same head.
    assert main(["train", "--method", "lp", *SANDBOX, "--out", str(run), "--resume"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == len(rows)
    assert torch.equal(load_head(run / "final")[0].weight, head.weight)


def test_lpft_fits_the_probe_once_and_resumes_without_refitting(tmp_path, monkeypatch):
    overrides = [
        "method.name=lpft",
        "method.l2=1.0e-3",
        "data.dataset=synthetic",
        "data.train={num_classes: 4, num_samples: 32}",
        "data.batch_size=16",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "log.every_steps=1",
        "log.progress=false",
        "log.tensorboard=false",
        f"out_dir={tmp_path / 'run'}",
    ]
    result = fit(load_train_config(None, overrides))
    rows = [json.loads(r) for r in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert rows[0]["split"] == "prepare" and rows[0]["l2"] == 1e-3
    assert result.steps == 2 and [r["split"] for r in rows[1:]] == ["train", "train"]

    def no_refit(self, ctx):
        raise AssertionError("prepare ran again on resume")

    monkeypatch.setattr(LPFT, "prepare", no_refit)
    assert fit(load_train_config(None, overrides), resume="auto").steps == 2


@pytest.mark.slow  # two spawned gloo processes: ~15 s on one core
def test_lpft_on_two_ranks_equals_one_process_with_double_batch(tmp_path, monkeypatch):
    """Sharded feature extraction + rank 0's probe broadcast + DDP: the same run as 1 process."""
    from safetensors.torch import load_file

    from _ddp_workers import fit_worker, launch

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)

    def overrides(out, batch_size):
        return [
            "method.name=lpft",
            "method.l2_grid=[1.0e-3,1.0e-1]",
            "data.dataset=synthetic",
            "data.train={num_classes: 4, num_samples: 33}",  # odd: unequal feature shards
            f"data.batch_size={batch_size}",
            "data.augment=false",
            "optim.epochs=1",
            "optim.warmup_steps=1",
            "optim.lr=1e-3",
            "optim.eps=1e-4",  # see tests/test_distributed.py: Adam on ~0 gradients
            "log.progress=false",
            "log.tensorboard=false",
            f"out_dir={out}",
        ]

    launch(fit_worker, overrides(tmp_path / "ddp", 8))
    fit(load_train_config(None, overrides(tmp_path / "single", 16)))
    reports = [json.loads((tmp_path / r / "prepare.json").read_text()) for r in ("ddp", "single")]
    assert reports[0]["l2"] == reports[1]["l2"] and reports[0]["n_train"] == 33
    for name in ("classification_head.safetensors", "open_clip_model.safetensors"):
        ddp = load_file(tmp_path / "ddp" / "final" / name)
        single = load_file(tmp_path / "single" / "final" / name)
        for key, tensor in single.items():
            torch.testing.assert_close(ddp[key], tensor, atol=1e-5, rtol=0)


def test_l2_grid_override_accepts_scientific_notation_in_a_list():
    # YAML 1.1 reads '1e-4' (no dot) as a string, also inside a list.
    data = apply_overrides({}, ["method.l2_grid=[1e-4,1e-2]"])
    assert data["method"]["l2_grid"] == ["1e-4", "1e-2"]
    config = build_dataclass(LPConfig, data["method"], prefix="method")
    assert config.l2_grid == [1e-4, 1e-2]
    with pytest.raises(StarftError, match=r"method.l2_grid\[0\]: expected a number"):
        build_dataclass(LPConfig, {"l2_grid": ["small"]}, prefix="method")
