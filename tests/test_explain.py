"""Relevance maps: rollout and Grad-CAM against hand-computed cases, differentiability, metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from starft.errors import StarftError
from starft.explain import (
    alignment_metrics,
    average_precision,
    explain,
    grad_cam,
    masks_from_parts,
    rollout,
    text_head,
    upsample_minmax,
)


# -- pure map functions ---------------------------------------------------------------------------
def test_rollout_hand_computed_two_blocks():
    # 1 image, 2 heads, T = 3 tokens (CLS + 2 patches), 2 blocks.
    a1 = torch.tensor([[[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]] * 2).unsqueeze(0)
    g1 = torch.stack([torch.ones(3, 3), -torch.ones(3, 3)]).unsqueeze(0)  # head 2 clipped to 0
    a2 = torch.full((1, 2, 3, 3), 1 / 3)
    g2 = torch.zeros(1, 2, 3, 3)
    g2[0, :, 0, 2] = 3.0  # only CLS -> patch 2, value 3·(1/3) = 1 in both heads
    relevance = rollout([a1, a2], [g1, g2], num_prefix_tokens=1)
    # block 1: cam1 = mean_h (g⊙a)+ = a1/2 (head 2 is negative); R1 = I + cam1
    r1 = torch.eye(3) + a1[0, 0] / 2
    cam2 = torch.zeros(3, 3)
    cam2[0, 2] = 1.0
    r2 = r1 + cam2 @ r1
    assert torch.allclose(relevance, r2[0, 1:].unsqueeze(0))
    # by hand: r1 row 0 = [1.25, .125, .125]; r1 row 2 = [0, 0, 1.5]; r2[0] = r1[0] + r1[2]
    assert torch.allclose(relevance, torch.tensor([[0.125, 1.625]]))


def test_rollout_without_class_token_is_row_mean():
    attention = torch.softmax(torch.randn(2, 1, 4, 4), dim=-1)
    gradient = torch.rand(2, 1, 4, 4)
    relevance = rollout([attention], [gradient], num_prefix_tokens=0)
    full = torch.eye(4) + (gradient * attention)[:, 0]
    assert torch.allclose(relevance, full.mean(dim=1))


def test_grad_cam_hand_computed():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[4.0, 0.0], [0.0, 0.0]]]])
    gradients = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[-4.0, -4.0], [0.0, 0.0]]]])
    # w = (1, -2): 1·A1 − 2·A2 = [[-7, 2], [3, 4]] -> ReLU
    assert torch.equal(grad_cam(features, gradients), torch.tensor([[[0.0, 2.0], [3.0, 4.0]]]))


def test_upsample_minmax_range_and_constant_map():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[5.0, 5.0], [5.0, 5.0]]])
    out = upsample_minmax(maps, (8, 8))
    assert out.shape == (2, 8, 8)
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.equal(out[1], torch.zeros(8, 8))  # the releases give NaN here


# -- through the protocol -------------------------------------------------------------------------
def _head(model, n=3):
    return text_head(model, [f"a photo of a {c}." for c in ("star", "circle", "square")[:n]])


@pytest.mark.parametrize("name", ["starft-tiny-vit", "starft-tiny-rn"])
def test_explain_shapes_and_gradient_reaches_weights(name):
    from starft.models import create_model

    torch.manual_seed(0)
    model = create_model(name)
    size = model.image_size
    images = torch.randn(2, 3, *size)
    out = explain(model, images, _head(model), torch.tensor([0, 2]))
    assert out.maps.shape == (2, *size)
    assert out.maps.min() >= 0 and out.maps.max() <= 1
    assert torch.equal(out.targets, torch.tensor([0, 2]))
    assert torch.allclose(out.scores, out.logits[torch.arange(2), out.targets])
    # differentiable: a loss on the map reaches the image tower's weights
    model.zero_grad()
    (out.maps * torch.linspace(0, 1, size[1])).sum().backward()
    grads = [p.grad for p in model.image_tower().parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_explain_rollout_matches_manual_gradients(tiny_model):
    model = tiny_model
    images = torch.randn(2, 3, *model.image_size)
    head = _head(model)
    out = explain(model, images, head)  # predicted class
    inter = model.image_intermediates(images, attention=True)
    logits = model.scale() * torch.nn.functional.normalize(inter.pooled, dim=-1) @ head.t()
    assert torch.equal(out.targets, logits.argmax(dim=1))
    # per-image gradients, one backward per image, as the release would do it one at a time
    for i in range(2):
        grads = torch.autograd.grad(logits[i, out.targets[i]], inter.attentions, retain_graph=True)
        patch = rollout(
            [a[i : i + 1] for a in inter.attentions], [g[i : i + 1] for g in grads], 1
        ).view(1, *inter.grid)
        assert torch.allclose(out.maps[i], upsample_minmax(patch, model.image_size)[0], atol=1e-5)


def test_create_graph_makes_gradient_factor_differentiable(tiny_model):
    images = torch.randn(1, 3, *tiny_model.image_size)
    head = _head(tiny_model)
    constant = explain(tiny_model, images, head, torch.tensor([1]))
    second = explain(tiny_model, images, head, torch.tensor([1]), create_graph=True)
    assert torch.allclose(constant.maps, second.maps, atol=1e-6)
    weight = next(tiny_model.image_tower().parameters())
    g1 = torch.autograd.grad(constant.maps.sum(), weight, allow_unused=True)[0]
    g2 = torch.autograd.grad(second.maps.sum(), weight, allow_unused=True)[0]
    assert g1 is not None and g2 is not None and not torch.allclose(g1, g2)


def test_gradcam_stage_choice_and_rollout_refused_for_cnn():
    from starft.models import create_model

    model = create_model("starft-tiny-rn").eval()
    images = torch.randn(1, 3, *model.image_size)
    with pytest.raises(StarftError, match="gradcam"):
        explain(model, images, _head(model), method="rollout")
    out = explain(model, images, _head(model), stage=0)
    assert out.maps.shape == (1, *model.image_size)


# -- alignment metrics ----------------------------------------------------------------------------
def test_average_precision_hand_computed_with_ties():
    # scores .9 (pos), .8 (neg), .8 (pos), .1 (neg): thresholds .9 -> P 1 R .5; .8 -> P 2/3 R 1
    ap = average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.1]))
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert math.isnan(average_precision(np.zeros(3), np.arange(3)))


def test_alignment_metrics_hand_computed():
    # one 2x2 image; R = [[0, 1], [2, 5]] -> minmax [[0, .2], [.4, 1]], mean .4 -> fg only at 1.0
    relevance = torch.tensor([[[0.0, 1.0], [2.0, 5.0]]])
    masks = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    m = alignment_metrics(relevance, masks)
    # predicted fg = {(1,1)}; target fg = {(1,0),(1,1)}: 3 of 4 correct
    assert m["pixel_acc"] == pytest.approx(0.75)
    # bg: inter 2, union 3; fg: inter 1, union 2
    assert m["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # ap of R vs M: order 1(+), .4(+), .2, 0 -> 1
    assert m["ap"] == pytest.approx(1.0)
    # energy: (.4 + 1) / (0 + .2 + .4 + 1)
    assert m["energy_in_mask"] == pytest.approx(1.4 / 1.6)
    # two-channel AP: scores bg [1, .8, .6, 0] (targets 1, 1, 0, 0), fg [0, .2, .4, 1] (0, 0, 1, 1)
    scores = np.array([1, 0.8, 0.6, 0, 0, 0.2, 0.4, 1])
    onehot = np.array([1, 1, 0, 0, 0, 0, 1, 1])
    assert m["map"] == pytest.approx(average_precision(onehot, scores))
    # by hand: 1.0 (x2: P 2/2, R .5), .8 (P 3/3), .6 (P 3/4 ... ) -> sorted: 1,1,.8,.6,.4,.2,0,0
    assert m["map"] == pytest.approx(0.5 * 1 + 0.25 * 1 + 0.25 * 4 / 5)


def test_alignment_metrics_accumulate_iou_over_the_set_and_ignore():
    relevance = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    masks = torch.tensor([[[1.0, 0.0]], [[1.0, -1.0]]])  # second image: right pixel ignored
    m = alignment_metrics(relevance, masks)
    # image 1 perfect; image 2: its one labelled pixel is fg, predicted bg
    assert m["pixel_acc"] == pytest.approx(2 / 3)
    # bg: inter 1, union 1 + 1 = 2 (pred bg 2, target bg 1, inter 1); fg: inter 1, union 2
    assert m["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_alignment_metrics_reject_bad_input():
    with pytest.raises(StarftError, match="same shape"):
        alignment_metrics(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
    with pytest.raises(StarftError, match=r"\[0, 1\]"):
        alignment_metrics(torch.rand(1, 2, 2), torch.full((1, 2, 2), 2.0))


def test_masks_from_parts():
    parts = torch.zeros(1, 3, 2, 2)
    parts[0, 0, 0, 0] = 1
    parts[0, 1, 0, :] = 1
    weights = torch.tensor([[3.0, 1.0, 0.0]])
    out = masks_from_parts(parts, weights)
    assert torch.allclose(out, torch.tensor([[[1.0, 1 / 3], [0.0, 0.0]]]))


# -- the command and the writer -------------------------------------------------------------------
class _MaskedSet:
    """Four random images with a left-half mask, in a dataset's shape."""

    def __init__(self, size):
        self.classnames = ["star", "circle"]
        self.templates = ["a photo of a {}."]
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(4, 3, *size, generator=g)
        self.labels = [0, 1, 0, 1]
        self.size = size

    def __len__(self):
        return 4

    def __getitem__(self, i):
        mask = torch.zeros(*self.size)
        mask[:, : self.size[1] // 2] = 1
        return {"image": self.images[i], "label": self.labels[i], "mask": mask}


def test_explain_dataset_writes_grid_maps_and_metrics(tmp_path, tiny_model):
    import json

    from starft.explain.run import explain_dataset, write_explain_run
    from starft.models import create_model

    rn = create_model("starft-tiny-rn")
    run = explain_dataset(
        [("vit", tiny_model), ("rn", rn)],
        lambda model: _MaskedSet(model.image_size),
        n=3,
        target="label",
    )
    written = write_explain_run(run, tmp_path, save_maps=True)
    assert (tmp_path / "grid.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "explain.json").read_text())
    assert summary["models"]["vit"]["targets"] == [0, 1, 0]
    assert set(summary["models"]["rn"]["alignment"]) >= {"pixel_acc", "miou", "map", "ap"}
    saved = np.load(tmp_path / "maps" / "vit" / "2.npy")
    assert saved.shape == tiny_model.image_size and len(written) == 2 + 2 * 3


def test_explain_command_and_bad_target(tmp_path):
    from starft.cli.main import main

    out = tmp_path / "x"
    args = ["explain", "--model", "starft-tiny-vit", "--dataset", "synthetic", "--n", "2"]
    assert main([*args, "--out", str(out), "--target", "text:a red star"]) == 0
    assert (out / "grid.png").is_file() and (out / "explain.json").is_file()
    assert main([*args, "--out", str(out), "--target", "labels"]) == 2


def test_explain_columns_name_the_run_of_a_weights_folder():
    from starft.cli.explain import _labels

    names = ["sandbox-clip-vit", "runs/flyp-seed0/best", "runs/starft-seed0/best", "runs/x/final"]
    assert _labels(names) == [
        "sandbox-clip-vit",
        "flyp-seed0/best",
        "starft-seed0/best",
        "x/final",
    ]
    assert _labels(["a/best", "b/a/best"]) == ["a/best", "a/best (2)"]
